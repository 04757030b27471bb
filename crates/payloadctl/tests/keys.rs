//! `payloadctl keys`: generate, add, rotate, list, retire on a keyring file.

use crate::util::{SAMPLE_KEY, history, run, run_with_stdin, str_path};

#[test]
fn generate_rotate_list_retire() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyring.toml");
    let kr = str_path(&path);
    let out = run(&["keys", "generate", "--keyring", kr, "--id", "k1"]).expect_code(0);
    assert!(out.stderr.contains("created"), "{}", out.stderr);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "keyring mode {mode:o}");
    }
    // A second generate would overwrite keys: refused.
    let out = run(&["keys", "generate", "--keyring", kr]).expect_code(2);
    assert!(
        out.stderr
            .contains("already exists: use `payloadctl keys rotate`"),
        "{}",
        out.stderr
    );

    let out = run(&["keys", "rotate", "--keyring", kr, "--id", "k2"]).expect_code(0);
    assert!(
        out.stderr.contains("`k2` is active (was `k1`); 1 key kept"),
        "{}",
        out.stderr
    );
    // Default ids: key-<UTC date>-<time>.
    run(&["keys", "rotate", "--keyring", kr]).expect_code(0);

    let listed = run(&["keys", "list", "--keyring", kr, "--output", "json"])
        .expect_code(0)
        .json();
    let keys = listed.as_array().unwrap();
    assert_eq!(keys.len(), 3);
    assert_eq!(keys[0]["id"], "k1");
    assert_eq!(keys[0]["active"], false);
    assert_eq!(keys[1]["id"], "k2");
    let newest = keys[2]["id"].as_str().unwrap();
    assert!(
        newest.starts_with("key-20") && newest.len() == "key-20261123-193400".len(),
        "{newest}"
    );
    assert_eq!(keys[2]["active"], true);
    assert_eq!(keys[2]["source"], "base64");

    // Listing never shows key material.
    let text = std::fs::read_to_string(&path).unwrap();
    let secrets: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("base64 = \""))
        .map(|l| l.trim_end_matches('"'))
        .collect();
    assert_eq!(secrets.len(), 3);
    let table = run(&["keys", "list", "--keyring", kr]).expect_code(0);
    assert!(table.stdout.starts_with("ID "), "{}", table.stdout);
    for secret in secrets {
        assert!(!table.stdout.contains(secret) && !listed.to_string().contains(secret));
        assert!(!table.stderr.contains(secret));
    }

    // The active key cannot be retired; an old one can.
    let out = run(&["keys", "retire", newest, "--keyring", kr]).expect_code(2);
    assert!(
        out.stderr
            .contains("is the active key and cannot be retired"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("rotate first"), "{}", out.stderr);
    run(&["keys", "retire", "k1", "--keyring", kr]).expect_code(0);
    let out = run(&["keys", "retire", "k1", "--keyring", kr]).expect_code(2);
    assert!(
        out.stderr.contains("no key `k1` in the keyring"),
        "{}",
        out.stderr
    );
    let listed = run(&["keys", "list", "--keyring", kr, "--output", "json"])
        .expect_code(0)
        .json();
    assert_eq!(listed.as_array().unwrap().len(), 2);
}

/// An operator's rotation: a new keyring, the old sample key imported from
/// stdin, a new active key; payloads written under the old key still decode.
#[test]
fn rotation_keeps_old_payloads_readable() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyring.toml");
    let kr = str_path(&path);
    run(&["keys", "generate", "--keyring", kr, "--id", "fresh"]).expect_code(0);
    let old = base64::engine::general_purpose::STANDARD.encode(SAMPLE_KEY);
    let out = run_with_stdin(
        &["keys", "add", "test-key-id", "--stdin", "--keyring", kr],
        old.as_bytes(),
    )
    .expect_code(0);
    assert!(
        out.stderr
            .contains("added key `test-key-id` (from stdin, not active)"),
        "{}",
        out.stderr
    );
    run(&["keys", "rotate", "--keyring", kr, "--id", "newest"]).expect_code(0);
    run(&[
        "decode-history",
        str_path(&history("order-success")),
        "--keyring",
        kr,
    ])
    .expect_code(0);
    // New payloads use the new key.
    let encoded = run(&["encode", "--keyring", kr, "--value", "1"]).expect_code(0);
    assert_eq!(
        encoded.json()["payloads"][0]["metadata"]["encryption-key-id"],
        "bmV3ZXN0"
    );
}

#[test]
fn add_references_and_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyring.toml");
    let kr = str_path(&path);
    // No keyring yet: say how to make one.
    let out = run(&["keys", "list", "--keyring", kr]).expect_code(2);
    assert!(
        out.stderr
            .contains("create one with `payloadctl keys generate`"),
        "{}",
        out.stderr
    );
    run(&["keys", "generate", "--keyring", kr, "--id", "k1"]).expect_code(0);
    let out = run(&[
        "keys",
        "add",
        "vault",
        "--env",
        "SOME_UNSET_VARIABLE_FOR_TEST",
        "--keyring",
        kr,
    ])
    .expect_code(0);
    assert!(out.stderr.contains("warning:"), "{}", out.stderr);
    run(&[
        "keys",
        "add",
        "disk",
        "--file",
        "keys/disk.key",
        "--keyring",
        kr,
    ])
    .expect_code(0);
    let table = run(&["keys", "list", "--keyring", kr])
        .expect_code(0)
        .stdout;
    assert!(
        table.contains("env SOME_UNSET_VARIABLE_FOR_TEST"),
        "{table}"
    );
    assert!(table.contains("file keys/disk.key"), "{table}");
    let out = run_with_stdin(
        &["keys", "add", "short", "--stdin", "--keyring", kr],
        b"c2hvcnQ=",
    )
    .expect_code(2);
    assert!(out.stderr.contains("not 32 bytes"), "{}", out.stderr);
    let out = run(&["keys", "add", "k1", "--keyring", kr]).expect_code(2);
    assert!(
        out.stderr.contains("appears more than once"),
        "{}",
        out.stderr
    );
    let out = run(&["keys", "add", "has space", "--keyring", kr]).expect_code(2);
    assert!(out.stderr.contains("printable ASCII"), "{}", out.stderr);
    let out = run(&["keys", "list"]).expect_code(2);
    assert!(
        out.stderr
            .contains("pass --keyring PATH or set PAYLOADCTL_KEYRING"),
        "{}",
        out.stderr
    );
}

#[test]
fn files_left_by_an_interrupted_save_are_removed_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyring.toml");
    let kr = str_path(&path);
    run(&["keys", "generate", "--keyring", kr, "--id", "k1"]).expect_code(0);
    // What `keys rotate` killed between writing and renaming leaves.
    let left = dir.path().join(".keyring.toml.00112233aabbccdd.tmp");
    std::fs::write(&left, std::fs::read(&path).unwrap()).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&left)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - payload_codecs::INTERRUPTED_AFTER * 2)
        .unwrap();
    let out = run(&["keys", "list", "--keyring", kr]).expect_code(0);
    assert!(
        out.stderr.contains(&format!(
            "removed {}, left by an interrupted save of the keyring",
            left.display()
        )),
        "{}",
        out.stderr
    );
    assert!(!left.exists());
    let out = run(&["keys", "list", "--keyring", kr]).expect_code(0);
    assert!(!out.stderr.contains("removed"), "{}", out.stderr);
}
