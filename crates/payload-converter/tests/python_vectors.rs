//! Golden vectors written by the real Python SDK (`testdata/python/`, made
//! by `cargo xtask vectors`): we must produce the same bytes from the same
//! inputs, and read Python's bytes back to the same values.

#![allow(clippy::unwrap_used)] // Test helpers: a failed unwrap is a failed test.

use std::path::PathBuf;

use base64::Engine as _;
use payload_converter::converter::{EncodingPayloadConverter, ProtoBinaryConverter};
use payload_converter::{
    CompositeConverter, FailureConverter, Json, JsonStyle, PayloadConverter, Proto,
    TemporalFailure, Value, from_payload_as,
};
use payload_proto::temporal::api::common::v1::{Payload, Payloads, WorkflowExecution};
use payload_proto::temporal::api::enums::v1::TimeoutType;
use payload_proto::temporal::api::failure::v1::failure::FailureInfo;
use payload_proto::temporal::api::failure::v1::{CanceledFailureInfo, Failure, TimeoutFailureInfo};
use prost::Message;
use serde_json::Value as JsonValue;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/python")
}

fn cases(kind: &str) -> Vec<JsonValue> {
    let text = std::fs::read_to_string(dir().join("cases.json")).expect("cases.json is committed");
    let all: Vec<JsonValue> = serde_json::from_str(&text).expect("cases.json is JSON");
    let out: Vec<JsonValue> = all.into_iter().filter(|c| c["kind"] == kind).collect();
    assert!(!out.is_empty(), "no {kind} cases in cases.json");
    out
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(dir().join(name)).unwrap_or_else(|e| panic!("reading {name}: {e}"))
}

/// The converter that writes Python's bytes: standard order, ASCII escapes.
fn python_like() -> CompositeConverter {
    CompositeConverter::standard_with_style(JsonStyle::AsciiEscaped)
}

fn payload_from_case(case: &JsonValue) -> Payload {
    let conv = python_like();
    match case["encoding"].as_str().expect("encoding") {
        "binary/null" => conv.to_payload(&Value::Null).unwrap(),
        "binary/plain" => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(case["value_b64"].as_str().unwrap())
                .unwrap();
            conv.to_payload(&Value::Bytes(&bytes)).unwrap()
        }
        "json/plain" => conv.to_payload(&Value::json(&case["value"])).unwrap(),
        encoding @ ("json/protobuf" | "binary/protobuf") => {
            let json = &case["proto_json"];
            let to = |value: &Value<'_>| {
                if encoding == "binary/protobuf" {
                    ProtoBinaryConverter.to_payload(value).unwrap().unwrap()
                } else {
                    conv.to_payload(value).unwrap()
                }
            };
            match case["message_type"].as_str().unwrap() {
                "temporal.api.common.v1.WorkflowExecution" => to(&Value::proto(
                    &serde_json::from_value::<WorkflowExecution>(json.clone()).unwrap(),
                )),
                "temporal.api.failure.v1.Failure" => to(&Value::proto(
                    &serde_json::from_value::<Failure>(json.clone()).unwrap(),
                )),
                other => panic!("no Rust type for {other}"),
            }
        }
        other => panic!("unexpected encoding {other}"),
    }
}

#[test]
fn we_write_the_same_payload_bytes_as_python() {
    let mut checked = 0;
    for case in cases("payload") {
        let name = case["case"].as_str().unwrap();
        let ours = payload_from_case(&case).encode_to_vec();
        let theirs = read(&format!("{name}.payload.bin"));
        assert_eq!(ours, theirs, "case {name}: our bytes differ from Python's");
        checked += 1;
    }
    assert_eq!(checked, 17);
}

#[test]
fn we_read_python_payloads_back_to_the_same_values() {
    let conv = CompositeConverter::default();
    for case in cases("payload") {
        let name = case["case"].as_str().unwrap();
        let payload = Payload::decode(read(&format!("{name}.payload.bin")).as_slice()).unwrap();
        // Python's proto3 JSON of the same payload parses to the same message.
        let from_json: Payload =
            serde_json::from_slice(&read(&format!("{name}.payload.json"))).unwrap();
        assert_eq!(from_json, payload, "case {name}: .json and .bin disagree");
        match case["encoding"].as_str().unwrap() {
            "binary/null" => assert_eq!(
                from_payload_as::<Option<Json<i32>>>(&conv, &payload).unwrap(),
                None
            ),
            "binary/plain" => {
                let expected = base64::engine::general_purpose::STANDARD
                    .decode(case["value_b64"].as_str().unwrap())
                    .unwrap();
                assert_eq!(
                    from_payload_as::<Vec<u8>>(&conv, &payload).unwrap(),
                    expected,
                    "{name}"
                );
            }
            "json/plain" => {
                let Json(value) = from_payload_as::<Json<JsonValue>>(&conv, &payload).unwrap();
                assert_eq!(value, case["value"], "{name}");
            }
            _ => match case["message_type"].as_str().unwrap() {
                "temporal.api.common.v1.WorkflowExecution" => {
                    let Proto(m) =
                        from_payload_as::<Proto<WorkflowExecution>>(&conv, &payload).unwrap();
                    assert_eq!(
                        serde_json::to_value(m).unwrap(),
                        case["proto_json"],
                        "{name}"
                    );
                }
                _ => {
                    let Proto(m) = from_payload_as::<Proto<Failure>>(&conv, &payload).unwrap();
                    assert_eq!(
                        serde_json::to_value(m).unwrap(),
                        case["proto_json"],
                        "{name}"
                    );
                }
            },
        }
    }
}

fn details(values: &JsonValue) -> Option<Payloads> {
    let values = values.as_array().map(Vec::as_slice).unwrap_or_default();
    if values.is_empty() {
        return None;
    }
    let conv = python_like();
    Some(Payloads {
        payloads: values
            .iter()
            .map(|v| conv.to_payload(&Value::json(v)).unwrap())
            .collect(),
    })
}

/// The Rust failure for a case's input description.
fn failure_from_input(input: &JsonValue) -> TemporalFailure {
    let message = input["message"].as_str().unwrap();
    let mut failure = match input["exception"].as_str() {
        Some("temporalio.exceptions.CancelledError") => TemporalFailure {
            message: message.to_owned(),
            info: Some(FailureInfo::CanceledFailureInfo(CanceledFailureInfo {
                details: details(&input["details"]),
                ..Default::default()
            })),
            ..Default::default()
        },
        Some("temporalio.exceptions.TimeoutError") => TemporalFailure {
            message: message.to_owned(),
            info: Some(FailureInfo::TimeoutFailureInfo(TimeoutFailureInfo {
                timeout_type: TimeoutType::StartToClose.into(),
                last_heartbeat_details: details(&input["last_heartbeat_details"]),
            })),
            ..Default::default()
        },
        Some("builtins.ValueError") => TemporalFailure::application(message, "ValueError"),
        _ => {
            let mut f = TemporalFailure::application(message, input["type"].as_str().unwrap());
            if input["non_retryable"] == true {
                f = f.non_retryable();
            }
            if let Some(d) = details(&input["details"]) {
                f = f.with_details(d);
            }
            f
        }
    };
    if let Some(stack) = input["stack_trace"].as_str() {
        failure.stack_trace = stack.to_owned();
    }
    if input.get("cause").is_some() {
        failure.cause = Some(Box::new(failure_from_input(&input["cause"])));
    }
    failure
}

#[test]
fn we_write_the_same_failure_bytes_as_python() {
    let conv = python_like();
    let mut checked = 0;
    for case in cases("failure") {
        let name = case["case"].as_str().unwrap();
        let encoded = case["encoded_attributes"] == true;
        let failure = failure_from_input(&case["input"]);
        let ours = FailureConverter::new(encoded)
            .to_failure(&failure, &conv)
            .unwrap();
        let theirs = Failure::decode(read(&format!("{name}.failure.bin")).as_slice()).unwrap();
        assert_eq!(
            ours, theirs,
            "case {name}: our failure differs from Python's"
        );
        assert_eq!(
            ours.encode_to_vec(),
            read(&format!("{name}.failure.bin")),
            "case {name}: bytes"
        );
        checked += 1;
    }
    assert_eq!(checked, 8);
}

#[test]
fn we_decode_python_failures_with_encoded_attributes() {
    let conv = CompositeConverter::default();
    for case in cases("failure") {
        let name = case["case"].as_str().unwrap();
        let proto = Failure::decode(read(&format!("{name}.failure.bin")).as_slice()).unwrap();
        let from_json: Failure =
            serde_json::from_slice(&read(&format!("{name}.failure.json"))).unwrap();
        assert_eq!(from_json, proto, "case {name}: .json and .bin disagree");
        let failure = FailureConverter::default().from_failure(proto, &conv);
        let expected = failure_from_input(&case["input"]);
        let messages: Vec<&str> = failure.chain().map(|f| f.message.as_str()).collect();
        let expected_messages: Vec<&str> = expected.chain().map(|f| f.message.as_str()).collect();
        assert_eq!(messages, expected_messages, "case {name}");
        if let Some(stacks) = case["decoded_stack_traces"].as_array() {
            let ours: Vec<&str> = failure.chain().map(|f| f.stack_trace.as_str()).collect();
            let theirs: Vec<&str> = stacks.iter().map(|s| s.as_str().unwrap()).collect();
            assert_eq!(ours, theirs, "case {name}");
        }
        if let Some(types) = case["decoded_types"].as_array() {
            let ours: Vec<&str> = failure
                .chain()
                .map(|f| f.application_type().unwrap_or(""))
                .collect();
            let theirs: Vec<&str> = types.iter().map(|s| s.as_str().unwrap()).collect();
            assert_eq!(ours, theirs, "case {name}");
        }
        assert!(
            failure.chain().all(|f| f.message != "Encoded failure"),
            "case {name}"
        );
    }
}
