//! What the tests of several crates share, in one place (a dev-dependency
//! only; nothing ships it): proptest strategies for payloads, codecs that
//! break the codec contract on purpose, and the sample keys of the official
//! samples with a keyring file that holds them.
//!
//! # Examples
//!
//! ```
//! use proptest::strategy::{Strategy, ValueTree};
//! use proptest::test_runner::TestRunner;
//!
//! let mut runner = TestRunner::default();
//! let payload = test_support::payload(64).new_tree(&mut runner).unwrap().current();
//! assert!(payload.data.len() <= 64);
//! ```

use std::path::{Path, PathBuf};

use base64::Engine as _;
use bytes::Bytes;
use payload_converter::codec::CodecResult;
use payload_converter::{BoxFuture, DataConverter, PayloadCodec, Value};
use payload_proto::temporal::api::common::v1::payload::ExternalPayloadDetails;
use payload_proto::temporal::api::common::v1::{Payload, WorkflowExecution};
use proptest::prelude::*;
use prost::Message as _;

/// The Python sample's key (`test-key-test-key-test-key-test!`), which the
/// committed Python vectors were made with.
pub const SAMPLE_KEY: &[u8; 32] = b"test-key-test-key-test-key-test!";
/// The Python sample's key id.
pub const SAMPLE_KEY_ID: &str = "test-key-id";
/// A second key, as after a rotation: bytes 0 to 31.
pub const ROTATED_KEY: [u8; 32] = {
    let mut key = [0_u8; 32];
    let mut i = 0;
    while i < 32 {
        key[i] = i as u8;
        i += 1;
    }
    key
};
/// The rotated key's id.
pub const ROTATED_KEY_ID: &str = "rotated-old-key";

/// The golden vector cases committed in `dir`: the stems of its
/// `<case>.bin` files (not `<case>.inner.bin`), sorted.
pub fn vector_cases(dir: &Path) -> Vec<String> {
    let mut cases: Vec<String> = std::fs::read_dir(dir)
        .expect("the testdata folder is readable")
        .map(|e| {
            e.expect("a directory entry")
                .file_name()
                .into_string()
                .expect("UTF-8 file names")
        })
        .filter_map(|name| {
            let stem = name.strip_suffix(".bin")?;
            (!stem.ends_with(".inner")).then(|| stem.to_owned())
        })
        .collect();
    cases.sort();
    cases
}

/// Writes `keyring.toml` in `dir` with the sample key active and the
/// rotated key kept, and returns its path.
pub fn write_sample_keyring(dir: &Path) -> PathBuf {
    let b64 = |k: &[u8]| base64::engine::general_purpose::STANDARD.encode(k);
    let text = format!(
        "active = \"{SAMPLE_KEY_ID}\"\n\n[[keys]]\nid = \"{SAMPLE_KEY_ID}\"\nbase64 = \"{}\"\n\n\
         [[keys]]\nid = \"{ROTATED_KEY_ID}\"\nbase64 = \"{}\"\n",
        b64(SAMPLE_KEY),
        b64(&ROTATED_KEY)
    );
    let path = dir.join("keyring.toml");
    std::fs::write(&path, text).expect("the test folder is writable");
    path
}

/// Sample values of every kind the data converter writes (strings, JSON
/// objects, null, bytes, protobuf, non-ASCII, a compressible 256 KiB
/// string), converted by the default data converter, with a name each: the
/// inner payloads of the vectors the Rust codecs write for Python to check.
pub async fn sample_payloads() -> Vec<(&'static str, Payload)> {
    let dict = serde_json::json!({"b": 1, "a": {"z": [1, 2], "y": null}});
    let large = "abcdefgh".repeat(32768);
    let unicode = "h\u{e9}llo \u{2713} \u{1f600}";
    let execution = WorkflowExecution {
        workflow_id: "wf-1".to_owned(),
        run_id: "run-1".to_owned(),
    };
    let values = [
        ("string", Value::json(&"hello")),
        ("null", Value::Null),
        ("bytes", Value::Bytes(b"\x00\x01\xffhello")),
        ("empty_bytes", Value::Bytes(b"")),
        ("dict", Value::json(&dict)),
        ("large", Value::json(&large)),
        ("unicode", Value::json(&unicode)),
        ("proto", Value::proto(&execution)),
    ];
    let payloads = DataConverter::default()
        .to_payloads(&values.iter().map(|(_, v)| *v).collect::<Vec<_>>())
        .await
        .expect("the sample values convert");
    values
        .iter()
        .map(|(name, _)| *name)
        .zip(payloads.payloads)
        .collect()
}

/// Decodes the golden vector `case`'s outer payload with `codec` and checks
/// the result is, byte for byte, `want` (the serialized payload of the
/// case's file `inner_file`); returns the decoded payload.
pub async fn decode_vector(
    codec: &dyn PayloadCodec,
    outer: Payload,
    want: &[u8],
    (case, inner_file): (&str, &str),
) -> Payload {
    let mut decoded = codec
        .decode(vec![outer])
        .await
        .unwrap_or_else(|e| panic!("{case}: {e}"));
    assert_eq!(decoded.len(), 1, "{case}");
    let decoded = decoded.remove(0);
    assert_eq!(
        decoded.encode_to_vec(),
        want,
        "{case}: decoded payload differs from {inner_file}"
    );
    decoded
}

/// Makes `dir` ready for a `write_rust_vectors` test (the tests take it
/// from `$PAYLOADKIT_RUST_VECTORS_DIR`): creates it and removes the `.bin`
/// files of an earlier run, which would be checked too.
pub fn fresh_vectors_dir(dir: &Path) {
    std::fs::create_dir_all(dir).expect("the vectors folder can be created");
    for entry in std::fs::read_dir(dir).expect("the vectors folder is readable") {
        let path = entry.expect("a directory entry").path();
        if path.extension().is_some_and(|e| e == "bin") {
            std::fs::remove_file(&path).expect("a stale vector can be removed");
        }
    }
}

/// Writes the vector `<stem>.bin` (the encoded `outer`) and
/// `<stem>.inner.bin` (the `inner` it must decode to) into `dir`.
pub fn write_vector(dir: &Path, stem: &str, outer: &Payload, inner: &Payload) {
    for (name, payload) in [
        (format!("{stem}.bin"), outer),
        (format!("{stem}.inner.bin"), inner),
    ] {
        std::fs::write(dir.join(name), payload.encode_to_vec())
            .expect("the vectors folder is writable");
    }
}

/// Payload data of at most `max` bytes: random (incompressible) or runs of
/// a few distinct bytes (compressible).
pub fn data(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..=max),
        (proptest::collection::vec(any::<u8>(), 1..4), 0..=max).prop_map(|(pattern, len)| pattern
            .iter()
            .copied()
            .cycle()
            .take(len)
            .collect()),
    ]
}

/// Any payload with at most `max_data` bytes of data: metadata keys with
/// the characters JSON must escape, any metadata values, external details.
pub fn payload(max_data: usize) -> impl Strategy<Value = Payload> {
    (
        proptest::collection::btree_map(
            "[a-zA-Z/_\\-\"\\\\é\\n]{0,12}",
            proptest::collection::vec(any::<u8>(), 0..24),
            0..4,
        ),
        data(max_data),
        proptest::collection::vec(any::<i64>(), 0..2),
    )
        .prop_map(|(metadata, data, sizes)| Payload {
            metadata: metadata
                .into_iter()
                .map(|(k, v)| (k, Bytes::from(v)))
                .collect(),
            data: data.into(),
            external_payloads: sizes
                .into_iter()
                .map(|size_bytes| ExternalPayloadDetails { size_bytes })
                .collect(),
        })
}

/// A batch of 0 to 3 payloads of at most `max_data` bytes each.
pub fn batch(max_data: usize) -> impl Strategy<Value = Vec<Payload>> {
    proptest::collection::vec(payload(max_data), 0..4)
}

/// A codec that breaks the contract: it returns one payload fewer than it
/// was given.
#[derive(Debug)]
pub struct DropsOne;

impl PayloadCodec for DropsOne {
    fn name(&self) -> &str {
        "drops-one"
    }

    fn encode(&self, mut payloads: Vec<Payload>) -> BoxFuture<'_, CodecResult> {
        payloads.pop();
        Box::pin(async move { Ok(payloads) })
    }

    fn decode(&self, payloads: Vec<Payload>) -> BoxFuture<'_, CodecResult> {
        self.encode(payloads)
    }
}
