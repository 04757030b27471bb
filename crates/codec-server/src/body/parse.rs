//! Parsing a body into payloads: the direct parser for the common case, the
//! generated code for what it refuses (so acceptance and errors are the
//! generated code's), long data strings decoded in the body's buffer.

use bytes::Bytes;
use payload_proto::temporal::api::common::v1::{Payload, Payloads};
use serde::Deserialize;
use serde_json::Value as Json;

use super::decode::{decode_in_place, decode_lenient, encode_back};
use super::direct::{Direct, Parsed};
use crate::error::ApiError;

const SHAPE: &str = r#"send a JSON object like {"payloads":[{"metadata":{"encoding":"<base64>"},"data":"<base64>"}]}"#;

/// Metadata keys longer than this are cut in error messages.
const SHOWN_KEY_CHARS: usize = 64;

/// Parses a request body into its payloads, refusing more than `max_payloads`.
///
/// Large `data` strings are decoded from base64 in place, in the body's own
/// buffer (see [`decode_in_place`]): a 2 MiB payload then needs its 2.7 MiB
/// body and nothing more, instead of the body and a second buffer. A
/// payload that gives a metadata key twice is refused.
pub(crate) fn parse_payloads(body: Bytes, max_payloads: usize) -> Result<Vec<Payload>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::InvalidJson(format!(
            "request body is empty; {SHAPE}"
        )));
    }
    let direct = serde_json::from_slice::<Direct<'_>>(&body).ok();
    if let Some((index, key)) = direct.as_ref().and_then(repeated_key) {
        return Err(ApiError::InvalidPayload(format!(
            "payload {index}: metadata key `{key}` is given more than once; send each key once"
        )));
    }
    let direct = direct.and_then(|Direct(parsed)| place_deferred(&body, parsed));
    let (mut payloads, deferred) = match direct {
        Some(parsed) => parsed,
        None => (generated(&body)?, Vec::new()),
    };
    // Data first: a body the generated code refuses gets its error, whatever
    // the payload count.
    if !deferred.is_empty() {
        fill_deferred(body, &mut payloads, deferred)?;
    }
    if payloads.len() > max_payloads {
        return Err(ApiError::TooManyPayloads {
            count: payloads.len(),
            limit: max_payloads,
        });
    }
    Ok(payloads)
}

/// Where in the body a payload's data waits to be decoded: (payload index,
/// byte range of its base64 text).
type Deferred = Vec<(usize, std::ops::Range<usize>)>;

/// The parsed payloads, with the position in `body` of each deferred data
/// string; `None` if a string is not in `body` (which serde_json's borrowed
/// strings always are).
fn place_deferred(body: &[u8], parsed: Vec<Parsed<'_>>) -> Option<(Vec<Payload>, Deferred)> {
    let base = body.as_ptr() as usize;
    let mut deferred = Vec::new();
    let mut payloads = Vec::with_capacity(parsed.len());
    for (index, Parsed { payload, text, .. }) in parsed.into_iter().enumerate() {
        if let Some(text) = text {
            let start = (text.as_ptr() as usize).checked_sub(base)?;
            let end = start
                .checked_add(text.len())
                .filter(|end| *end <= body.len())?;
            deferred.push((index, start..end));
        }
        payloads.push(payload);
    }
    Some((payloads, deferred))
}

/// Decodes the deferred data strings into their payloads.
///
/// In the body's buffer when the body is not shared: the data of a payload
/// that is most of the body keeps the buffer (no copy at all); others are
/// copied out, so the body is not held for small parts of it. A string the
/// in-place decoder refuses (URL-safe alphabet, or invalid) is restored and
/// decoded on its own, which gives the generated code's result or error.
fn fill_deferred(
    body: Bytes,
    payloads: &mut [Payload],
    deferred: Deferred,
) -> Result<(), ApiError> {
    let mut buf = match body.try_into_mut() {
        Ok(buf) => buf,
        Err(shared) => {
            for (index, range) in deferred {
                payloads[index].data =
                    decode_lenient(&shared[range]).map_err(|_| refused(&shared))?;
            }
            return Ok(());
        }
    };
    // (payload index, the text's range, its decoded length)
    let mut decoded: Vec<(usize, std::ops::Range<usize>, usize)> =
        Vec::with_capacity(deferred.len());
    for (index, range) in deferred {
        if let Some(len) = decode_in_place(&mut buf[range.clone()]) {
            decoded.push((index, range, len));
            continue;
        }
        match decode_lenient(&buf[range]) {
            Ok(bytes) => payloads[index].data = bytes,
            Err(_) => {
                // Put the body back as it came, for the generated code's error.
                for (_, range, len) in decoded {
                    encode_back(&mut buf[range], len);
                }
                return Err(refused(&buf));
            }
        }
    }
    let buf = buf.freeze();
    let keep = match decoded.as_slice() {
        [(index, _, len)] if len * 2 >= buf.len() => Some(*index),
        _ => None,
    };
    for (index, range, len) in decoded {
        let range = range.start..range.start + len;
        payloads[index].data = if keep == Some(index) {
            buf.slice(range)
        } else {
            Bytes::copy_from_slice(&buf[range])
        };
    }
    Ok(())
}

/// The first payload that gives a metadata key twice: its index and the
/// key, shortened for a message.
fn repeated_key(direct: &Direct<'_>) -> Option<(usize, String)> {
    direct.0.iter().enumerate().find_map(|(index, parsed)| {
        let key = parsed.repeated_key.as_deref()?;
        let mut shown: String = key.chars().take(SHOWN_KEY_CHARS).collect();
        if shown.len() < key.len() {
            shown.push('…');
        }
        Some((index, shown))
    })
}

/// The payloads as the generated code parses them, or its error explained.
pub(super) fn generated(body: &[u8]) -> Result<Vec<Payload>, ApiError> {
    serde_json::from_slice::<Payloads>(body)
        .map(|parsed| parsed.payloads)
        .map_err(|err| explain(body, &err))
}

/// The generated code's error for a body it refuses.
fn refused(body: &[u8]) -> ApiError {
    generated(body).err().unwrap_or_else(|| {
        // Not reached: the lenient decoder is the generated code's.
        ApiError::InvalidPayload("a payload's data is not valid base64".to_owned())
    })
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

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use proptest::prelude::*;

    use super::*;
    use crate::body::strategies::{data_text, generated_body, payload};

    /// `parse_payloads` of a copy of `body`, at most 10 payloads.
    fn parse(body: &[u8]) -> Result<Vec<Payload>, ApiError> {
        parse_payloads(Bytes::copy_from_slice(body), 10)
    }

    fn err(body: &str) -> String {
        parse(body.as_bytes()).unwrap_err().to_string()
    }

    /// What the generated code makes of `body`: the payloads or the error.
    fn generated_result(body: &[u8]) -> Result<Vec<Payload>, String> {
        generated(body).map_err(|e| e.to_string())
    }

    /// Bytes long enough to be decoded in place (65,536 characters and more).
    const LONG: std::ops::Range<usize> = 49_152..49_400;

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

    /// `body` holds 11 payloads, one more than the test limit of 10.
    fn assert_too_many(body: &str) {
        assert!(matches!(
            parse(body.as_bytes()),
            Err(ApiError::TooManyPayloads {
                count: 11,
                limit: 10
            })
        ));
    }

    #[test]
    fn too_many_payloads_is_refused() {
        let body = format!("{{\"payloads\":[{}]}}", ["{}"; 11].join(","));
        assert_too_many(&body);
    }

    #[test]
    fn null_payloads_are_an_empty_list() {
        // proto3 JSON reads `null` as the field's default.
        assert_eq!(parse(br#"{"payloads":null}"#).unwrap(), []);
        assert_eq!(parse(br#"{"payloads":null,"x":1}"#).unwrap(), []);
    }

    #[test]
    fn a_metadata_key_given_twice_is_refused() {
        let body =
            r#"{"payloads":[{},{"metadata":{"encoding":"AA==","k":"AA==","encoding":"AQ=="}}]}"#;
        assert_eq!(
            err(body),
            "payload 1: metadata key `encoding` is given more than once; send each key once"
        );
        let long = "k".repeat(100);
        let body =
            format!(r#"{{"payloads":[{{"metadata":{{"{long}":"AA==","{long}":"AA=="}}}}]}}"#);
        assert!(
            err(&body).contains(&format!("`{}…`", "k".repeat(64))),
            "{}",
            err(&body)
        );
    }

    #[test]
    fn padding_inside_the_text_is_refused_at_a_chunk_end() {
        // A chunk is 4,096 characters: the first ends in padding.
        let pad = "A".repeat(DECODED_IN_PLACE);
        for end in ["AAA=", "AA=="] {
            for tail in ["", "AAAA"] {
                let text = format!("{pad}{}{end}{tail}", &pad[..4096 - 4]);
                let body = format!(r#"{{"payloads":[{{"data":"{text}"}}]}}"#);
                assert_eq!(
                    parse(body.as_bytes()).map_err(|e| e.to_string()),
                    generated_result(body.as_bytes()),
                    "{end}{tail}"
                );
            }
        }
    }

    /// Characters of data text at which it is decoded in place.
    const DECODED_IN_PLACE: usize = 64 * 1024;

    #[test]
    fn invalid_data_is_reported_before_the_payload_count() {
        let mut items = vec![r#"{"data":"AAAA"}"#; 10];
        items.push(r#"{"data":"*AAA"}"#);
        let body = format!(r#"{{"payloads":[{}]}}"#, items.join(","));
        let err = parse(body.as_bytes()).unwrap_err().to_string();
        assert_eq!(Err(err), generated_result(body.as_bytes()));
        let body = body.replace("*AAA", "AAAA");
        assert_too_many(&body);
    }

    #[test]
    fn the_data_of_a_large_payload_is_its_body_buffer() {
        let data = vec![7_u8; 60_000];
        let body = Bytes::from(format!(
            r#"{{"payloads":[{{"metadata":{{"e":"AA=="}},"data":"{}"}}]}}"#,
            STANDARD.encode(&data)
        ));
        let range = body.as_ptr_range();
        let payloads = parse_payloads(body, 10).unwrap();
        assert_eq!(payloads[0].data, data);
        assert!(range.contains(&payloads[0].data.as_ptr()), "no copy");
    }

    #[test]
    fn accepts_what_the_generated_code_accepts() {
        for body in [
            r#"{"payloads":[{"metadata":{"encoding":"anNvbi9wbGFpbg"},"data":"-_8"}]}"#,
            r#"{"payloads":[{"data":"AAE=","external_payloads":[{"size_bytes":"7"}]}]}"#,
            r#"{"payloads":[{"data":"AAE=","externalPayloads":[{"sizeBytes":7}]}]}"#,
            r#"{"other":1,"payloads":[{"data":"AAE=","unknown":{"x":[1]}}]}"#,
            r#" { "payloads" : [ { "metadata" : { "ab" : "AA==" } } ] } "#,
            r#"{}"#,
        ] {
            let generated = serde_json::from_slice::<Payloads>(body.as_bytes())
                .unwrap_or_else(|e| panic!("{body}: {e}"))
                .payloads;
            assert_eq!(parse(body.as_bytes()).unwrap(), generated, "{body}");
        }
    }

    #[test]
    fn refuses_what_the_generated_code_refuses() {
        for body in [
            r#"{"payloads":[{"data":"AAE=","data":"AAE="}]}"#,
            r#"{"payloads":[{"data":"A*E="}]}"#,
            r#"{"payloads":[{"data":5}]}"#,
            r#"{"payloads":[{"metadata":{"k":"%%"}}]}"#,
            r#"{"payloads":[],"payloads":[]}"#,
        ] {
            assert!(
                serde_json::from_slice::<Payloads>(body.as_bytes()).is_err(),
                "{body}"
            );
            assert!(parse(body.as_bytes()).is_err(), "{body}");
        }
    }

    proptest! {
        #[test]
        fn reads_what_the_generated_code_reads(payloads in prop::collection::vec(payload(), 0..4)) {
            let body = generated_body(&payloads);
            prop_assert_eq!(parse(&body).unwrap(), payloads);
        }

        #[test]
        fn short_data_parses_as_the_generated_code_parses(
            texts in prop::collection::vec(data_text(0..40), 0..4),
        ) {
            let body = body_of(&texts);
            prop_assert_eq!(
                parse(body.as_bytes()).map_err(|e| e.to_string()),
                generated_result(body.as_bytes())
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Data long enough to be decoded in place, with the shipped chunk
        /// size: the same result or error as the generated code.
        #[test]
        fn long_data_parses_as_the_generated_code_parses(
            texts in prop::collection::vec(data_text(LONG), 1..4),
        ) {
            let body = body_of(&texts);
            prop_assert_eq!(
                parse(body.as_bytes()).map_err(|e| e.to_string()),
                generated_result(body.as_bytes())
            );
        }
    }

    fn body_of(texts: &[String]) -> String {
        let items: Vec<String> = texts
            .iter()
            .map(|t| format!(r#"{{"metadata":{{"e":"AA=="}},"data":"{t}"}}"#))
            .collect();
        format!(r#"{{"payloads":[{}]}}"#, items.join(","))
    }
}
