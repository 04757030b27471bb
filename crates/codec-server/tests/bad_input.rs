//! Every kind of bad request gets a 4xx with a JSON body that says what was
//! wrong; nothing is partially answered.

use base64::Engine as _;
use hyper::{Method, StatusCode};

use crate::util::*;

struct Case {
    name: &'static str,
    method: Method,
    path: &'static str,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    status: StatusCode,
    error: &'static str,
    /// Text the detail must contain.
    detail: &'static str,
}

fn case(
    name: &'static str,
    body: impl Into<Vec<u8>>,
    status: StatusCode,
    error: &'static str,
    detail: &'static str,
) -> Case {
    Case {
        name,
        method: Method::POST,
        path: "/decode",
        content_type: Some("application/json"),
        body: body.into(),
        status,
        error,
        detail,
    }
}

fn encrypted(key_id: Option<&str>, data: &[u8]) -> Vec<u8> {
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let mut metadata = format!(r#""encoding":"{}""#, b64(b"binary/encrypted"));
    if let Some(id) = key_id {
        metadata.push_str(&format!(r#","encryption-key-id":"{}""#, b64(id.as_bytes())));
    }
    format!(
        r#"{{"payloads":[{{"metadata":{{{metadata}}},"data":"{}"}}]}}"#,
        b64(data)
    )
    .into_bytes()
}

fn cases() -> Vec<Case> {
    use StatusCode as S;
    let bad = S::BAD_REQUEST;
    let unprocessable = S::UNPROCESSABLE_ENTITY;
    let mut cases = vec![
        Case {
            method: Method::GET,
            ..case(
                "GET decode",
                "",
                S::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "use POST",
            )
        },
        Case {
            method: Method::PUT,
            path: "/encode",
            ..case(
                "PUT encode",
                "{}",
                S::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "PUT",
            )
        },
        Case {
            method: Method::DELETE,
            ..case(
                "DELETE decode",
                "",
                S::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "DELETE",
            )
        },
        Case {
            method: Method::PATCH,
            path: "/codec/decode",
            ..case(
                "PATCH prefixed",
                "",
                S::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "POST",
            )
        },
        Case {
            path: "/healthz",
            ..case(
                "POST healthz",
                "",
                S::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "use GET",
            )
        },
        Case {
            path: "/metrics",
            ..case(
                "POST metrics",
                "",
                S::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "use GET",
            )
        },
        Case {
            path: "/nothing",
            ..case("unknown route", "{}", S::NOT_FOUND, "not_found", "/nothing")
        },
        Case {
            method: Method::GET,
            path: "/",
            ..case("root", "", S::NOT_FOUND, "not_found", "POST …/decode")
        },
        Case {
            path: "/decoder",
            ..case("near miss", "{}", S::NOT_FOUND, "not_found", "/decoder")
        },
        Case {
            content_type: Some("text/plain"),
            ..case(
                "text/plain",
                "{}",
                S::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "application/json",
            )
        },
        Case {
            content_type: Some("application/x-www-form-urlencoded"),
            ..case(
                "form",
                "a=b",
                S::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "x-www-form-urlencoded",
            )
        },
        case(
            "empty body",
            "",
            bad,
            "invalid_json",
            "request body is empty",
        ),
        case(
            "blank body",
            "  \n ",
            bad,
            "invalid_json",
            "request body is empty",
        ),
        case("not JSON", "nope", bad, "invalid_json", "line 1 column"),
        case(
            "truncated JSON",
            r#"{"payloads":[{"data":"AA"#,
            bad,
            "invalid_json",
            "line 1 column",
        ),
        case(
            "array body",
            "[]",
            bad,
            "invalid_json",
            "must be a JSON object",
        ),
        case(
            "null body",
            "null",
            bad,
            "invalid_json",
            "must be a JSON object",
        ),
        case(
            "string body",
            r#""payloads""#,
            bad,
            "invalid_json",
            "must be a JSON object",
        ),
        case(
            "number body",
            "42",
            bad,
            "invalid_json",
            "must be a JSON object",
        ),
        case(
            "payloads is a number",
            r#"{"payloads":5}"#,
            bad,
            "invalid_json",
            "must be an array",
        ),
        case(
            "payloads is an object",
            r#"{"payloads":{}}"#,
            bad,
            "invalid_json",
            "must be an array",
        ),
        case(
            "payloads is a string",
            r#"{"payloads":"x"}"#,
            bad,
            "invalid_json",
            "must be an array",
        ),
        case(
            "payload is a number",
            r#"{"payloads":[5]}"#,
            bad,
            "invalid_payload",
            "payload 0",
        ),
        case(
            "bad base64 data",
            r#"{"payloads":[{"data":"***"}]}"#,
            bad,
            "invalid_payload",
            "payload 0",
        ),
        case(
            "second payload bad",
            r#"{"payloads":[{},{"data":12}]}"#,
            bad,
            "invalid_payload",
            "payload 1",
        ),
        case(
            "metadata not a map",
            r#"{"payloads":[{"metadata":"x"}]}"#,
            bad,
            "invalid_payload",
            "payload 0",
        ),
        case(
            "metadata bad base64",
            r#"{"payloads":[{"metadata":{"encoding":"%%"}}]}"#,
            bad,
            "invalid_payload",
            "payload 0",
        ),
        case(
            "metadata value a number",
            r#"{"payloads":[{"metadata":{"encoding":5}}]}"#,
            bad,
            "invalid_payload",
            "payload 0",
        ),
        case(
            "size_bytes not a number",
            r#"{"payloads":[{"external_payloads":[{"size_bytes":"abc"}]}]}"#,
            bad,
            "invalid_payload",
            "payload 0",
        ),
        case(
            "invalid UTF-8",
            vec![b'{', 0xff, 0xfe, b'}'],
            bad,
            "invalid_json",
            "line 1",
        ),
        case(
            "deep nesting",
            format!(
                r#"{{"payloads":[{}{}]}}"#,
                "[".repeat(5000),
                "]".repeat(5000)
            ),
            bad,
            "invalid_json",
            "line 1 column",
        ),
        case(
            "unknown key id",
            encrypted(Some("retired-2019"), &[7u8; 40]),
            unprocessable,
            "unknown_key",
            "retired-2019",
        ),
        case(
            "missing key id",
            encrypted(None, &[7u8; 40]),
            unprocessable,
            "undecodable_payload",
            "encryption-key-id",
        ),
        case(
            "ciphertext too short",
            encrypted(Some(SAMPLE_KEY_ID), &[1u8; 20]),
            unprocessable,
            "undecodable_payload",
            "payload 0",
        ),
        case(
            "wrong tag",
            encrypted(Some(SAMPLE_KEY_ID), &[1u8; 64]),
            unprocessable,
            "undecodable_payload",
            "payload 0",
        ),
    ];
    cases.push(Case {
        path: "/codec/download",
        ..case(
            "download",
            r#"{"payloads":[]}"#,
            S::NOT_FOUND,
            "download_unavailable",
            "cannot download",
        )
    });
    cases
}

#[tokio::test]
async fn every_bad_request_is_a_clear_4xx() {
    let server = spawn().await;
    let cases = cases();
    assert!(cases.len() >= 30);
    let mut failures = Vec::new();
    for case in &cases {
        let mut headers = vec![("x-namespace", "default")];
        if let Some(ct) = case.content_type {
            headers.push(("content-type", ct));
        }
        let answer = request(
            case.method.clone(),
            &server.url(case.path),
            &headers,
            case.body.clone(),
        )
        .await;
        let json: serde_json::Value = serde_json::from_slice(&answer.body).unwrap_or_default();
        let detail = json["detail"].as_str().unwrap_or_default();
        let ok = answer.status == case.status
            && json["error"] == case.error
            && detail.contains(case.detail)
            && answer.header("content-type") == Some("application/json")
            && !detail.contains("test-key-test-key");
        if !ok {
            failures.push(format!(
                "{}: got {} {}, wanted {} {} containing {:?}",
                case.name,
                answer.status,
                String::from_utf8_lossy(&answer.body),
                case.status,
                case.error,
                case.detail
            ));
        }
        if answer.status == StatusCode::METHOD_NOT_ALLOWED {
            assert!(
                answer.header("allow").is_some(),
                "{}: 405 without Allow",
                case.name
            );
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn too_many_payloads_is_413() {
    let server = spawn_with(|c, _| c.server.max_payloads = 3).await;
    let answer = post(
        &server.url("/decode"),
        body_of(&[plain("1"), plain("2"), plain("3"), plain("4")]),
    )
    .await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(answer.json()["error"], "too_many_payloads");
}
