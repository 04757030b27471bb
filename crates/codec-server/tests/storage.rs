//! External storage over real TCP: `/encode` offloads, `/decode` resolves
//! (or preserves, for the Web UI), `/download` serves references, and what
//! a tampered, deleted or unreachable object answers. The filesystem driver
//! stands in for a bucket here; `cargo xtask conformance` runs the same
//! against a real S3 server and the Python SDK's S3 driver.

use std::path::{Path, PathBuf};

use hyper::{Method, StatusCode};
use payload_converter::PayloadExt;
use payload_proto::temporal::api::common::v1::Payload;
use payload_storage::reference::is_reference;
use payload_storage::{DriverKind, StorageReference, StorageSettings};

use crate::util::*;

const THRESHOLD: usize = 64 * 1024;

async fn server_with(settings: StorageSettings) -> TestServer {
    spawn_with(move |config, _| {
        config
            .default
            .as_mut()
            .expect("the development config has a default section")
            .storage = Some(settings);
    })
    .await
}

async fn filesystem_server() -> (TestServer, PathBuf) {
    let objects = tempfile::tempdir().unwrap().keep();
    let mut settings = StorageSettings::new(DriverKind::Filesystem);
    settings.path = Some(objects.clone());
    settings.threshold_bytes = THRESHOLD;
    (server_with(settings).await, objects)
}

fn large(tag: &str) -> Payload {
    plain(&format!("\"{tag}{}\"", "abcdefgh".repeat(THRESHOLD / 4)))
}

fn object_path(objects: &Path, reference: &Payload) -> PathBuf {
    let parsed = StorageReference::from_payload(reference).unwrap().unwrap();
    objects.join(parsed.claim.get("key").unwrap())
}

fn error_code(answer: &Answer) -> String {
    answer.json()["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn encode_offloads_large_payloads_and_decode_resolves_them() {
    let (server, objects) = filesystem_server().await;
    let big = large("big-one-");
    let small = plain("\"small\"");
    let encoded = payloads_of(
        &post(
            &server.url("/encode"),
            body_of(&[big.clone(), small.clone()]),
        )
        .await,
    );
    assert!(is_reference(&encoded[0]), "{:?}", encoded[0]);
    assert_eq!(encoded[1].encoding(), Some("binary/encrypted"));
    let reference = StorageReference::from_payload(&encoded[0])
        .unwrap()
        .unwrap();
    assert_eq!(reference.driver_name, "payloadkit.fsdriver");
    let key = reference.claim.get("key").unwrap();
    assert!(
        key.starts_with("v0/ns/default/wt/null/wi/null/ri/null/d/sha256/"),
        "{key}"
    );
    // What is stored is the encrypted payload, not the plain text.
    let stored = std::fs::read(object_path(&objects, &encoded[0])).unwrap();
    assert!(!stored.windows(8).any(|w| w == b"abcdefgh"));
    assert!(reference.size_bytes.unwrap() >= THRESHOLD as u64);

    let decoded = payloads_of(&post(&server.url("/decode"), body_of(&encoded)).await);
    assert_eq!(decoded, vec![big.clone(), small.clone()]);

    // The Web UI's flag: references stay, the rest is decoded.
    let preserved = payloads_of(
        &post(
            &server.url("/decode?preserveStorageRefs=true"),
            body_of(&encoded),
        )
        .await,
    );
    assert_eq!(preserved, vec![encoded[0].clone(), small]);

    let downloaded = payloads_of(&post(&server.url("/download"), body_of(&encoded[..1])).await);
    assert_eq!(downloaded, vec![big]);
}

#[tokio::test]
async fn download_refuses_what_is_not_a_reference() {
    let (server, _) = filesystem_server().await;
    let encoded = payloads_of(&post(&server.url("/encode"), body_of(&[plain("1")])).await);
    let answer = post(&server.url("/download"), body_of(&encoded)).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&answer), "not_a_reference");
}

#[tokio::test]
async fn a_tampered_or_deleted_object_decodes_nothing() {
    let (server, objects) = filesystem_server().await;
    let encoded = payloads_of(&post(&server.url("/encode"), body_of(&[large("tamper-")])).await);
    let path = object_path(&objects, &encoded[0]);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    for route in ["/decode", "/download"] {
        let answer = post(&server.url(route), body_of(&encoded)).await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{route}");
        assert_eq!(error_code(&answer), "stored_payload_corrupt");
        assert!(answer.json().get("payloads").is_none());
        let detail = answer.json()["detail"].as_str().unwrap().to_owned();
        assert!(detail.contains("integrity"), "{detail}");
    }
    std::fs::remove_file(&path).unwrap();
    let answer = post(&server.url("/download"), body_of(&encoded)).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_code(&answer), "stored_payload_missing");

    // The server's /metrics counts what the driver did.
    let metrics = request(Method::GET, &server.url("/metrics"), &[], Vec::new()).await;
    let text = String::from_utf8_lossy(&metrics.body).into_owned();
    let series = |op: &str, result: &str| {
        format!(
            "codec_server_storage_objects_total{{namespace=\"default\",driver=\"payloadkit.fsdriver\",operation=\"{op}\",result=\"{result}\"}}"
        )
    };
    for (op, result, n) in [
        ("store", "ok", 1),
        ("retrieve", "ok", 0),
        ("retrieve", "corrupt", 2),
        ("retrieve", "missing", 1),
    ] {
        assert!(
            text.contains(&format!("{} {n}\n", series(op, result))),
            "{op} {result}:\n{text}"
        );
    }
    assert!(
        text.contains("codec_server_storage_bytes_total{namespace=\"default\""),
        "{text}"
    );
}

#[tokio::test]
async fn an_unreachable_store_answers_503_and_the_server_stays_up() {
    // A port nobody listens on: connections are refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut settings = StorageSettings::new(DriverKind::S3);
    settings.bucket = Some("temporal-payloads".to_owned());
    settings.endpoint = Some(format!("http://127.0.0.1:{port}"));
    settings.region = Some("us-east-1".to_owned());
    settings.timeout_secs = 2;
    settings.threshold_bytes = THRESHOLD;
    let server = spawn_with(move |config, _| {
        config.environment = codec_server::config::Environment::from_fn(|name| {
            matches!(name, "AWS_ACCESS_KEY_ID" | "AWS_SECRET_ACCESS_KEY").then(|| "test".to_owned())
        });
        config.default.as_mut().unwrap().storage = Some(settings);
    })
    .await;
    let reference = StorageReference {
        driver_name: "aws.s3driver".to_owned(),
        claim: payload_storage::Claim::new(
            [
                ("bucket", "temporal-payloads"),
                ("key", "v0/d/sha256/00"),
                ("hash_algorithm", "sha256"),
                ("hash_value", "00"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        ),
        size_bytes: Some(300_000),
    }
    .to_payload();
    let answer = post(
        &server.url("/download"),
        body_of(std::slice::from_ref(&reference)),
    )
    .await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error_code(&answer), "storage_unavailable");
    let health = request(Method::GET, &server.url("/healthz"), &[], Vec::new()).await;
    assert_eq!(health.status, StatusCode::OK);
    // Encoding a large payload needs the store too.
    let answer = post(&server.url("/encode"), body_of(&[large("x")])).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    // Small payloads never touch it.
    payloads_of(&post(&server.url("/encode"), body_of(&[plain("1")])).await);
}

#[tokio::test]
async fn a_namespace_without_storage_cannot_download() {
    let server = spawn().await;
    let answer = post(&server.url("/download"), body_of(&[plain("1")])).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&answer), "download_unavailable");
}
