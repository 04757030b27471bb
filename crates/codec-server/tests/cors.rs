//! CORS as the Web UI exercises it: a preflight, then the POST.

use hyper::{Method, StatusCode};

use crate::util::*;

fn preflight<'a>(origin: &'a str, headers: &'a str) -> [(&'a str, &'a str); 3] {
    [
        ("origin", origin),
        ("access-control-request-method", "POST"),
        ("access-control-request-headers", headers),
    ]
}

#[tokio::test]
async fn dev_ui_origins_get_a_preflight_answer() {
    let server = spawn().await;
    for origin in ["http://localhost:8233", "http://127.0.0.1:8233"] {
        let answer = request(
            Method::OPTIONS,
            &server.url("/decode"),
            &preflight(origin, "content-type,x-namespace"),
            "",
        )
        .await;
        assert!(answer.status.is_success(), "{}", answer.status);
        assert_eq!(answer.header("access-control-allow-origin"), Some(origin));
        let allowed = answer
            .header("access-control-allow-headers")
            .unwrap()
            .to_ascii_lowercase();
        for h in [
            "content-type",
            "x-namespace",
            "authorization",
            "authorization-extras",
        ] {
            assert!(allowed.contains(h), "{allowed}");
        }
        assert!(
            answer
                .header("access-control-allow-methods")
                .unwrap()
                .contains("POST")
        );
        assert_eq!(answer.header("access-control-allow-credentials"), None);
    }
}

#[tokio::test]
async fn the_post_after_the_preflight_carries_the_origin_even_on_errors() {
    let server = spawn().await;
    let origin = "http://localhost:8233";
    let ok = request(
        Method::POST,
        &server.url("/decode"),
        &[("origin", origin), ("content-type", "application/json")],
        body_of(&[plain("1")]),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.header("access-control-allow-origin"), Some(origin));
    // The UI must be able to read error bodies too.
    let bad = request(
        Method::POST,
        &server.url("/decode"),
        &[("origin", origin)],
        "nope",
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.header("access-control-allow-origin"), Some(origin));
}

#[tokio::test]
async fn other_origins_get_no_cors_headers() {
    // With credentials allowed, so that there would be something to leak.
    let server = spawn_with(|c, _| c.cors.allow_credentials = true).await;
    let answer = request(
        Method::OPTIONS,
        &server.url("/decode"),
        &preflight("https://evil.example", "content-type"),
        "",
    )
    .await;
    let post = request(
        Method::POST,
        &server.url("/decode"),
        &[("origin", "https://evil.example")],
        body_of(&[plain("1")]),
    )
    .await;
    for answer in [&answer, &post] {
        let cors: Vec<&str> = answer
            .headers
            .keys()
            .map(|name| name.as_str())
            .filter(|name| name.starts_with("access-control-"))
            .collect();
        assert!(cors.is_empty(), "{cors:?}");
        assert!(answer.header("vary").is_some());
    }
}

#[tokio::test]
async fn credentials_mode_echoes_the_exact_origin() {
    let server = spawn_with(|c, _| {
        c.cors.allowed_origins = vec!["https://cloud.temporal.io".into()];
        c.cors.allow_credentials = true;
    })
    .await;
    let answer = request(
        Method::OPTIONS,
        &server.url("/decode"),
        &preflight(
            "https://cloud.temporal.io",
            "content-type,x-namespace,authorization",
        ),
        "",
    )
    .await;
    assert_eq!(
        answer.header("access-control-allow-origin"),
        Some("https://cloud.temporal.io")
    );
    assert_eq!(
        answer.header("access-control-allow-credentials"),
        Some("true")
    );
    assert!(
        answer
            .header("vary")
            .unwrap_or_default()
            .to_ascii_lowercase()
            .contains("origin")
    );
}

#[tokio::test]
async fn extra_headers_can_be_allowed() {
    let server = spawn_with(|c, _| c.cors.extra_allowed_headers = vec!["X-Tenant".into()]).await;
    let answer = request(
        Method::OPTIONS,
        &server.url("/decode"),
        &preflight("http://localhost:8233", "content-type,x-tenant"),
        "",
    )
    .await;
    assert!(
        answer
            .header("access-control-allow-headers")
            .unwrap()
            .contains("x-tenant")
    );
}
