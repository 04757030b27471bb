//! Failures with encoded attributes, restored in place once their payloads
//! are decoded.
//!
//! An SDK with encoded attributes on writes `message: "Encoded failure"`,
//! no stack trace, and `encodedAttributes`: a payload holding
//! `{"message": …, "stack_trace": …}`. Once that payload is decoded to
//! `json/plain`, this module puts the message and stack trace back and
//! removes `encodedAttributes`, at every level of every cause chain. The
//! rule for what is restored is payload-converter's
//! [`decode_common_attributes`]; only the writing back is done on the JSON,
//! so the rest of the failure object stays exactly as it was.

use payload_converter::CompositeConverter;
use payload_converter::failure::decode_common_attributes;
use payload_proto::temporal::api::failure::v1::Failure;

use crate::document::Json;
use crate::payloads::{is_payload, read_payload};

/// What [`restore`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Restored {
    /// Failures whose message and stack trace were restored.
    pub(crate) restored: usize,
    /// Failures whose encoded attributes are still unreadable.
    pub(crate) still_encoded: usize,
}

/// Restores every failure in `doc` whose encoded attributes are readable.
pub(crate) fn restore(doc: &mut Json) -> Restored {
    let converter = CompositeConverter::default();
    let mut out = Restored::default();
    walk(doc, &converter, &mut out);
    out
}

fn walk(node: &mut Json, converter: &CompositeConverter, out: &mut Restored) {
    match node {
        Json::Object(fields) => {
            restore_here(fields, converter, out);
            for (_, value) in fields.iter_mut() {
                walk(value, converter, out);
            }
        }
        Json::Array(items) => {
            for item in items {
                walk(item, converter, out);
            }
        }
        _ => {}
    }
}

/// Restores one failure object, if it is one with encoded attributes.
fn restore_here(
    fields: &mut Vec<(String, Json)>,
    converter: &CompositeConverter,
    out: &mut Restored,
) {
    let Some(attrs_at) = fields
        .iter()
        .position(|(k, v)| k == "encodedAttributes" && is_payload(v))
    else {
        return;
    };
    let Ok(attributes) = read_payload(&fields[attrs_at].1) else {
        out.still_encoded += 1;
        return;
    };
    let text = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    let mut failure = Failure {
        message: text("message"),
        stack_trace: text("stackTrace"),
        encoded_attributes: Some(attributes),
        ..Default::default()
    };
    decode_common_attributes(&mut failure, converter);
    if failure.encoded_attributes.is_some() {
        out.still_encoded += 1;
        return;
    }
    out.restored += 1;
    // `stackTrace` goes where `encodedAttributes` was unless it exists
    // (both follow `message` and `source` in the proto's field order); an
    // empty one is left out, as proto3 JSON leaves out empty strings.
    let stack = Json::String(failure.stack_trace.clone());
    match fields.iter().position(|(k, _)| k == "stackTrace") {
        Some(existing) => {
            fields[existing].1 = stack;
            fields.remove(attrs_at);
        }
        None if failure.stack_trace.is_empty() => {
            fields.remove(attrs_at);
        }
        None => fields[attrs_at] = ("stackTrace".to_owned(), stack),
    }
    match fields.iter_mut().find(|(k, _)| k == "message") {
        Some((_, value)) => *value = Json::String(failure.message),
        None => fields.insert(0, ("message".to_owned(), Json::String(failure.message))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(message: &str, stack: &str) -> String {
        use base64::Engine as _;
        let json = serde_json::json!({ "message": message, "stack_trace": stack }).to_string();
        let data = base64::engine::general_purpose::STANDARD.encode(json);
        format!(r#"{{"metadata":{{"encoding":"anNvbi9wbGFpbg=="}},"data":"{data}"}}"#)
    }

    #[test]
    fn restores_every_level_and_keeps_the_rest() {
        let text = format!(
            r#"{{"failure":{{"message":"Encoded failure","encodedAttributes":{},"cause":{{"message":"Encoded failure","encodedAttributes":{},"applicationFailureInfo":{{"type":"ValueError"}}}},"applicationFailureInfo":{{"type":"Outer"}}}}}}"#,
            attrs("outer", "at outer()"),
            attrs("inner", "")
        );
        let mut doc = Json::parse(text.as_bytes()).unwrap();
        assert_eq!(
            restore(&mut doc),
            Restored {
                restored: 2,
                still_encoded: 0
            }
        );
        assert_eq!(
            serde_json::to_string(&doc).unwrap(),
            r#"{"failure":{"message":"outer","stackTrace":"at outer()","cause":{"message":"inner","applicationFailureInfo":{"type":"ValueError"}},"applicationFailureInfo":{"type":"Outer"}}}"#
        );
    }

    #[test]
    fn an_existing_stack_trace_is_replaced_in_place() {
        let text = format!(
            r#"{{"message":"Encoded failure","stackTrace":"","source":"x","encodedAttributes":{}}}"#,
            attrs("m", "s")
        );
        let mut doc = Json::parse(text.as_bytes()).unwrap();
        restore(&mut doc);
        assert_eq!(
            serde_json::to_string(&doc).unwrap(),
            r#"{"message":"m","stackTrace":"s","source":"x"}"#
        );
    }

    #[test]
    fn encrypted_attributes_are_left_and_counted() {
        let text = r#"{"message":"Encoded failure","encodedAttributes":{"metadata":{"encoding":"YmluYXJ5L2VuY3J5cHRlZA=="},"data":"AAAA"}}"#;
        let mut doc = Json::parse(text.as_bytes()).unwrap();
        let before = doc.clone();
        assert_eq!(restore(&mut doc).still_encoded, 1);
        assert_eq!(doc, before);
    }
}
