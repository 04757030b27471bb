//! Per-namespace auth: none, bearer tokens, refused namespaces.

use codec_server::auth::hash_token;
use codec_server::config::{AuthConfig, NamespaceConfig};
use hyper::{Method, StatusCode};

use crate::util::*;

async fn secured() -> TestServer {
    spawn_with(|c, dir| {
        let keyring = dir.join("keyring.toml");
        let auth = AuthConfig::Bearer {
            token_sha256: vec![hash_token("rw-token")],
            read_only_token_sha256: vec![hash_token("ro-token")],
        };
        c.namespaces.insert(
            "payments".into(),
            NamespaceConfig::encrypting(keyring.clone(), auth),
        );
        c.namespaces
            .insert("legacy".into(), NamespaceConfig::refused());
    })
    .await
}

async fn call(server: &TestServer, action: &str, namespace: &str, auth: Option<&str>) -> Answer {
    let mut headers = vec![
        ("content-type", "application/json"),
        ("x-namespace", namespace),
    ];
    if let Some(auth) = auth {
        headers.push(("authorization", auth));
    }
    request(
        Method::POST,
        &server.url(&format!("/{action}")),
        &headers,
        body_of(&[plain("1")]),
    )
    .await
}

#[tokio::test]
async fn bearer_tokens_guard_their_namespace() {
    let server = secured().await;
    let missing = call(&server, "decode", "payments", None).await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    assert_eq!(missing.json()["error"], "unauthorized");
    assert!(
        missing.json()["detail"]
            .as_str()
            .unwrap()
            .contains("--codec-auth")
    );

    let wrong = call(&server, "decode", "payments", Some("Bearer nope")).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let not_bearer = call(&server, "decode", "payments", Some("Basic abc")).await;
    assert_eq!(not_bearer.status, StatusCode::UNAUTHORIZED);

    assert_eq!(
        call(&server, "decode", "payments", Some("Bearer rw-token"))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        call(&server, "encode", "payments", Some("Bearer rw-token"))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        call(&server, "decode", "payments", Some("bearer ro-token"))
            .await
            .status,
        StatusCode::OK
    );
    let ro_encode = call(&server, "encode", "payments", Some("Bearer ro-token")).await;
    assert_eq!(ro_encode.status, StatusCode::FORBIDDEN);
    assert_eq!(ro_encode.json()["error"], "forbidden");
}

#[tokio::test]
async fn other_namespaces_keep_their_own_policy() {
    let server = secured().await;
    // The default section has no auth.
    assert_eq!(
        call(&server, "decode", "orders", None).await.status,
        StatusCode::OK
    );
    let refused = call(&server, "decode", "legacy", None).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(refused.json()["error"], "namespace_refused");
}

#[tokio::test]
async fn the_namespace_can_come_from_the_path() {
    let server = secured().await;
    // No X-Namespace: the prefix segment names a configured namespace.
    let answer = request(
        Method::POST,
        &server.url("/payments/decode"),
        &[("content-type", "application/json")],
        body_of(&[plain("1")]),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn without_a_default_only_configured_namespaces_are_served() {
    let server = spawn_with(|c, dir| {
        let mut ns = c.default.take().unwrap();
        ns.keyring = Some(dir.join("keyring.toml"));
        c.namespaces.insert("only".into(), ns);
    })
    .await;
    assert_eq!(
        call(&server, "decode", "only", None).await.status,
        StatusCode::OK
    );
    assert_eq!(
        call(&server, "decode", "else", None).await.status,
        StatusCode::FORBIDDEN
    );
}
