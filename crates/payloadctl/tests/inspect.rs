//! `payloadctl inspect`: encodings, keys, sizes and value types, never
//! values.

use crate::util::{HISTORIES, history, run, sample_keyring, str_path, write_keyring};

#[test]
fn a_real_history_shows_chains_and_types_but_no_values() {
    let dir = tempfile::tempdir().unwrap();
    let keyring = sample_keyring(dir.path());
    let out = run(&[
        "inspect",
        str_path(&history("order-success")),
        "--keyring",
        str_path(&keyring),
    ])
    .expect_code(0);
    let first = out.stdout.lines().nth(1).unwrap();
    assert!(
        first.starts_with("$.events[0].workflowExecutionStartedEventAttributes.input.payloads[0]"),
        "{first}"
    );
    assert!(
        first.contains("binary/encrypted(key=test-key-id) > json/plain"),
        "{first}"
    );
    assert!(first.ends_with("object"), "{first}");
    assert!(out.stdout.contains("memo.fields.owner"), "{}", out.stdout);
    assert!(
        out.stdout.contains("header.fields[\"payloadkit-trace\"]"),
        "{}",
        out.stdout
    );
    assert!(
        !out.stdout.contains("Ada"),
        "a value leaked: {}",
        out.stdout
    );
    assert!(
        out.stderr.contains("8 payloads, 8 decodable, 0 not"),
        "{}",
        out.stderr
    );
}

#[test]
fn json_output_and_missing_keys() {
    for name in HISTORIES {
        let out = run(&["inspect", str_path(&history(name)), "--output", "json"]).expect_code(1);
        let rows = out.json();
        let encrypted = rows
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["chain"][0] == "binary/encrypted(key=test-key-id)")
            .expect("an encrypted payload");
        assert_eq!(encrypted["key_ids"], serde_json::json!(["test-key-id"]));
        assert!(
            encrypted["error"]
                .as_str()
                .unwrap()
                .contains("pass --keyring PATH")
        );
        assert!(encrypted.get("value_type").is_none());
    }
    let dir = tempfile::tempdir().unwrap();
    let other = write_keyring(dir.path(), "other.toml", &[("other", &[3u8; 32])]);
    let out = run(&[
        "inspect",
        str_path(&history("charge-failure")),
        "--keyring",
        str_path(&other),
    ])
    .expect_code(1);
    assert!(
        out.stdout.contains("binary/encrypted(key=test-key-id) > ?"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("cannot decode: unknown encryption key id `test-key-id`"),
        "{}",
        out.stdout
    );
}

#[test]
fn storage_references_are_shown_not_fetched() {
    // A reference as the Python SDK's S3 driver writes it, and a malformed one.
    let reference = serde_json::json!({
        "driverName": "aws.s3driver",
        "claimData": {
            "bucket": "temporal-payloads",
            "key": "v0/ns/default/wt/W/wi/1/ri/r/d/sha256/ab",
            "hash_algorithm": "sha256",
            "hash_value": "ab",
        },
    });
    let b64 = |b: &[u8]| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(b)
    };
    let body = serde_json::json!({ "payloads": [
        {
            "metadata": {
                "encoding": b64(b"json/protobuf"),
                "messageType": b64(b"temporal.api.sdk.v1.ExternalStorageReference"),
            },
            "data": b64(reference.to_string().as_bytes()),
            "externalPayloads": [{ "sizeBytes": "1048600" }],
        },
        {
            "metadata": {
                "encoding": b64(b"json/protobuf"),
                "messageType": b64(b"temporal.api.sdk.v1.ExternalStorageReference"),
            },
            "data": b64(b"{\"driverName\":"),
        },
    ]});
    let out = crate::util::run_with_stdin(&["inspect"], body.to_string().as_bytes()).expect_code(1);
    let first = out.stdout.lines().nth(1).unwrap();
    assert!(
        first.ends_with(
            "stored externally: aws.s3driver temporal-payloads/v0/ns/default/wt/W/wi/1/ri/r/d/sha256/ab, 1048600 bytes"
        ),
        "{first}"
    );
    let second = out.stdout.lines().nth(2).unwrap();
    assert!(second.contains("malformed storage reference"), "{second}");
    let out = crate::util::run_with_stdin(
        &["inspect", "--output", "json"],
        body.to_string().as_bytes(),
    )
    .expect_code(1);
    assert_eq!(out.json()[0]["reference"]["size_bytes"], 1_048_600);
}
