//! `--kms`: envelope encryption in the Temporal Proxy's format with encode,
//! decode and inspect, and `probe-kek`. A keyring file's keys are the KEKs
//! here (`keyring://`); `cargo xtask conformance kms` runs against OpenBao
//! and moto's KMS.

use std::path::{Path, PathBuf};

use crate::util::{run, run_with_stdin, sample_keyring, str_path, write_keyring};

/// A KMS file whose KEKs are the keys of a keyring file beside it.
fn kms_file(dir: &Path, extra: &str) -> PathBuf {
    write_keyring(
        dir,
        "keks.toml",
        &[("kek-1", &[1u8; 32]), ("kek-2", &[2u8; 32])],
    );
    let path = dir.join("kms.toml");
    std::fs::write(
        &path,
        format!("kek = \"keyring://kek-1\"\nkeyring = \"keks.toml\"\n{extra}"),
    )
    .unwrap();
    path
}

fn b64(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

#[test]
fn encode_and_decode_under_a_kek() {
    let dir = tempfile::tempdir().unwrap();
    let kms = kms_file(dir.path(), "");
    let encoded = run(&[
        "encode",
        "--kms",
        str_path(&kms),
        "--value",
        "\"hi\"",
        "--value",
        "1",
    ])
    .expect_code(0);
    let body = encoded.json();
    for p in body["payloads"].as_array().unwrap() {
        assert_eq!(p["metadata"]["encryption-key-id"], b64("keyring://kek-1"));
        assert!(p["metadata"]["encryption-dek"].is_string());
    }
    let decoded = run_with_stdin(
        &["decode", "--kms", str_path(&kms), "--show-values"],
        encoded.stdout.as_bytes(),
    )
    .expect_code(0)
    .json();
    assert_eq!(decoded["payloads"][0]["value"], "hi");
    assert_eq!(decoded["payloads"][1]["value"], 1);

    let without = run_with_stdin(&["decode"], encoded.stdout.as_bytes()).expect_code(1);
    assert!(
        without.stderr.contains("pass --kms FILE"),
        "{}",
        without.stderr
    );

    let shown = run_with_stdin(
        &["inspect", "--kms", str_path(&kms), "--output", "json"],
        encoded.stdout.as_bytes(),
    )
    .expect_code(0);
    assert!(shown.stdout.contains("keyring://kek-1"), "{}", shown.stdout);
    assert_eq!(shown.json()[0]["value_type"], "string", "{}", shown.stdout);
}

#[test]
fn keyring_and_envelope_payloads_decode_together() {
    let dir = tempfile::tempdir().unwrap();
    let kms = kms_file(dir.path(), "");
    let keyring = sample_keyring(dir.path());
    let old = run(&[
        "encode",
        "--keyring",
        str_path(&keyring),
        "--value",
        "\"old\"",
    ])
    .expect_code(0);
    let new = run(&["encode", "--kms", str_path(&kms), "--value", "\"new\""]).expect_code(0);
    let mut payloads = old.json()["payloads"].as_array().unwrap().clone();
    payloads.extend(new.json()["payloads"].as_array().unwrap().iter().cloned());
    let body = serde_json::json!({ "payloads": payloads }).to_string();
    let decoded = run_with_stdin(
        &[
            "decode",
            "--kms",
            str_path(&kms),
            "--keyring",
            str_path(&keyring),
            "--show-values",
        ],
        body.as_bytes(),
    )
    .expect_code(0)
    .json();
    assert_eq!(decoded["payloads"][0]["value"], "old");
    assert_eq!(decoded["payloads"][1]["value"], "new");
}

#[test]
fn kek_chooses_the_key_and_unlisted_keks_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let kms = kms_file(dir.path(), "");
    let kms = str_path(&kms);
    let encoded = run(&[
        "encode",
        "--kms",
        kms,
        "--kek",
        "keyring://kek-2",
        "--value",
        "2",
    ])
    .expect_code(0);
    assert_eq!(
        encoded.json()["payloads"][0]["metadata"]["encryption-key-id"],
        b64("keyring://kek-2")
    );
    let refused =
        run_with_stdin(&["decode", "--kms", kms], encoded.stdout.as_bytes()).expect_code(1);
    assert!(
        refused.stderr.contains("decrypt_keks"),
        "{}",
        refused.stderr
    );
    run_with_stdin(
        &["decode", "--kms", kms, "--kek", "keyring://kek-2"],
        encoded.stdout.as_bytes(),
    )
    .expect_code(0);
}

#[test]
fn kek_alone_needs_no_file() {
    let kek = "testing://AwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM=";
    let encoded = run(&["encode", "--kek", kek, "--value", "\"solo\""]).expect_code(0);
    let decoded = run_with_stdin(
        &["decode", "--kek", kek, "--show-values"],
        encoded.stdout.as_bytes(),
    )
    .expect_code(0)
    .json();
    assert_eq!(decoded["payloads"][0]["value"], "solo");
}

#[test]
fn probe_kek_passes_working_keks_and_fails_unreachable_ones() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), "t\n").unwrap();
    let kms = kms_file(
        dir.path(),
        "timeout_secs = 1\nattempts = 1\n[vault]\naddress = \"http://127.0.0.1:1\"\ntoken_file = \"token\"\n",
    );
    let kms = str_path(&kms);
    let good = run(&["probe-kek", "--kms", kms]).expect_code(0);
    assert!(
        good.stdout.starts_with("PASS  keyring://kek-1"),
        "{}",
        good.stdout
    );
    let secret = "testing://AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
    let mixed = run(&[
        "probe-kek",
        "--kms",
        kms,
        "--kek",
        secret,
        "--kek",
        "hashivault://payloads",
        "--kek",
        "keyring://nope",
        "--output",
        "json",
    ])
    .expect_code(1);
    let checks = mixed.json();
    let statuses: Vec<_> = checks
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(statuses, ["pass", "fail", "fail"], "{}", mixed.stdout);
    assert!(
        checks[1]["detail"]
            .as_str()
            .unwrap()
            .contains("unavailable"),
        "{checks}"
    );
    assert!(
        checks[2]["detail"].as_str().unwrap().contains("kek-1")
            || checks[2]["detail"].as_str().unwrap().contains("nope"),
        "{checks}"
    );
    assert!(
        !mixed.stdout.contains("AQEBAQEB"),
        "a KEK's key is never shown"
    );
    assert!(
        mixed.stderr.contains("2 of 3 KEK(s) failed"),
        "{}",
        mixed.stderr
    );
}
