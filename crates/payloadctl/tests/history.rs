//! `payloadctl decode-history` on histories exported by the real
//! `temporal` CLI from workflows the real Python SDK ran with the samples'
//! encryption codec: every value the workflow saw comes back, locally and
//! through a Codec Server.

use crate::util::{
    HISTORIES, codec_server, expected, history, messages, plain_values, run, run_with_stdin,
    sample_keyring, str_path, write_keyring,
};

/// Asserts that `decoded` holds no encrypted payload, every expected value
/// and failure message, and no "Encoded failure".
#[track_caller]
fn assert_recovered(name: &str, decoded: &serde_json::Value) {
    let expected = expected(name);
    let (values, encodings) = plain_values(decoded);
    assert!(
        !encodings.iter().any(|e| e == "binary/encrypted"),
        "{name}: encrypted payloads left: {encodings:?}"
    );
    for value in expected["values"].as_array().unwrap() {
        assert!(
            values.contains(value),
            "{name}: value {value} not recovered; decoded values: {values:#?}"
        );
    }
    let found = messages(decoded);
    for message in expected["failure_messages"].as_array().unwrap() {
        assert!(
            found.iter().any(|m| m == message.as_str().unwrap()),
            "{name}: failure message {message} not restored; messages: {found:?}"
        );
    }
    assert!(
        !found.iter().any(|m| m == "Encoded failure"),
        "{name}: an encoded failure is left: {found:?}"
    );
}

#[test]
fn every_value_of_every_history_is_recovered_with_the_keyring() {
    let dir = tempfile::tempdir().unwrap();
    let keyring = sample_keyring(dir.path());
    for name in HISTORIES {
        let out = run(&[
            "decode-history",
            str_path(&history(name)),
            "--keyring",
            str_path(&keyring),
        ])
        .expect_code(0);
        assert_recovered(name, &out.json());
        assert!(out.stderr.contains("0 not decodable"), "{}", out.stderr);
    }
}

#[test]
fn failure_messages_and_stack_traces_are_restored_at_every_level() {
    let dir = tempfile::tempdir().unwrap();
    let keyring = sample_keyring(dir.path());
    let out = run(&[
        "decode-history",
        str_path(&history("charge-failure")),
        "--keyring",
        str_path(&keyring),
    ])
    .expect_code(0);
    let doc = out.json();
    let failed = doc["events"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|e| e.get("workflowExecutionFailedEventAttributes"))
        .expect("a WorkflowExecutionFailed event");
    let failure = &failed["failure"];
    assert_eq!(failure["message"], "order 7 could not be charged");
    assert!(
        failure["stackTrace"]
            .as_str()
            .unwrap()
            .contains("raise ApplicationError")
    );
    assert!(failure.get("encodedAttributes").is_none());
    assert_eq!(failure["applicationFailureInfo"]["type"], "OrderFailed");
    let activity = &failure["cause"];
    assert_eq!(activity["message"], "Activity task failed");
    assert_eq!(
        activity["cause"]["message"],
        "charge declined by the issuer"
    );
    assert_eq!(
        activity["cause"]["cause"]["message"],
        "card 4242 expired in 2020"
    );
    assert!(
        out.stderr.contains("6 failure messages restored"),
        "{}",
        out.stderr
    );
}

#[test]
fn through_a_codec_server_the_result_is_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let keyring = sample_keyring(dir.path());
    let server = codec_server(&keyring);
    for name in HISTORIES {
        let remote = run(&[
            "decode-history",
            str_path(&history(name)),
            "--remote",
            &server.url(),
            "--namespace",
            "default",
        ])
        .expect_code(0);
        assert_recovered(name, &remote.json());
        let local = run(&[
            "decode-history",
            str_path(&history(name)),
            "--keyring",
            str_path(&keyring),
        ])
        .expect_code(0);
        assert_eq!(
            remote.stdout, local.stdout,
            "{name}: remote and local differ"
        );
    }
}

#[test]
fn without_keys_the_document_comes_out_byte_for_byte() {
    for name in HISTORIES {
        let original = std::fs::read_to_string(history(name)).unwrap();
        let out = run(&["decode-history", str_path(&history(name))]).expect_code(1);
        assert_eq!(out.stdout, original, "{name}");
        assert!(
            out.stderr
                .contains("pass --keyring PATH or set PAYLOADCTL_KEYRING"),
            "{}",
            out.stderr
        );
        assert!(
            out.stderr
                .contains("$.events[0].workflowExecutionStartedEventAttributes.input.payloads[0]")
        );
    }
}

#[test]
fn an_unknown_key_is_reported_with_the_payload_path() {
    let dir = tempfile::tempdir().unwrap();
    let keyring = write_keyring(dir.path(), "other.toml", &[("other-key", &[1u8; 32])]);
    let out = run(&[
        "decode-history",
        str_path(&history("order-success")),
        "--keyring",
        str_path(&keyring),
    ])
    .expect_code(1);
    assert!(
        out.stderr.contains(
            "cannot decode the payload at $.events[0].workflowExecutionStartedEventAttributes.input.payloads[0]: \
             unknown encryption key id `test-key-id`"
        ),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("payloadctl keys list"),
        "{}",
        out.stderr
    );
}

#[test]
fn output_file_stdin_and_values() {
    let dir = tempfile::tempdir().unwrap();
    let keyring = sample_keyring(dir.path());
    let target = dir.path().join("decoded.json");
    let input = std::fs::read(history("approval-signals")).unwrap();
    let out = run_with_stdin(
        &[
            "decode-history",
            "-",
            "--keyring",
            str_path(&keyring),
            "-o",
            str_path(&target),
            "--show-values",
        ],
        &input,
    )
    .expect_code(0);
    assert_eq!(out.stdout, "");
    assert!(
        out.stderr
            .starts_with("stdin: 8 payloads, 7 decoded, 1 already plain"),
        "{}",
        out.stderr
    );
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&target).unwrap()).unwrap();
    let signal =
        &doc["events"][4]["workflowExecutionSignaledEventAttributes"]["input"]["payloads"][0];
    assert_eq!(
        signal["value"],
        serde_json::json!({"by": "alice", "approved": true})
    );
}

#[test]
fn a_malformed_export_names_the_json_path() {
    let text = std::fs::read_to_string(history("order-success")).unwrap();
    let mut doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    doc["events"][4]["activityTaskScheduledEventAttributes"]["input"]["payloads"][0]["data"] =
        "not base64!".into();
    let out = run_with_stdin(&["decode-history", "-"], doc.to_string().as_bytes()).expect_code(2);
    assert!(
        out.stderr.contains(
            "malformed payload at JSON path $.events[4].activityTaskScheduledEventAttributes.input.payloads[0]"
        ),
        "{}",
        out.stderr
    );
    let out = run_with_stdin(&["decode-history", "-"], b"{\"events\": [").expect_code(2);
    assert!(out.stderr.contains("is not valid JSON"), "{}", out.stderr);
}

/// `payloads` offloaded (every one) to a filesystem store in `dir`: the
/// references, a payloads body holding them, and a `--storage` file.
async fn offloaded(
    dir: &std::path::Path,
    payloads: Vec<payload_proto::temporal::api::common::v1::Payload>,
) -> (
    Vec<payload_proto::temporal::api::common::v1::Payload>,
    std::path::PathBuf,
    std::path::PathBuf,
) {
    let mut settings =
        payload_storage::StorageSettings::new(payload_storage::DriverKind::Filesystem);
    settings.path = Some(dir.join("objects"));
    settings.threshold_bytes = 0;
    let storage = settings
        .build(&|_| None, &|p| p.to_path_buf())
        .expect("a filesystem store in a temporary folder");
    let references = storage
        .offload(
            &payload_storage::StoreTarget::namespace("default"),
            payloads,
        )
        .await
        .expect("offloading to a filesystem store");
    let body = dir.join("body.json");
    let json = serde_json::to_vec(&payload_proto::temporal::api::common::v1::Payloads {
        payloads: references.clone(),
    })
    .expect("payloads serialize");
    std::fs::write(&body, json).expect("the temporary folder is writable");
    let storage_file = dir.join("storage.toml");
    std::fs::write(
        &storage_file,
        "driver = \"filesystem\"\npath = \"objects\"\n",
    )
    .expect("the temporary folder is writable");
    (references, body, storage_file)
}

#[tokio::test]
async fn decode_history_resolves_references_with_a_storage_file() {
    use payload_converter::{PayloadCodec, PayloadExt as _};

    let dir = tempfile::tempdir().unwrap();
    let keyring_path = crate::util::sample_keyring(dir.path());
    let keyring = payload_codecs::Keyring::load(&keyring_path, &|_| None).unwrap();
    let chain = payload_codecs::ChainBuilder::new()
        .encrypt(std::sync::Arc::new(keyring))
        .build();
    let value = payload_proto::temporal::api::common::v1::Payload::with_encoding(
        "json/plain",
        br#""kept-in-the-store""#.to_vec(),
    );
    let encrypted = chain.encode(vec![value]).await.unwrap();
    let (references, body, storage_file) = offloaded(dir.path(), encrypted).await;
    let args = [
        "decode-history",
        crate::util::str_path(&body),
        "--keyring",
        crate::util::str_path(&keyring_path),
        "--storage",
        crate::util::str_path(&storage_file),
        "--show-values",
    ];
    let out = crate::util::run(&args).expect_code(0);
    assert!(out.stdout.contains("kept-in-the-store"), "{}", out.stdout);

    // Without the store the reference stays; with a tampered object the
    // payload is reported and left as it was.
    let plain = crate::util::run(&args[..4]).expect_code(0);
    assert!(!plain.stdout.contains("kept-in-the-store"));
    let reference = payload_storage::StorageReference::from_payload(&references[0])
        .unwrap()
        .unwrap();
    let object = dir
        .path()
        .join("objects")
        .join(reference.claim.get("key").unwrap());
    let mut bytes = std::fs::read(&object).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&object, bytes).unwrap();
    let out = crate::util::run(&args).expect_code(1);
    assert!(out.stderr.contains("integrity check"), "{}", out.stderr);

    // check-references says which reference is bad, without a key.
    let check = [
        "check-references",
        crate::util::str_path(&body),
        "--storage",
        crate::util::str_path(&storage_file),
    ];
    let out = crate::util::run(&check).expect_code(1);
    assert!(
        out.stdout.starts_with("$.payloads[0]  the stored payload"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("integrity check"), "{}", out.stdout);
    std::fs::remove_file(&object).unwrap();
    let out = crate::util::run(&check).expect_code(1);
    assert!(out.stdout.contains("is not in"), "{}", out.stdout);
    assert!(
        out.stderr
            .contains("1 references checked, 1 missing, corrupt or malformed"),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn check_references_passes_intact_references_and_needs_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let value = <payload_proto::temporal::api::common::v1::Payload as payload_converter::PayloadExt>::with_encoding(
        "json/plain",
        b"1".to_vec(),
    );
    let (_, body, storage_file) = offloaded(dir.path(), vec![value]).await;
    let body = std::fs::read(body).unwrap();
    let out = crate::util::run_with_stdin(
        &[
            "check-references",
            "--storage",
            crate::util::str_path(&storage_file),
        ],
        &body,
    )
    .expect_code(0);
    assert_eq!(out.stdout, "$.payloads[0]  ok\n");
    let out = crate::util::run_with_stdin(&["check-references"], &body).expect_code(2);
    assert!(out.stderr.contains("--storage"), "{}", out.stderr);
}

#[test]
fn an_s3_store_reads_the_aws_profile_and_names_a_wrong_one() {
    let dir = tempfile::tempdir().unwrap();
    let storage_file = dir.path().join("s3.toml");
    std::fs::write(
        &storage_file,
        "driver = \"s3\"\nbucket = \"b\"\nendpoint = \"http://127.0.0.1:9\"\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join(".aws")).unwrap();
    std::fs::write(
        dir.path().join(".aws/credentials"),
        "[ci]\naws_access_key_id = AKIDCI\naws_secret_access_key = profile-secret\n",
    )
    .unwrap();
    let run = |profile: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_payloadctl"))
            .args(["check-references", "-", "--storage"])
            .arg(&storage_file)
            .env("HOME", dir.path())
            .env("AWS_PROFILE", profile)
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SHARED_CREDENTIALS_FILE")
            .env_remove("AWS_CONFIG_FILE")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let wrong = run("prod");
    assert!(
        wrong.contains("AWS_PROFILE is `prod`") && wrong.contains(".aws/credentials"),
        "{wrong}"
    );
    // The right profile is read: the failure is then the input's, not the
    // profile's, and no secret is printed.
    let right = run("ci");
    assert!(!right.contains("AWS_PROFILE"), "{right}");
    assert!(!right.contains("profile-secret"), "{right}");
}
