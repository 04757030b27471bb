//! `payloadctl encode` and `decode`: Codec Server bodies through the local
//! keyring and chain.

use crate::util::{
    SAMPLE_KEY_ID, codec_server, run, run_with_stdin, sample_keyring, str_path, write_keyring,
};

#[test]
fn values_round_trip_through_encode_and_decode() {
    let dir = tempfile::tempdir().unwrap();
    let keyring = sample_keyring(dir.path());
    let kr = str_path(&keyring);
    let encoded = run(&[
        "encode",
        "--keyring",
        kr,
        "--value",
        "\"hello\"",
        "--value",
        "null",
        "--value",
        r#"{"b": 1, "a": [true]}"#,
    ])
    .expect_code(0);
    let body = encoded.json();
    let payloads = body["payloads"].as_array().unwrap();
    assert_eq!(payloads.len(), 3);
    for p in payloads {
        // "binary/encrypted", key "key-2026-11" (the active key).
        assert_eq!(p["metadata"]["encoding"], "YmluYXJ5L2VuY3J5cHRlZA==");
        assert_eq!(p["metadata"]["encryption-key-id"], "a2V5LTIwMjYtMTE=");
    }
    let decoded = run_with_stdin(
        &["decode", "--keyring", kr, "--show-values"],
        encoded.stdout.as_bytes(),
    )
    .expect_code(0)
    .json();
    let values: Vec<_> = decoded["payloads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["value"].clone())
        .collect();
    assert_eq!(
        values,
        [
            serde_json::json!("hello"),
            serde_json::Value::Null,
            serde_json::json!({"b": 1, "a": [true]})
        ]
    );
    // null is binary/null, as the SDKs write None.
    assert_eq!(
        decoded["payloads"][1]["metadata"]["encoding"],
        "YmluYXJ5L251bGw="
    );
}

#[test]
fn a_chain_compresses_then_encrypts() {
    let dir = tempfile::tempdir().unwrap();
    let keyring = sample_keyring(dir.path());
    let kr = str_path(&keyring);
    let big = format!("\"{}\"", "abc".repeat(2000));
    for chain in ["encrypt,zstd", "encrypt,zlib"] {
        let encoded =
            run(&["encode", "--keyring", kr, "--chain", chain, "--value", &big]).expect_code(0);
        let inspect =
            run_with_stdin(&["inspect", "--keyring", kr], encoded.stdout.as_bytes()).expect_code(0);
        let want = match chain {
            "encrypt,zstd" => "binary/encrypted(key=key-2026-11) > binary/zstd > json/plain",
            _ => "binary/encrypted(key=key-2026-11) > binary/zlib > json/plain",
        };
        assert!(inspect.stdout.contains(want), "{chain}: {}", inspect.stdout);
        let decoded = run_with_stdin(
            &["decode", "--keyring", kr, "--show-values"],
            encoded.stdout.as_bytes(),
        )
        .expect_code(0)
        .json();
        assert_eq!(
            decoded["payloads"][0]["value"],
            serde_json::json!("abc".repeat(2000))
        );
    }
}

#[test]
fn encode_and_decode_through_a_codec_server() {
    let dir = tempfile::tempdir().unwrap();
    let keyring = sample_keyring(dir.path());
    let server = codec_server(&keyring);
    let encoded = run(&["encode", "--remote", &server.url(), "--value", "42"]).expect_code(0);
    // The server's keyring is ours: decode locally.
    let decoded = run_with_stdin(
        &["decode", "--keyring", str_path(&keyring), "--show-values"],
        encoded.stdout.as_bytes(),
    )
    .expect_code(0)
    .json();
    assert_eq!(decoded["payloads"][0]["value"], 42);
}

#[test]
fn errors_say_what_to_do() {
    let out = run(&["encode", "--value", "\"x\""]).expect_code(2);
    assert!(
        out.stderr
            .contains("no keyring file given: pass --keyring PATH or set PAYLOADCTL_KEYRING"),
        "{}",
        out.stderr
    );
    let out = run(&["encode", "--chain", "zstd", "--value", "not json"]).expect_code(2);
    assert!(
        out.stderr.contains("--value number 1 is not JSON"),
        "{}",
        out.stderr
    );
    let out = run_with_stdin(&["decode"], br#"{"events": []}"#).expect_code(2);
    assert!(
        out.stderr.contains("is not a payloads body"),
        "{}",
        out.stderr
    );
    // Usage errors are exit 2 too.
    run(&["encode", "--chain", "rot13"]).expect_code(2);
}

#[test]
fn undecodable_payloads_exit_1_and_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let keyring = sample_keyring(dir.path());
    let encoded = run(&[
        "encode",
        "--keyring",
        str_path(&keyring),
        "--value",
        "1",
        "--value",
        "2",
    ])
    .expect_code(0);
    let other = write_keyring(dir.path(), "other.toml", &[(SAMPLE_KEY_ID, &[9u8; 32])]);
    let out = run_with_stdin(
        &["decode", "--keyring", str_path(&other)],
        encoded.stdout.as_bytes(),
    )
    .expect_code(1);
    assert_eq!(out.json(), encoded.json());
    assert!(
        out.stderr
            .contains("cannot decode payload 0: unknown encryption key id `key-2026-11`"),
        "{}",
        out.stderr
    );
}
