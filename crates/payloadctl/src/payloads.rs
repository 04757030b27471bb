//! Payloads wherever they sit in a JSON document: a Codec Server body
//! (`{"payloads":[…]}`), a history exported by `temporal workflow show -o
//! json` or the Web UI, or anything else in proto3 JSON.
//!
//! Nothing here knows Temporal's event types: a payload is any object whose
//! `metadata` is an object of strings with an `encoding`, and whose other
//! fields are only `data` and `externalPayloads`. That covers inputs,
//! results, memos, headers, signal and update arguments, markers, failure
//! details and encoded attributes in every event type, present or future.
//! Payloads the CLI already shows as plain JSON (its "shorthand" for
//! readable payloads) are not objects of that shape and are left alone.

use anyhow::{Context as _, anyhow};
use payload_converter::PayloadExt as _;
use payload_converter::encoding::{BINARY_NULL, JSON_PLAIN, JSON_PROTOBUF};
use payload_proto::temporal::api::common::v1::Payload;

use crate::document::{Json, JsonPath};

/// Fields a payload object may have besides `metadata`.
const OTHER_FIELDS: [&str; 3] = ["data", "externalPayloads", "external_payloads"];

/// A payload found in a document, and where.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    pub(crate) path: JsonPath,
    pub(crate) payload: Payload,
}

/// Whether `node` has the shape of a proto3 JSON `Payload`.
pub(crate) fn is_payload(node: &Json) -> bool {
    let Some(fields) = node.as_object() else {
        return false;
    };
    let Some(metadata) = node.get("metadata").and_then(Json::as_object) else {
        return false;
    };
    metadata.iter().any(|(k, _)| k == "encoding")
        && metadata.iter().all(|(_, v)| v.as_str().is_some())
        && fields
            .iter()
            .all(|(k, _)| k == "metadata" || OTHER_FIELDS.contains(&k.as_str()))
}

/// Reads a payload object (proto3 JSON, either base64 alphabet).
pub(crate) fn read_payload(node: &Json) -> Result<Payload, serde_json::Error> {
    serde_json::from_value(node.to_value())
}

/// A payload as proto3 JSON (camelCase, standard base64), optionally with
/// its value alongside as `value` (see [`value_of`]).
pub(crate) fn write_payload(payload: &Payload, show_value: bool) -> Json {
    let mut json = Json::from_serialize(payload)
        .expect("invariant: a Payload always serializes to proto3 JSON");
    if show_value
        && let Some(value) = value_of(payload)
        && let Json::Object(fields) = &mut json
    {
        fields.push(("value".to_owned(), value));
    }
    json
}

/// The value of a readable payload, for display: JSON payloads parsed
/// (keys in the order the SDK wrote them), `binary/null` as `null`. Other
/// encodings (bytes, binary protobuf, still encoded) have no value to show.
pub(crate) fn value_of(payload: &Payload) -> Option<Json> {
    match payload.encoding()? {
        BINARY_NULL => Some(Json::Null),
        JSON_PLAIN | JSON_PROTOBUF => Json::parse(&payload.data).ok(),
        _ => None,
    }
}

/// Every payload in `doc`, in document order. A payload-shaped object
/// that does not parse (bad base64, say) is an error naming its path.
pub(crate) fn find(doc: &Json) -> anyhow::Result<Vec<Found>> {
    let mut found = Vec::new();
    walk(doc, &JsonPath::default(), &mut found)?;
    Ok(found)
}

fn walk(node: &Json, path: &JsonPath, found: &mut Vec<Found>) -> anyhow::Result<()> {
    if is_payload(node) {
        let payload = read_payload(node).map_err(|e| {
            anyhow!(
                "malformed payload at JSON path {path}: {e}; the export was changed or \
                 truncated: export it again with `temporal workflow show -o json`"
            )
        })?;
        found.push(Found {
            path: path.clone(),
            payload,
        });
        return Ok(());
    }
    match node {
        Json::Object(fields) => {
            for (i, (name, value)) in fields.iter().enumerate() {
                walk(value, &path.field(i, name), found)?;
            }
        }
        Json::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(item, &path.index(i), found)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Replaces the node at `path` (which [`find`] returned) with `value`.
pub(crate) fn replace(doc: &mut Json, path: &JsonPath, value: Json) -> anyhow::Result<()> {
    let node = doc
        .at_mut(path)
        .with_context(|| format!("internal error: no node at {path}"))?;
    *node = value;
    Ok(())
}

/// Parses a Codec Server body, `{"payloads":[…]}`.
pub(crate) fn parse_body(name: &str, bytes: &[u8]) -> anyhow::Result<Vec<Payload>> {
    let doc = Json::parse(bytes).with_context(|| format!("{name} is not valid JSON"))?;
    let Some(Json::Array(items)) = doc.get("payloads") else {
        anyhow::bail!(
            "{name} is not a payloads body: expected {{\"payloads\": [...]}} as the Codec \
             Server takes (for a history, use `payloadctl decode-history`)"
        );
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            read_payload(item).with_context(|| {
                format!("malformed payload at JSON path $.payloads[{i}] in {name}")
            })
        })
        .collect()
}

/// Writes a Codec Server body, pretty.
pub(crate) fn write_body(payloads: &[Payload], show_values: bool) -> Vec<u8> {
    let items = payloads
        .iter()
        .map(|p| write_payload(p, show_values))
        .collect();
    Json::Object(vec![("payloads".to_owned(), Json::Array(items))]).to_pretty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_payloads_anywhere_but_not_lookalikes() {
        let doc = Json::parse(
            br#"{"events":[{"attrs":{"input":{"payloads":[{"metadata":{"encoding":"anNvbi9wbGFpbg=="},"data":"MQ=="}]},
                 "memo":{"fields":{"m":{"metadata":{"encoding":"YmluYXJ5L251bGw="}}}},
                 "shorthand":{"payloads":[{"name":"x"}]},
                 "other":{"metadata":{"encoding":"x"},"kind":"not a payload"}}}]}"#,
        )
        .unwrap();
        let found = find(&doc).unwrap();
        let paths: Vec<String> = found.iter().map(|f| f.path.to_string()).collect();
        assert_eq!(
            paths,
            [
                "$.events[0].attrs.input.payloads[0]",
                "$.events[0].attrs.memo.fields.m"
            ]
        );
        assert_eq!(found[0].payload.encoding(), Some("json/plain"));
        assert_eq!(&found[0].payload.data[..], b"1");
    }

    #[test]
    fn a_broken_payload_names_its_path() {
        let doc = Json::parse(
            br#"{"events":[{},{"x":{"metadata":{"encoding":"anNvbi9wbGFpbg=="},"data":"%%%"}}]}"#,
        )
        .unwrap();
        let err = find(&doc).unwrap_err().to_string();
        assert!(err.contains("at JSON path $.events[1].x:"), "{err}");
    }

    #[test]
    fn values_are_shown_for_json_payloads_only() {
        let json = Payload::with_encoding("json/plain", &br#"{"a":[1,"b"]}"#[..]);
        let shown = write_payload(&json, true);
        assert_eq!(
            serde_json::to_string(&shown).unwrap(),
            r#"{"metadata":{"encoding":"anNvbi9wbGFpbg=="},"data":"eyJhIjpbMSwiYiJdfQ==","value":{"a":[1,"b"]}}"#
        );
        let bytes = Payload::with_encoding("binary/plain", &b"\x00"[..]);
        assert!(write_payload(&bytes, true).get("value").is_none());
    }
}
