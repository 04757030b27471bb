//! Unit and property tests of the standard converters.

use payload_proto::temporal::api::common::v1::{Payload, WorkflowExecution};
use proptest::prelude::*;

use super::*;
use crate::value::{Json, Proto};

fn conv() -> CompositeConverter {
    CompositeConverter::default()
}

#[test]
fn standard_order_matches_the_sdks() {
    let encodings: Vec<_> = conv().encodings().collect();
    assert_eq!(
        encodings,
        [
            "binary/null",
            "binary/plain",
            "json/protobuf",
            "binary/protobuf",
            "json/plain"
        ]
    );
}

#[test]
fn protobuf_messages_become_json_protobuf_with_message_type() {
    let message = WorkflowExecution {
        workflow_id: "wf-1".to_owned(),
        run_id: "run-1".to_owned(),
    };
    let payload = conv().to_payload(&Value::proto(&message)).unwrap();
    assert_eq!(payload.encoding(), Some("json/protobuf"));
    assert_eq!(
        payload.metadata_str("messageType"),
        Some("temporal.api.common.v1.WorkflowExecution")
    );
    // Keys sorted, as Python writes them.
    assert_eq!(
        &payload.data[..],
        br#"{"runId":"run-1","workflowId":"wf-1"}"#
    );
    let Proto(back) = from_payload_as::<Proto<WorkflowExecution>>(&conv(), &payload).unwrap();
    assert_eq!(back, message);
}

#[test]
fn binary_protobuf_only_without_the_json_converter() {
    let only_binary = CompositeConverter::new(vec![
        Box::new(ProtoBinaryConverter),
        Box::new(JsonConverter::default()),
    ]);
    let message = WorkflowExecution {
        workflow_id: "w".to_owned(),
        run_id: String::new(),
    };
    let payload = only_binary.to_payload(&Value::proto(&message)).unwrap();
    assert_eq!(payload.encoding(), Some("binary/protobuf"));
    let Proto(back) = from_payload_as::<Proto<WorkflowExecution>>(&only_binary, &payload).unwrap();
    assert_eq!(back, message);
}

#[test]
fn decoding_errors_say_what_is_wrong() {
    let conv = conv();
    let no_encoding = Payload::default();
    assert!(matches!(
        conv.from_payload(&no_encoding),
        Err(ConversionError::MissingEncoding)
    ));

    let encrypted = Payload::with_encoding("binary/encrypted", &b"xx"[..]);
    let err = conv.from_payload(&encrypted).unwrap_err();
    assert!(err.to_string().contains("`binary/encrypted`"), "{err}");
    assert!(
        err.to_string()
            .contains("decode the payload with that codec first"),
        "{err}"
    );

    let bad_json = Payload::with_encoding("json/plain", &b"{\"a\": tru"[..]);
    let err = from_payload_as::<Json<serde_json::Value>>(&conv, &bad_json).unwrap_err();
    assert!(err.to_string().contains("line 1 column"), "{err}");

    let wrong_type = conv
        .to_payload(&Value::proto(&WorkflowExecution::default()))
        .unwrap();
    let err = from_payload_as::<Proto<payload_proto::temporal::api::common::v1::WorkflowType>>(
        &conv,
        &wrong_type,
    )
    .unwrap_err();
    assert!(
        matches!(err, ConversionError::MessageTypeMismatch { .. }),
        "{err}"
    );

    let bytes = Payload::with_encoding("binary/plain", &b"\x00"[..]);
    let err = from_payload_as::<Json<String>>(&conv, &bytes).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot read a payload with encoding `binary/plain` as JSON"
    );
}

#[test]
fn message_type_is_optional_when_decoding() {
    let payload = Payload::with_encoding("json/protobuf", &br#"{"workflowId":"w"}"#[..]);
    let Proto(m) = from_payload_as::<Proto<WorkflowExecution>>(&conv(), &payload).unwrap();
    assert_eq!(m.workflow_id, "w");
}

#[test]
fn null_reads_as_none_and_unit() {
    let null = conv().to_payload(&Value::Null).unwrap();
    assert_eq!(null.encoding(), Some("binary/null"));
    assert!(null.data.is_empty());
    assert_eq!(
        from_payload_as::<Option<Json<i32>>>(&conv(), &null).unwrap(),
        None
    );
    assert_eq!(
        from_payload_as::<Json<Option<i32>>>(&conv(), &null).unwrap(),
        Json(None)
    );
    from_payload_as::<()>(&conv(), &null).unwrap();
    assert_eq!(
        conv().to_payload(&Value::option(&None::<i32>)).unwrap(),
        null
    );
}

#[test]
fn a_composite_without_a_matching_converter_refuses_the_value() {
    let only_null = CompositeConverter::new(vec![Box::new(NullConverter)]);
    let err = only_null.to_payload(&Value::json(&1)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "no payload converter accepts a JSON-serializable value; add a converter for it"
    );
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        // Finite floats only: JSON has no NaN or infinity.
        (-1e300f64..1e300).prop_map(serde_json::Value::from),
        ".*".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(".*", inner, 0..8)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn json_round_trips_any_value(value in json_value(), ascii in any::<bool>()) {
        let style = if ascii { JsonStyle::AsciiEscaped } else { JsonStyle::Utf8 };
        let conv = CompositeConverter::standard_with_style(style);
        let payload = conv.to_payload(&Value::json(&value)).unwrap();
        prop_assert_eq!(payload.encoding(), Some("json/plain"));
        if ascii {
            prop_assert!(payload.data.is_ascii());
        }
        let Json(back) = from_payload_as::<Json<serde_json::Value>>(&conv, &payload).unwrap();
        prop_assert_eq!(back, value);
    }

    #[test]
    fn bytes_round_trip(data in prop::collection::vec(any::<u8>(), 0..512)) {
        let payload = conv().to_payload(&Value::Bytes(&data)).unwrap();
        prop_assert_eq!(payload.encoding(), Some("binary/plain"));
        prop_assert_eq!(from_payload_as::<Vec<u8>>(&conv(), &payload).unwrap(), data);
    }

    #[test]
    fn protobuf_round_trips_both_encodings(workflow_id in ".*", run_id in ".*") {
        let message = WorkflowExecution { workflow_id, run_id };
        let json = conv().to_payload(&Value::proto(&message)).unwrap();
        let Proto(back) = from_payload_as::<Proto<WorkflowExecution>>(&conv(), &json).unwrap();
        prop_assert_eq!(&back, &message);
        let binary = ProtoBinaryConverter.to_payload(&Value::proto(&message)).unwrap().unwrap();
        let Proto(back) = from_payload_as::<Proto<WorkflowExecution>>(&conv(), &binary).unwrap();
        prop_assert_eq!(back, message);
    }

    #[test]
    fn arbitrary_payloads_never_panic(
        encoding in prop_oneof![
            Just("json/plain".to_owned()),
            Just("json/protobuf".to_owned()),
            Just("binary/protobuf".to_owned()),
            Just("binary/null".to_owned()),
            ".*",
        ],
        data in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let payload = Payload::with_encoding(&encoding, data);
        let _ = from_payload_as::<Json<serde_json::Value>>(&conv(), &payload);
        let _ = from_payload_as::<Proto<WorkflowExecution>>(&conv(), &payload);
        let _ = from_payload_as::<serde_json::Value>(&conv(), &payload);
    }
}

/// Found by `json_round_trips_any_value`: without serde_json's
/// `float_roundtrip` this float came back as a neighbouring value.
#[test]
fn floats_round_trip_exactly() {
    let value = serde_json::json!({"": 1.052164419302469e299});
    let payload = conv().to_payload(&Value::json(&value)).unwrap();
    let Json(back) = from_payload_as::<Json<serde_json::Value>>(&conv(), &payload).unwrap();
    assert_eq!(back, value);
}
