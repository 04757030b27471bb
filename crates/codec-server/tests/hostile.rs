//! Hostile clients (issue 17), in process over real TCP: each test is a
//! finding of the adversarial review, and fails on the server before the
//! fix. `cargo xtask soak` runs the same attacks, and larger ones, against
//! the release binary and measures memory and time.

use std::time::{Duration, Instant};

use base64::Engine as _;
use codec_server::config::CodecName;
use hyper::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::util::*;

const MIB: usize = 1024 * 1024;

/// A `Payloads` body of `count` copies of one payload: `encoding` over
/// `mib` MiB of zeros compressed (a small body that inflates).
fn bomb_body(encoding: &str, mib: usize, count: usize) -> Vec<u8> {
    let inner = payload_proto::temporal::api::common::v1::Payload {
        metadata: [(
            "encoding".to_owned(),
            bytes::Bytes::from_static(b"binary/plain"),
        )]
        .into(),
        data: vec![0_u8; mib * MIB].into(),
        external_payloads: Vec::new(),
    };
    let serialized = prost::Message::encode_to_vec(&inner);
    let data = if encoding == "binary/zstd" {
        zstd::bulk::compress(&serialized, 3).unwrap()
    } else {
        use std::io::Write as _;
        let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(&serialized).unwrap();
        encoder.finish().unwrap()
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    let item = format!(
        r#"{{"metadata":{{"encoding":"{}"}},"data":"{}"}}"#,
        b64.encode(encoding),
        b64.encode(&data)
    );
    format!(r#"{{"payloads":[{}]}}"#, vec![item; count].join(",")).into_bytes()
}

/// A server whose namespaces decompress (zstd and zlib, no key needed),
/// with `edit` applied.
async fn decompressing(edit: impl FnOnce(&mut codec_server::Config)) -> TestServer {
    spawn_with(|config, _| {
        config.default.as_mut().unwrap().chain = vec![CodecName::Zstd, CodecName::Zlib];
        edit(config);
    })
    .await
}

/// The value of an unlabelled metric, or 0 when absent.
async fn metric(server: &TestServer, name: &str) -> f64 {
    let answer = request(Method::GET, &server.url("/metrics"), &[], Vec::new()).await;
    let text = String::from_utf8_lossy(&answer.body);
    text.lines()
        .find_map(|line| {
            line.strip_prefix(name)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0.0)
}

/// Waits until `check` holds, polling every 20 ms; panics after `within`.
async fn eventually<F: std::future::Future<Output = bool>>(
    within: Duration,
    what: &str,
    mut check: impl FnMut() -> F,
) {
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_inflates_past_its_limit_is_refused_before_allocating() {
    // 1 MiB bodies: each request may decode to 4 MiB. 16 payloads of 2 MiB
    // of zeros ask for 32 MiB in a body of a few kilobytes.
    let server = decompressing(|c| c.server.max_body_bytes = MIB).await;
    for encoding in ["binary/zstd", "binary/zlib"] {
        let body = bomb_body(encoding, 2, 16);
        assert!(body.len() < 100 * 1024, "{encoding}: {} bytes", body.len());
        let answer = post(&server.url("/decode"), body).await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{encoding}"
        );
        let json = answer.json();
        assert_eq!(json["error"], "limit_exceeded");
        assert!(
            json["detail"]
                .as_str()
                .unwrap()
                .contains("raise `server.max_decoded_bytes`"),
            "{json}"
        );
    }
    // The same payloads, fewer of them, fit.
    let answer = post(&server.url("/decode"), bomb_body("binary/zstd", 1, 2)).await;
    assert_eq!(payloads_of(&answer).len(), 2);
    eventually(Duration::from_secs(2), "memory given back", || async {
        metric(&server, "codec_server_memory_in_use_bytes").await == 0.0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_answers_at_once_while_bombs_are_decoded() {
    let server = decompressing(|c| {
        c.server.max_body_bytes = 4 * MIB;
        c.server.max_decoded_bytes = Some(512 * MIB);
        c.server.max_in_flight_bytes = Some(1024 * MIB);
    })
    .await;
    // Small bodies that inflate to 64 MiB each: before the fix they were
    // decoded on the I/O threads, in seconds, and held up everything else.
    let body = bomb_body("binary/zlib", 60, 1);
    assert!(body.len() < 256 * 1024);
    let url = server.url("/decode");
    let bombs: Vec<_> = (0..4)
        .map(|_| {
            let (url, body) = (url.clone(), body.clone());
            tokio::spawn(async move { post(&url, body).await.status })
        })
        .collect();
    let mut slowest = Duration::ZERO;
    while !bombs.iter().all(tokio::task::JoinHandle::is_finished) {
        let started = Instant::now();
        let answer = request(Method::GET, &server.url("/healthz"), &[], Vec::new()).await;
        assert_eq!(answer.status, StatusCode::OK);
        slowest = slowest.max(started.elapsed());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for bomb in bombs {
        assert_eq!(bomb.await.unwrap(), StatusCode::OK);
    }
    assert!(
        slowest < Duration::from_secs(1),
        "/healthz took {slowest:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_stops_when_its_request_times_out() {
    // 48 payloads of 60 MiB each: far more work than a second allows.
    let server = decompressing(|c| {
        c.server.request_timeout_secs = 1;
        c.server.max_decoded_bytes = Some(4096 * MIB);
        c.server.max_in_flight_bytes = Some(4096 * MIB);
    })
    .await;
    let started = Instant::now();
    let answer = post(&server.url("/decode"), bomb_body("binary/zlib", 60, 48)).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.json()["error"], "timeout");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // Before the fix the work went on (and its memory grew) after the 503.
    eventually(
        Duration::from_secs(3),
        "the cancelled work gave its memory back",
        || async { metric(&server, "codec_server_memory_in_use_bytes").await == 0.0 },
    )
    .await;
}

/// Opens a connection and sends the head of a `/decode` request with a
/// body of `length` bytes, and `sent` bytes of it.
async fn started_request(server: &TestServer, length: usize, sent: &[u8]) -> TcpStream {
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST /decode HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
         content-length: {length}\r\n\r\n"
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(sent).await.unwrap();
    tcp
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_hold_no_processing_slot() {
    let server = spawn_with(|c, _| c.server.concurrency_limit = 1).await;
    // Two clients that send a byte of their body and then nothing.
    let _slow: Vec<TcpStream> =
        futures_join((0..2).map(|_| started_request(&server, 1000, b"{"))).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let answer = post(&server.url("/decode"), r#"{"payloads":[]}"#).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "a normal request waited {:?} behind slow bodies",
        started.elapsed()
    );
}

async fn futures_join<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut out = Vec::new();
    for future in futures {
        out.push(future.await);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_does_not_arrive_in_time_is_408() {
    let server = spawn_with(|c, _| c.server.request_timeout_secs = 1).await;
    let mut tcp = started_request(&server, 1000, b"{\"payloads\"").await;
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_string(&mut answer))
        .await
        .expect("answered and closed")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    assert!(answer.contains("\"error\":\"body_timeout\""), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
}

/// Reads until the peer closes; how long that took.
async fn closed_within(tcp: &mut TcpStream, limit: Duration) -> Duration {
    let started = Instant::now();
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(limit, tcp.read_to_end(&mut sink))
        .await
        .expect("the server closed the connection");
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_headers_and_silent_connections_are_cut() {
    let server = spawn_with(|c, _| c.server.header_read_timeout_secs = 1).await;
    let mut partial = TcpStream::connect(server.addr).await.unwrap();
    partial
        .write_all(b"POST /decode HTTP/1.1\r\nhost: x\r\nx-slow: ")
        .await
        .unwrap();
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    for tcp in [&mut partial, &mut silent] {
        let took = closed_within(tcp, Duration::from_secs(5)).await;
        assert!(took < Duration::from_secs(3), "{took:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_alive_http2_connections_close_when_idle() {
    let server = spawn_with(|c, _| c.server.idle_timeout_secs = 1).await;
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let (mut client, connection) = h2::client::handshake(tcp).await.unwrap();
    let mut closed = tokio::spawn(connection);
    let request = hyper::Request::get("/healthz").body(()).unwrap();
    let (answer, _) = client.send_request(request, true).unwrap();
    assert_eq!(answer.await.unwrap().status(), StatusCode::OK);
    let ended = tokio::time::timeout(Duration::from_secs(5), &mut closed).await;
    assert!(
        ended.is_ok(),
        "the idle connection was closed by the server"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_make_way_for_new_ones_at_the_cap() {
    let server = spawn_with(|c, _| c.server.max_connections = 4).await;
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(TcpStream::connect(server.addr).await.unwrap());
    }
    // The server has accepted all four (a request on a fifth is answered
    // only once one of them is closed).
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let answer = request(Method::GET, &server.url("/healthz"), &[], Vec::new()).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(metric(&server, "codec_server_connections_evicted_total").await >= 1.0);
    assert!(metric(&server, "codec_server_connections_open").await <= 4.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_bodies_wait_for_room_in_memory() {
    // Room for two bodies of 512 KiB at a time; eight are sent at once,
    // without a length, slowly.
    let server = spawn_with(|c, _| {
        c.server.max_body_bytes = 512 * 1024;
        c.server.max_in_flight_bytes = Some(1024 * 1024);
    })
    .await;
    let payload = plain(&"x".repeat(300 * 1024));
    let body = body_of(&[payload]);
    assert!(body.len() > 400 * 1024 && body.len() <= 512 * 1024);
    let sends: Vec<_> = (0..8)
        .map(|_| {
            let body = body.clone();
            let addr = server.addr;
            tokio::spawn(async move { chunked_post(addr, &body).await })
        })
        .collect();
    let mut most = 0.0_f64;
    while !sends.iter().all(tokio::task::JoinHandle::is_finished) {
        most = most.max(metric(&server, "codec_server_memory_in_use_bytes").await);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for send in sends {
        assert!(send.await.unwrap().starts_with("HTTP/1.1 200 "));
    }
    assert!(most <= (1024 * 1024) as f64, "{most} bytes held");
}

/// Sends `body` chunked, 64 KiB a chunk with a pause between; the head of
/// the answer.
async fn chunked_post(addr: std::net::SocketAddr, body: &[u8]) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(
        b"POST /decode HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
          transfer-encoding: chunked\r\nconnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    for chunk in body.chunks(64 * 1024) {
        tcp.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .await
            .unwrap();
        tcp.write_all(chunk).await.unwrap();
        tcp.write_all(b"\r\n").await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tcp.write_all(b"0\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    tcp.read_to_end(&mut answer).await.unwrap();
    String::from_utf8_lossy(&answer[..answer.len().min(200)]).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_a_half_sent_request_after_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = codec_server::Config::development(write_keyring(dir.path()));
    config.server.shutdown_grace_secs = 1;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(codec_server::serve_on(listener, config, async {
        let _ = stopped.await;
    }));
    let mut half = TcpStream::connect(addr).await.unwrap();
    half.write_all(b"POST /decode HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{")
        .await
        .unwrap();
    // A kept-alive connection sees readiness turn false at once.
    let mut probe = TcpStream::connect(addr).await.unwrap();
    let ask = b"GET /readyz HTTP/1.1\r\nhost: x\r\n\r\n";
    probe.write_all(ask).await.unwrap();
    let mut buf = [0_u8; 512];
    let n = probe.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = Instant::now();
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), served)
        .await
        .expect("serve_on returned within the grace period")
        .unwrap()
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let took = closed_within(&mut half, Duration::from_secs(1)).await;
    assert!(took < Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_refusals_keep_the_connection_usable() {
    // A namespace that needs a token: the request is refused before its
    // body is read. The body arrives a little after the head, as it does
    // from clients that write them separately.
    let server = spawn_with(|c, _| {
        c.default.as_mut().unwrap().auth = codec_server::config::AuthConfig::Bearer {
            token_sha256: vec![codec_server::auth::hash_token("t")],
            read_only_token_sha256: Vec::new(),
        };
    })
    .await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    let body = br#"{"payloads":[]}"#;
    for round in 0..20 {
        let head = format!(
            "POST /decode HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
             content-length: {}\r\n\r\n",
            body.len()
        );
        tcp.write_all(head.as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        tcp.write_all(body).await.unwrap();
        let answer = read_answer(&mut tcp).await;
        assert!(
            answer.starts_with("HTTP/1.1 401 "),
            "round {round}: {answer}"
        );
        assert!(
            !answer.to_ascii_lowercase().contains("connection: close"),
            "{answer}"
        );
    }
    // A body too large to wait for: the answer says the connection closes.
    let head = "POST /decode HTTP/1.1\r\nhost: x\r\ncontent-length: 10000000\r\n\r\n";
    tcp.write_all(head.as_bytes()).await.unwrap();
    let answer = read_answer(&mut tcp).await;
    assert!(answer.starts_with("HTTP/1.1 401 "), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
}

/// Reads one answer with a `content-length` from `tcp`.
async fn read_answer(tcp: &mut TcpStream) -> String {
    let mut seen = Vec::new();
    let mut buf = [0_u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
            .await
            .expect("an answer")
            .unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&seen).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length: usize = text[..end]
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .unwrap_or(0);
            if seen.len() >= end + 4 + length {
                return text;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_rapid_resets_do_not_take_the_server_down() {
    let server = spawn().await;
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    let driver = tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let mut sent = 0;
    for _ in 0..5000 {
        let request = hyper::Request::post("/decode")
            .header("content-type", "application/json")
            .body(())
            .unwrap();
        let Ok((_, mut stream)) = client.send_request(request, false) else {
            break;
        };
        stream.send_reset(h2::Reason::CANCEL);
        sent += 1;
        match client.ready().await {
            Ok(ready) => client = ready,
            Err(_) => break,
        }
    }
    assert!(sent > 0);
    let answer = request(Method::GET, &server.url("/healthz"), &[], Vec::new()).await;
    assert_eq!(answer.status, StatusCode::OK);
    driver.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_streams_beyond_the_limit_are_refused() {
    let server = spawn_with(|c, _| c.server.http2_max_concurrent_streams = 8).await;
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    // One request answered: the server's settings have arrived.
    let mut client = client.ready().await.unwrap();
    let (answer, _) = client
        .send_request(hyper::Request::get("/healthz").body(()).unwrap(), true)
        .unwrap();
    assert_eq!(answer.await.unwrap().status(), StatusCode::OK);
    let mut client = client.ready().await.unwrap();
    // Streams whose bodies never end: the ninth waits for a place.
    let mut open = Vec::new();
    for _ in 0..8 {
        let request = hyper::Request::post("/decode").body(()).unwrap();
        let (answer, stream) = client.send_request(request, false).unwrap();
        open.push((answer, stream));
        client = client.ready().await.unwrap();
    }
    // A ninth, which would be answered at once, is not served while eight
    // are open (the server advertises the limit and refuses streams past
    // it) ...
    let request = hyper::Request::get("/healthz").body(()).unwrap();
    let (ninth, _) = client.send_request(request, true).unwrap();
    let mut ninth = std::pin::pin!(ninth);
    let early = tokio::time::timeout(Duration::from_millis(500), ninth.as_mut()).await;
    assert!(
        early.is_err(),
        "a ninth stream was served while eight were open"
    );
    // ... and is once one of them ends.
    let (_, mut first) = open.remove(0);
    first.send_reset(h2::Reason::CANCEL);
    let answer = tokio::time::timeout(Duration::from_secs(5), ninth)
        .await
        .expect("served once a stream ended")
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    drop(open);
}
