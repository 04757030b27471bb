//! The codec routes, health, metrics, sizes and concurrency, over TCP.

use hyper::{Method, StatusCode};
use payload_converter::PayloadExt;
use payload_proto::temporal::api::common::v1::Payload;
use prost::Message;

use crate::util::*;

fn all_codecs(config: &mut codec_server::Config, _: &std::path::Path) {
    use codec_server::config::CodecName::*;
    config.default.as_mut().unwrap().chain = vec![Encrypt, Zstd, Zlib];
}

#[tokio::test]
async fn decodes_what_the_python_sample_codec_encrypted() {
    let server = spawn_with(all_codecs).await;
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(python_vectors().join("codecs.json")).unwrap())
            .unwrap();
    let cases = manifest["cases"].as_array().unwrap();
    let mut outer = Vec::new();
    let mut inner = Vec::new();
    for case in cases {
        let name = case["case"].as_str().unwrap();
        let read =
            |suffix: &str| std::fs::read(python_vectors().join(format!("{name}{suffix}"))).unwrap();
        outer.push(Payload::decode(read(".bin").as_slice()).unwrap());
        inner.push(Payload::decode(read(".inner.bin").as_slice()).unwrap());
    }
    assert!(outer.len() >= 9);
    // One batch with every case, in order, through a prefixed route with a query.
    let answer = post(
        &server.url("/codec/decode?preserveStorageRefs=true"),
        body_of(&outer),
    )
    .await;
    assert_eq!(answer.header("content-type"), Some("application/json"));
    assert_eq!(payloads_of(&answer), inner);
}

#[tokio::test]
async fn encode_then_decode_round_trips_and_keeps_order() {
    let server = spawn().await;
    let payloads: Vec<Payload> = (0..20).map(|i| plain(&format!("\"value {i}\""))).collect();
    let encoded = payloads_of(&post(&server.url("/encode"), body_of(&payloads)).await);
    assert_eq!(encoded.len(), 20);
    for p in &encoded {
        assert_eq!(p.encoding(), Some("binary/encrypted"));
        assert_eq!(p.metadata_str("encryption-key-id"), Some(SAMPLE_KEY_ID));
    }
    let decoded = payloads_of(&post(&server.url("/my-namespace/decode"), body_of(&encoded)).await);
    assert_eq!(decoded, payloads);
}

#[tokio::test]
async fn answers_are_camel_case_with_standard_base64_and_accept_go_spelling() {
    let server = spawn().await;
    // snake_case, URL-safe base64 without padding, unknown fields: what Go and others send.
    let body = r#"{"payloads":[{"metadata":{"encoding":"anNvbi9wbGFpbg"},"data":"-_8","external_payloads":[{"size_bytes":5}],"x":1}],"y":2}"#;
    let encoded = post(&server.url("/encode"), body).await;
    let decoded = post(&server.url("/decode"), encoded.body.clone()).await;
    assert_eq!(decoded.status, StatusCode::OK);
    let text = String::from_utf8(decoded.body.to_vec()).unwrap();
    assert_eq!(
        text,
        r#"{"payloads":[{"metadata":{"encoding":"anNvbi9wbGFpbg=="},"data":"+/8=","externalPayloads":[{"sizeBytes":"5"}]}]}"#
    );
}

#[tokio::test]
async fn plain_and_foreign_payloads_pass_through_decode() {
    let server = spawn().await;
    let payloads = vec![
        plain("1"),
        Payload::with_encoding("binary/custom", vec![9u8, 9]),
    ];
    assert_eq!(
        payloads_of(&post(&server.url("/decode"), body_of(&payloads)).await),
        payloads
    );
    let empty = post(&server.url("/decode"), r#"{"payloads":[]}"#).await;
    assert_eq!(&empty.body[..], br#"{"payloads":[]}"#);
}

#[tokio::test]
async fn large_payloads_are_never_refused_up_to_16_mib() {
    let server = spawn().await;
    for size in [2 * 1024 * 1024, 16 * 1024 * 1024] {
        let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let payload = Payload::with_encoding("binary/plain", data);
        let encoded = post(
            &server.url("/encode"),
            body_of(std::slice::from_ref(&payload)),
        )
        .await;
        let decoded = payloads_of(&post(&server.url("/decode"), encoded.body.clone()).await);
        assert_eq!(decoded, [payload], "size {size}");
    }
}

#[tokio::test]
async fn the_body_limit_is_enforced_with_413() {
    let server = spawn_with(|c, _| c.server.max_body_bytes = 64 * 1024).await;
    let payload = Payload::with_encoding("binary/plain", vec![0u8; 100 * 1024]);
    let answer = post(&server.url("/decode"), body_of(&[payload])).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(answer.json()["error"], "body_too_large");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_are_all_answered_correctly() {
    let server = spawn_with(|c, _| c.server.concurrency_limit = 4).await;
    let url = server.url("/encode");
    let mut tasks = Vec::new();
    for i in 0..64 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let payload = plain(&format!("{i}"));
            let encoded = post(&url, body_of(std::slice::from_ref(&payload))).await;
            let decoded =
                payloads_of(&post(&url.replace("/encode", "/decode"), encoded.body.clone()).await);
            assert_eq!(decoded, [payload]);
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

#[tokio::test]
async fn health_ready_and_metrics() {
    let server = spawn().await;
    let health = request(Method::GET, &server.url("/healthz"), &[], "").await;
    assert_eq!(
        (health.status, health.json()["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let ready = request(Method::GET, &server.url("/readyz"), &[], "").await;
    assert_eq!(ready.status, StatusCode::OK);
    post(&server.url("/decode"), body_of(&[plain("1"), plain("2")])).await;
    post(&server.url("/decode"), "nope").await;
    let metrics = request(Method::GET, &server.url("/metrics"), &[], "").await;
    let text = String::from_utf8(metrics.body.to_vec()).unwrap();
    assert!(
        text.contains(
            r#"codec_server_requests_total{route="decode",namespace="other",status="200"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"codec_server_payloads_total{route="decode",namespace="other"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(
            r#"codec_server_errors_total{route="decode",namespace="other",code="invalid_json"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains("codec_server_request_duration_seconds_bucket"),
        "{text}"
    );
}

#[tokio::test]
async fn download_says_it_cannot_download() {
    let server = spawn().await;
    let answer = post(
        &server.url("/codec/download?preserveStorageRefs=true"),
        body_of(&[plain("1")]),
    )
    .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(answer.json()["error"], "download_unavailable");
}

#[tokio::test]
async fn the_remote_codec_talks_to_the_server() {
    use payload_converter::PayloadCodec;
    let server = spawn().await;
    let remote = codec_client::RemotePayloadCodec::new(&server.url("/codec"), "default").unwrap();
    let payloads = vec![plain("\"a\""), plain("\"b\"")];
    let encoded = remote.encode(payloads.clone()).await.unwrap();
    assert!(
        encoded
            .iter()
            .all(|p| p.encoding() == Some("binary/encrypted"))
    );
    assert_eq!(remote.decode(encoded).await.unwrap(), payloads);
    // A server-side refusal comes back with its detail.
    let unknown = Payload {
        metadata: [
            ("encoding".to_owned(), "binary/encrypted".into()),
            ("encryption-key-id".to_owned(), "nobody".into()),
        ]
        .into(),
        data: vec![0u8; 40].into(),
        external_payloads: Vec::new(),
    };
    let err = remote.decode(vec![unknown]).await.unwrap_err();
    assert!(err.to_string().contains("nobody"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_keyring_is_picked_up_without_a_restart() {
    use base64::Engine as _;
    let server = spawn().await;
    // One kept-alive connection all along: a connection started before the
    // reload sees it too.
    let mut kept = KeptAlive::open(&server).await;
    let before = payloads_of(&kept.post("/encode", body_of(&[plain("\"old\"")])).await);
    assert_eq!(
        before[0].metadata_str("encryption-key-id"),
        Some(SAMPLE_KEY_ID)
    );

    // Rotate: a new active key, the old ones kept for decoding.
    let path = server.keyring_path();
    let mut text = std::fs::read_to_string(&path).unwrap();
    text = text.replace(
        &format!("active = \"{SAMPLE_KEY_ID}\""),
        "active = \"key-2026-12\"",
    );
    let new_key = base64::engine::general_purpose::STANDARD.encode([42u8; 32]);
    text.push_str(&format!(
        "\n[[keys]]\nid = \"key-2026-12\"\nbase64 = \"{new_key}\"\n"
    ));
    std::fs::write(&path, text).unwrap();
    reloads(&server, "ok", 1).await;
    let rotated = payloads_of(&kept.post("/encode", body_of(&[plain("\"new\"")])).await);
    assert_eq!(
        rotated[0].metadata_str("encryption-key-id"),
        Some("key-2026-12"),
        "the next request after the reload uses the new active key"
    );
    // Old and new payloads both decode.
    let both = [before[0].clone(), rotated[0].clone()];
    assert_eq!(
        payloads_of(&kept.post("/decode", body_of(&both)).await),
        [plain("\"old\""), plain("\"new\"")]
    );
}

/// One HTTP/1.1 connection, kept alive across requests.
struct KeptAlive(hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>>);

impl KeptAlive {
    async fn open(server: &TestServer) -> Self {
        let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let (send, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
                .await
                .unwrap();
        tokio::spawn(connection);
        Self(send)
    }

    async fn post(&mut self, path: &str, body: Vec<u8>) -> Answer {
        let request = hyper::Request::post(path)
            .header("host", "codec")
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .unwrap();
        // The connection takes the next request once it has finished the
        // last one.
        self.0.ready().await.unwrap();
        answer_of(self.0.send_request(request).await.unwrap()).await
    }
}

/// Waits until the server has counted `count` keyring reloads with
/// `result` (the reload task polls every two seconds).
async fn reloads(server: &TestServer, result: &str, count: u64) {
    let series = format!("codec_server_keyring_reloads_total{{result=\"{result}\"}} ");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let text = request(hyper::Method::GET, &server.url("/metrics"), &[], "").await;
        let seen = String::from_utf8_lossy(&text.body)
            .lines()
            .find_map(|l| l.strip_prefix(&series)?.trim().parse::<u64>().ok())
            .unwrap_or(0);
        if seen >= count {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{count} {result} reloads not counted within 10 s (saw {seen})"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_keyring_edit_keeps_the_previous_keys() {
    let server = spawn().await;
    std::fs::write(server.keyring_path(), "active = \"gone\"\n").unwrap();
    // The reload ran, and failed: a test that cannot pass without it.
    reloads(&server, "failed", 1).await;
    let encoded = payloads_of(&post(&server.url("/encode"), body_of(&[plain("1")])).await);
    assert_eq!(
        encoded[0].metadata_str("encryption-key-id"),
        Some(SAMPLE_KEY_ID)
    );
}

/// Sends `head` then `body` in pieces of `piece` bytes as chunked transfer
/// encoding over a raw connection; returns the status line and the body.
async fn chunked(server: &TestServer, path: &str, body: &[u8], piece: usize) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    for part in body.chunks(piece) {
        tcp.write_all(format!("{:x}\r\n", part.len()).as_bytes())
            .await
            .unwrap();
        tcp.write_all(part).await.unwrap();
        tcp.write_all(b"\r\n").await.unwrap();
        tcp.flush().await.unwrap();
        tokio::task::yield_now().await;
    }
    tcp.write_all(b"0\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    let _ = tcp.read_to_end(&mut answer).await;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text.lines().next().unwrap_or_default().to_owned();
    (status, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_in_many_pieces_are_joined_and_bounded() {
    let server = spawn_with(|config, _| config.server.max_body_bytes = 64 * 1024).await;
    let texts: Vec<String> = (0..40)
        .map(|i| format!("value {i} {}", "x".repeat(700)))
        .collect();
    let payloads: Vec<Payload> = texts.iter().map(|t| plain(t)).collect();
    let encoded = post(&server.url("/encode"), body_of(&payloads)).await;
    assert_eq!(encoded.status, StatusCode::OK);
    assert!(encoded.body.len() > 30_000 && encoded.body.len() < 64 * 1024);

    // No Content-Length, 1 KiB pieces: joined in order, decoded exactly.
    let (status, text) = chunked(&server, "/decode", &encoded.body, 1024).await;
    assert!(status.contains(" 200 "), "{status}");
    let json = &text[text.find("\r\n\r\n").unwrap() + 4..];
    let decoded: payload_proto::temporal::api::common::v1::Payloads =
        serde_json::from_str(json).unwrap();
    assert_eq!(decoded.payloads, payloads);

    // Over the limit without a declared length: refused while reading.
    let big = vec![b' '; 70 * 1024];
    let (status, text) = chunked(&server, "/decode", &big, 4096).await;
    assert!(status.contains(" 413 "), "{status}");
    assert!(text.contains("body_too_large"), "{text}");

    // A declared length over the limit is refused before the body is read.
    let answer = request(
        Method::POST,
        &server.url("/decode"),
        &[("content-type", "application/json")],
        vec![b' '; 65 * 1024],
    )
    .await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn cleartext_http2_with_prior_knowledge_is_served() {
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use hyper_util::client::legacy::Client;
    use hyper_util::client::legacy::connect::HttpConnector;
    use hyper_util::rt::TokioExecutor;

    let server = spawn().await;
    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build(HttpConnector::new());
    let payloads = vec![plain("\"over h2\""), plain("[1,2,3]")];
    let mut body = Bytes::from(body_of(&payloads));
    // Several requests share the one connection, as a browser's do.
    for path in ["/encode", "/decode", "/healthz"] {
        let request = hyper::Request::builder()
            .method(if path == "/healthz" {
                Method::GET
            } else {
                Method::POST
            })
            .uri(server.url(path))
            .header("content-type", "application/json")
            .header("origin", "http://localhost:8233")
            .body(Full::new(body.clone()))
            .unwrap();
        let response = client.request(request).await.unwrap();
        assert_eq!(response.version(), hyper::Version::HTTP_2, "{path}");
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        if path != "/healthz" {
            assert_eq!(
                response.headers()["access-control-allow-origin"],
                "http://localhost:8233"
            );
        }
        body = response.into_body().collect().await.unwrap().to_bytes();
        if path == "/decode" {
            let decoded: payload_proto::temporal::api::common::v1::Payloads =
                serde_json::from_slice(&body).unwrap();
            assert_eq!(decoded.payloads, payloads);
        }
    }
}
