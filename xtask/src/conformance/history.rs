//! Reading exported histories (`temporal workflow show -o json`): the
//! payloads' `data` values, decoded, and payloads found by their metadata,
//! with a real JSON parser.

use base64::Engine as _;

/// The base64 `data` values of a JSON history, decoded to text, one a line
/// (so checks can look for values inside `json/plain` payloads). Text that
/// is not JSON (an error message) gives nothing.
pub(super) fn decode_json_data(json: &str) -> String {
    let mut out = String::new();
    for bytes in json_data_values(json) {
        out.push_str(&String::from_utf8_lossy(&bytes));
        out.push('\n');
    }
    out
}

/// The base64 `data` values anywhere in a JSON history, decoded (objects'
/// keys in sorted order, arrays in order).
pub(super) fn json_data_values(json: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    // The CLI may print more than one JSON document (or a line of text
    // first): read every value the text holds.
    let values = serde_json::Deserializer::from_str(json).into_iter::<serde_json::Value>();
    for value in values.map_while(Result::ok) {
        collect(&value, &mut out);
    }
    out
}

/// The payloads anywhere in a JSON history whose metadata `key` is
/// `value` (metadata values are base64 in proto JSON), in order.
pub(super) fn payloads_with(json: &str, key: &str, value: &str) -> Vec<serde_json::Value> {
    let wanted = base64::engine::general_purpose::STANDARD.encode(value);
    let mut out = Vec::new();
    let values = serde_json::Deserializer::from_str(json).into_iter::<serde_json::Value>();
    for item in values.map_while(Result::ok) {
        find_payloads(&item, key, &wanted, &mut out);
    }
    out
}

fn find_payloads(
    value: &serde_json::Value,
    key: &str,
    wanted: &str,
    out: &mut Vec<serde_json::Value>,
) {
    match value {
        serde_json::Value::Object(map) => {
            let meta = map.get("metadata").and_then(|m| m.get(key));
            if meta.and_then(serde_json::Value::as_str) == Some(wanted) {
                out.push(value.clone());
                return;
            }
            map.values()
                .for_each(|item| find_payloads(item, key, wanted, out));
        }
        serde_json::Value::Array(items) => items
            .iter()
            .for_each(|item| find_payloads(item, key, wanted, out)),
        _ => {}
    }
}

fn collect(value: &serde_json::Value, out: &mut Vec<Vec<u8>>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, item) in map {
                match (key.as_str(), item) {
                    ("data", serde_json::Value::String(text)) => {
                        if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(text) {
                            out.push(bytes);
                        }
                    }
                    _ => collect(item, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|item| collect(item, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_data_values_are_decoded() {
        let json = r#"{"data": "ImhpIg==", "x": {"data":"SGVsbG8="}, "list": [{"data": "YQ=="}]}"#;
        assert_eq!(decode_json_data(json), "\"hi\"\na\nHello\n");
        assert_eq!(decode_json_data("not json"), "");
    }

    #[test]
    fn payloads_are_found_by_metadata() {
        // "json/protobuf" and "x", base64.
        let json = r#"{"events": [{"result": {"payloads": [
            {"metadata": {"encoding": "anNvbi9wcm90b2J1Zg==", "messageType": "eA=="}, "data": ""},
            {"metadata": {"encoding": "anNvbi9wbGFpbg=="}, "data": "MQ=="}]}}]}"#;
        let found = payloads_with(json, "messageType", "x");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0]["data"], "");
        assert!(payloads_with(json, "messageType", "y").is_empty());
    }
}
