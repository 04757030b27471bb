//! The server answers codec requests without the router's layers (see
//! `src/service.rs`); the router, which embedders use, answers everything.
//! Both must give the same answers: these tests send the same requests to a
//! server of each kind and compare status, headers and body.

use hyper::Method;
use tokio::net::TcpListener;

use crate::util::*;

/// The development default with the test keyring, and CORS as `edit` sets it.
fn config(
    dir: &std::path::Path,
    edit: impl FnOnce(&mut codec_server::Config),
) -> codec_server::Config {
    let mut config = codec_server::Config::development(write_keyring(dir));
    config.base_dir = dir.to_path_buf();
    edit(&mut config);
    config
}

/// Base URLs of a full server and of a router-only server with `config`.
async fn both(config: codec_server::Config) -> (String, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let full = format!("http://{}", listener.local_addr().unwrap());
    let served = config.clone();
    tokio::spawn(async move {
        codec_server::serve_on(listener, served, std::future::pending())
            .await
            .unwrap();
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let routed = format!("http://{}", listener.local_addr().unwrap());
    let state = codec_server::build_state(&config).unwrap();
    let router = codec_server::router(state, &config).unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (full, routed)
}

/// An answer's headers without `date`, sorted, as text.
fn headers_of(answer: &Answer) -> Vec<(String, String)> {
    let mut headers: Vec<_> = answer
        .headers
        .iter()
        .filter(|(name, _)| *name != "date")
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                value.to_str().unwrap_or("<bytes>").to_owned(),
            )
        })
        .collect();
    headers.sort();
    headers
}

/// A request: method, path, headers, body.
type Case = (
    Method,
    &'static str,
    Vec<(&'static str, &'static str)>,
    Vec<u8>,
);

/// A body of two payloads encrypted by the server at `base`.
async fn encrypted(base: &str) -> Vec<u8> {
    let answer = post(
        &format!("{base}/encode"),
        body_of(&[plain("\"secret\""), plain("[1,2]")]),
    )
    .await;
    assert!(answer.status.is_success());
    answer.body.to_vec()
}

async fn compare(full: &str, routed: &str, cases: &[Case]) {
    for (method, path, headers, body) in cases {
        let a = request(
            method.clone(),
            &format!("{full}{path}"),
            headers,
            body.clone(),
        )
        .await;
        let b = request(
            method.clone(),
            &format!("{routed}{path}"),
            headers,
            body.clone(),
        )
        .await;
        let what = format!("{method} {path} {headers:?}");
        assert_eq!(a.status, b.status, "{what}");
        assert_eq!(headers_of(&a), headers_of(&b), "{what}");
        if path.contains("encode") && a.status.is_success() {
            // A fresh nonce each time: compare what the answers decode to.
            let decode = |base: &str, answer: &Answer| {
                let (base, body) = (format!("{base}/decode"), answer.body.clone());
                async move { post(&base, body).await.body }
            };
            assert_eq!(decode(full, &a).await, decode(routed, &b).await, "{what}");
        } else {
            assert_eq!(a.body, b.body, "{what}");
        }
    }
}

/// The requests both servers get; `encrypted` is a body of encrypted payloads.
fn cases(encrypted: &[u8]) -> Vec<Case> {
    let json = ("content-type", "application/json");
    let ui = ("origin", "http://localhost:8233");
    let evil = ("origin", "https://evil.example.com");
    let plain_body = body_of(&[plain("\"hello\""), plain("2")]);
    let encrypted = encrypted.to_vec();
    vec![
        (Method::POST, "/decode", vec![json], encrypted.clone()),
        (Method::POST, "/decode", vec![json, ui], encrypted.clone()),
        (Method::POST, "/codec/decode/", vec![ui], encrypted),
        (
            Method::POST,
            "/decode",
            vec![json, evil],
            plain_body.clone(),
        ),
        (Method::POST, "/encode", vec![json, ui], plain_body.clone()),
        (Method::POST, "/encode", vec![json], plain_body.clone()),
        (
            Method::POST,
            "/decode",
            vec![json, ui],
            b"{not json".to_vec(),
        ),
        (
            Method::POST,
            "/decode",
            vec![("content-type", "text/plain"), ui],
            plain_body.clone(),
        ),
        (
            Method::POST,
            "/download",
            vec![json, ui],
            plain_body.clone(),
        ),
        (Method::POST, "/nothing", vec![json, ui], plain_body.clone()),
        (Method::GET, "/decode", vec![ui], Vec::new()),
        (Method::PUT, "/encode", vec![evil], Vec::new()),
        (
            Method::OPTIONS,
            "/decode",
            vec![
                ui,
                ("access-control-request-method", "POST"),
                ("access-control-request-headers", "content-type,x-namespace"),
            ],
            Vec::new(),
        ),
        (Method::GET, "/healthz", vec![ui], Vec::new()),
    ]
}

#[tokio::test]
async fn codec_answers_are_the_routers_for_the_development_default() {
    let dir = tempfile::tempdir().unwrap();
    let (full, routed) = both(config(dir.path(), |_| {})).await;
    compare(&full, &routed, &cases(&encrypted(&full).await)).await;
}

#[tokio::test]
async fn codec_answers_are_the_routers_with_credentials_and_with_any_origin() {
    let dir = tempfile::tempdir().unwrap();
    let (full, routed) = both(config(dir.path(), |c| c.cors.allow_credentials = true)).await;
    compare(&full, &routed, &cases(&encrypted(&full).await)).await;
    let (full, routed) = both(config(dir.path(), |c| {
        c.cors.allowed_origins = vec!["*".to_owned()];
    }))
    .await;
    compare(&full, &routed, &cases(&encrypted(&full).await)).await;
}
