//! Envelope encryption over real TCP: `/encode` writes the Temporal
//! Proxy's format, `/decode` reads it and keyring payloads in one request,
//! namespaces use their own KEKs, decrypt-only KEKs decode, and a KMS that
//! cannot be reached is a 503 while the server stays up. Local KEKs
//! (`testing://`, `keyring://`) stand in for a KMS here; `cargo xtask
//! conformance kms` runs against OpenBao, moto's KMS and a Python worker.

use hyper::{Method, StatusCode};
use payload_converter::PayloadExt;
use payload_kms::KmsSettings;
use payload_proto::temporal::api::common::v1::Payload;

use crate::util::*;

const KEK_A: &str = "testing://AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
const KEK_B: &str = "testing://AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";

async fn kms_server() -> TestServer {
    spawn_with(|config, dir| {
        let token = dir.join("vault-token");
        std::fs::write(&token, "not-a-real-token\n").unwrap();
        let mut kms = KmsSettings {
            kek: Some("keyring://rotated-old-key".to_owned()),
            keyring: Some(dir.join("keyring.toml")),
            timeout_secs: 1,
            attempts: 2,
            ..KmsSettings::default()
        };
        kms.vault = Some(payload_kms::VaultSettings {
            // Nothing listens on port 1.
            address: Some("http://127.0.0.1:1".to_owned()),
            token_file: Some(token),
            token_env: None,
        });
        config.kms = Some(kms);
        let default = config.default.clone().unwrap();
        let mut ns = |name: &str, kek: &str, decrypt: &[&str]| {
            let mut section = default.clone();
            section.kek = Some(kek.to_owned());
            section.decrypt_keks = decrypt.iter().map(|s| s.to_string()).collect();
            config.namespaces.insert(name.to_owned(), section);
        };
        ns("alpha", KEK_A, &[]);
        ns("beta", KEK_B, &[]);
        ns("beta-rotated", KEK_B, &[KEK_A]);
        ns("down", "hashivault://payloads", &[]);
    })
    .await
}

async fn call(server: &TestServer, action: &str, namespace: &str, payloads: &[Payload]) -> Answer {
    request(
        Method::POST,
        &server.url(action),
        &[
            ("content-type", "application/json"),
            ("x-namespace", namespace),
        ],
        body_of(payloads),
    )
    .await
}

fn samples() -> Vec<Payload> {
    vec![plain("\"one\""), plain("{\"two\":2}"), plain("")]
}

#[tokio::test]
async fn encode_writes_the_proxy_format_and_decode_reads_it() {
    let server = kms_server().await;
    let encoded = payloads_of(&call(&server, "/encode", "alpha", &samples()).await);
    for p in &encoded {
        assert_eq!(p.encoding(), Some("binary/encrypted"));
        assert_eq!(
            p.metadata_str("encryption-key-id"),
            Some(KEK_A.replace("testing://", "base64key://").as_str())
        );
        assert!(p.metadata_str("encryption-dek").is_some());
    }
    // One data key for the batch.
    assert_eq!(
        encoded[0].metadata.get("encryption-dek"),
        encoded[2].metadata.get("encryption-dek")
    );
    let decoded = payloads_of(&call(&server, "/decode", "alpha", &encoded).await);
    assert_eq!(decoded, samples());
}

#[tokio::test]
async fn namespaces_use_their_own_keks_and_decrypt_only_keks_decode() {
    let server = kms_server().await;
    let from_alpha = payloads_of(&call(&server, "/encode", "alpha", &samples()).await);
    let refused = call(&server, "/decode", "beta", &from_alpha).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(refused.json()["error"], "unknown_key");
    let detail = refused.json()["detail"].as_str().unwrap().to_owned();
    assert!(detail.contains("decrypt_keks"), "{detail}");
    assert!(
        !detail.contains("AQEBAQEB"),
        "a KEK's key is never shown: {detail}"
    );

    let rotated = call(&server, "/decode", "beta-rotated", &from_alpha).await;
    assert_eq!(payloads_of(&rotated), samples());
    let fresh = payloads_of(&call(&server, "/encode", "beta-rotated", &samples()).await);
    assert_eq!(
        fresh[0].metadata_str("encryption-key-id"),
        Some(KEK_B.replace("testing://", "base64key://").as_str())
    );
}

#[tokio::test]
async fn keyring_and_envelope_payloads_decode_in_one_request() {
    let server = kms_server().await;
    // The default section encrypts under a keyring:// KEK and keeps its
    // keyring for payloads written before the KMS.
    let keyring = std::sync::Arc::new(
        payload_codecs::Keyring::load(&server.keyring_path(), &|_| None).unwrap(),
    );
    let old = payload_codecs::AesGcmCodec::new(keyring);
    let mut mixed = payload_converter::PayloadCodec::encode(&old, samples())
        .await
        .unwrap();
    let envelope = payloads_of(&call(&server, "/encode", "default", &samples()).await);
    assert_eq!(
        envelope[0].metadata_str("encryption-key-id"),
        Some("keyring://rotated-old-key")
    );
    mixed.extend(envelope);
    let decoded = payloads_of(&call(&server, "/decode", "default", &mixed).await);
    assert_eq!(decoded[..3], samples()[..]);
    assert_eq!(decoded[3..], samples()[..]);
}

#[tokio::test]
async fn an_unreachable_kms_is_a_503_and_the_server_stays_up() {
    let server = kms_server().await;
    let answer = call(&server, "/encode", "down", &samples()).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.json()["error"], "kms_unavailable");
    let detail = answer.json()["detail"].as_str().unwrap().to_owned();
    assert!(detail.contains("hashivault://payloads"), "{detail}");
    assert!(detail.contains("retry shortly"), "{detail}");
    assert!(
        !detail.contains("127.0.0.1:1"),
        "the cause is logged, not sent: {detail}"
    );
    assert!(!detail.contains("not-a-real-token"), "{detail}");
    let health = request(Method::GET, &server.url("/healthz"), &[], Vec::new()).await;
    assert_eq!(health.status, StatusCode::OK);
    // Other namespaces go on.
    let ok = call(&server, "/encode", "alpha", &samples()).await;
    assert_eq!(ok.status, StatusCode::OK);

    let metrics = request(Method::GET, &server.url("/metrics"), &[], Vec::new()).await;
    let text = String::from_utf8_lossy(&metrics.body).into_owned();
    assert!(
        text.contains("codec_server_kms_calls_total{op=\"wrap\"} 1"),
        "{text}"
    );
    // Two tries of the unreachable KMS.
    assert!(
        text.contains("codec_server_kms_call_failures_total 2"),
        "{text}"
    );
}

#[tokio::test]
async fn a_cold_cache_unwraps_each_data_key_once() {
    let server = kms_server().await;
    let mut written = Vec::new();
    for _ in 0..5 {
        written.extend(payloads_of(
            &call(&server, "/encode", "alpha", &samples()).await,
        ));
    }
    // Another server (a cold cache) decodes them: one data key, one call.
    let reader = kms_server().await;
    for _ in 0..3 {
        let decoded = payloads_of(&call(&reader, "/decode", "alpha", &written).await);
        assert_eq!(decoded.len(), 15);
    }
    let metrics = request(Method::GET, &reader.url("/metrics"), &[], Vec::new()).await;
    let text = String::from_utf8_lossy(&metrics.body).into_owned();
    assert!(
        text.contains("codec_server_kms_calls_total{op=\"unwrap\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("codec_server_kms_cache_lookups_total{result=\"hit\"} 2"),
        "{text}"
    );
}
