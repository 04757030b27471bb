//! The `/encode` and `/decode` body: proto3 JSON `{"payloads":[…]}`.
//!
//! Input is parsed leniently (camelCase or snake_case names, either base64
//! alphabet, unknown fields ignored: see `payload-proto`); errors say where
//! the problem is: the JSON position for syntax errors, the payload index
//! for a malformed payload. Output is always `{"payloads":[…]}`, with the
//! array present even when empty.

use payload_proto::temporal::api::common::v1::{Payload, Payloads};
use serde::Deserialize;
use serde_json::Value as Json;

use crate::error::ApiError;

const SHAPE: &str = r#"send a JSON object like {"payloads":[{"metadata":{"encoding":"<base64>"},"data":"<base64>"}]}"#;

/// Parses a request body into its payloads, refusing more than `max_payloads`.
pub(crate) fn parse_payloads(body: &[u8], max_payloads: usize) -> Result<Vec<Payload>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::InvalidJson(format!(
            "request body is empty; {SHAPE}"
        )));
    }
    let payloads = match serde_json::from_slice::<Payloads>(body) {
        Ok(parsed) => parsed.payloads,
        Err(err) => return Err(explain(body, &err)),
    };
    if payloads.len() > max_payloads {
        return Err(ApiError::TooManyPayloads {
            count: payloads.len(),
            limit: max_payloads,
        });
    }
    Ok(payloads)
}

/// Turns a parse failure into an error that points at the problem.
fn explain(body: &[u8], err: &serde_json::Error) -> ApiError {
    if err.is_syntax() || err.is_eof() {
        return ApiError::InvalidJson(format!("request body is not valid JSON: {err}"));
    }
    // Valid JSON of the wrong shape, or a malformed field: find where.
    let Ok(value) = serde_json::from_slice::<Json>(body) else {
        return ApiError::InvalidJson(format!("request body is not valid JSON: {err}"));
    };
    let Json::Object(object) = &value else {
        return ApiError::InvalidJson(format!("request body must be a JSON object; {SHAPE}"));
    };
    match object.get("payloads") {
        Some(Json::Array(items)) => {
            for (index, item) in items.iter().enumerate() {
                if let Err(item_err) = Payload::deserialize(item) {
                    return ApiError::InvalidPayload(format!("payload {index}: {item_err}"));
                }
            }
            ApiError::InvalidJson(format!("request body is not a Payloads object: {err}"))
        }
        Some(Json::Null) | None => {
            ApiError::InvalidJson(format!("request body is not a Payloads object: {err}"))
        }
        Some(_) => ApiError::InvalidJson(format!("`payloads` must be an array; {SHAPE}")),
    }
}

/// Writes the answer body: `{"payloads":[…]}` in proto3 JSON.
pub(crate) fn write_payloads(payloads: &[Payload]) -> Result<Vec<u8>, serde_json::Error> {
    let estimate: usize = payloads.iter().map(|p| p.data.len() * 4 / 3 + 64).sum();
    let mut out = Vec::with_capacity(estimate + 16);
    out.extend_from_slice(b"{\"payloads\":[");
    for (i, payload) in payloads.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut out, payload)?;
    }
    out.extend_from_slice(b"]}");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: &str) -> String {
        parse_payloads(body.as_bytes(), 10).unwrap_err().to_string()
    }

    #[test]
    fn errors_point_at_the_problem() {
        assert!(err("").contains("request body is empty"));
        assert!(
            err("{\"payloads\": [").contains("line 1 column"),
            "{}",
            err("{\"payloads\": [")
        );
        assert!(err("[1,2]").contains("must be a JSON object"));
        assert!(err("{\"payloads\": 5}").contains("`payloads` must be an array"));
        let bad_b64 = r#"{"payloads":[{"data":"AAAA"},{"data":"***"}]}"#;
        assert!(err(bad_b64).starts_with("payload 1:"), "{}", err(bad_b64));
    }

    #[test]
    fn too_many_payloads_is_refused() {
        let body = format!("{{\"payloads\":[{}]}}", ["{}"; 11].join(","));
        assert!(matches!(
            parse_payloads(body.as_bytes(), 10),
            Err(ApiError::TooManyPayloads {
                count: 11,
                limit: 10
            })
        ));
    }

    #[test]
    fn empty_list_is_written_explicitly() {
        assert_eq!(write_payloads(&[]).unwrap(), b"{\"payloads\":[]}");
        let parsed = parse_payloads(b"{\"payloads\":[{\"data\":\"AAE=\"}]}", 10).unwrap();
        assert_eq!(
            write_payloads(&parsed).unwrap(),
            b"{\"payloads\":[{\"data\":\"AAE=\"}]}"
        );
    }
}
