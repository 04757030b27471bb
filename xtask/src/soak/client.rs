//! The soak's clients: plain HTTP/1.1 over TCP (an attacker writes bytes,
//! not well-formed requests), a health prober, and the bodies the attacks
//! send.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A request's head for `path` with `headers`, and its body's length.
pub(crate) fn head(
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    length: Option<usize>,
) -> String {
    let mut text = format!("{method} {path} HTTP/1.1\r\nhost: soak\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(length) = length {
        text.push_str(&format!("content-length: {length}\r\n"));
    }
    text.push_str("\r\n");
    text
}

/// An answer: its status (the body is read and dropped).
pub(crate) struct Answer {
    pub(crate) status: u16,
    /// Whether the server said it closes the connection.
    pub(crate) closes: bool,
}

/// Reads one answer (with a `content-length`) from `tcp`, keeping its head
/// only (a bomb's answer, from a server that decodes it, is gigabytes).
pub(crate) async fn read_answer(
    tcp: &mut (impl tokio::io::AsyncRead + Unpin),
) -> anyhow::Result<Answer> {
    let mut seen = Vec::new();
    let mut buf = vec![0_u8; 64 * 1024];
    let (head, mut left) = loop {
        if let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&seen[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            break (head, length.saturating_sub(seen.len() - end - 4));
        }
        let n = tcp.read(&mut buf).await?;
        if n == 0 {
            bail!("the connection closed before a whole answer");
        }
        seen.extend_from_slice(&buf[..n]);
    };
    while left > 0 {
        let n = tcp.read(&mut buf[..left.min(64 * 1024)]).await?;
        if n == 0 {
            bail!("the connection closed before a whole answer");
        }
        left -= n;
    }
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no status in the answer")?;
    Ok(Answer {
        status,
        closes: head.contains("connection: close"),
    })
}

/// One request on a new connection; its answer.
pub(crate) async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> anyhow::Result<Answer> {
    let mut tcp = TcpStream::connect(addr).await?;
    tcp.write_all(head(method, path, headers, Some(body.len())).as_bytes())
        .await?;
    tcp.write_all(body).await?;
    read_answer(&mut tcp).await
}

/// A `/decode` of `body` with the CLI's headers.
pub(crate) async fn decode(addr: SocketAddr, body: &[u8]) -> anyhow::Result<Answer> {
    call(
        addr,
        "POST",
        "/decode",
        &[
            ("content-type", "application/json"),
            ("x-namespace", "soak"),
        ],
        body,
    )
    .await
}

/// Asks `/healthz` every 50 ms on a new connection, as a load balancer
/// does, while an attack runs; records the slowest answer and failures.
pub(crate) struct Prober {
    stop: Arc<AtomicBool>,
    slowest_us: Arc<AtomicU64>,
    failures: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

/// What the prober saw.
pub(crate) struct Health {
    pub(crate) slowest: Duration,
    pub(crate) failures: u64,
}

/// A health check slower than this is a failure (and ends waiting for it).
const PROBE_LIMIT: Duration = Duration::from_secs(5);

impl Prober {
    pub(crate) fn start(addr: SocketAddr) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let slowest_us = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn({
            let (stop, slowest_us, failures) = (stop.clone(), slowest_us.clone(), failures.clone());
            async move {
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let answer =
                        tokio::time::timeout(PROBE_LIMIT, call(addr, "GET", "/healthz", &[], b""))
                            .await;
                    let took = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                    slowest_us.fetch_max(took, Ordering::Relaxed);
                    if !matches!(answer, Ok(Ok(Answer { status: 200, .. }))) {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        });
        Self {
            stop,
            slowest_us,
            failures,
            task,
        }
    }

    pub(crate) async fn finish(self) -> Health {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        Health {
            slowest: Duration::from_micros(self.slowest_us.load(Ordering::Relaxed)),
            failures: self.failures.load(Ordering::Relaxed),
        }
    }
}

/// A `Payloads` JSON body of `payloads`, each `(encoding, data)`.
pub(crate) fn payloads_body(payloads: &[(&str, &[u8])]) -> Vec<u8> {
    let items: Vec<String> = payloads
        .iter()
        .map(|(encoding, data)| {
            format!(
                r#"{{"metadata":{{"encoding":"{}"}},"data":"{}"}}"#,
                STANDARD.encode(encoding),
                STANDARD.encode(data)
            )
        })
        .collect();
    format!(r#"{{"payloads":[{}]}}"#, items.join(",")).into_bytes()
}

/// A serialized `binary/plain` Payload of `len` zero bytes, written into
/// `out` (a compressing writer) a mebibyte at a time.
pub(crate) fn write_zeros_payload(
    out: &mut impl std::io::Write,
    len: usize,
) -> std::io::Result<()> {
    // Field 1 (metadata map entry {1: "encoding", 2: "binary/plain"}), then
    // field 2 (data) with its length.
    let mut prefix = vec![0x0a, 24, 0x0a, 8];
    prefix.extend_from_slice(b"encoding");
    prefix.extend_from_slice(&[0x12, 12]);
    prefix.extend_from_slice(b"binary/plain");
    prefix.push(0x12);
    let mut n = len as u64;
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            prefix.push(byte);
            break;
        }
        prefix.push(byte | 0x80);
    }
    out.write_all(&prefix)?;
    let zeros = vec![0_u8; 1024 * 1024];
    let mut left = len;
    while left > 0 {
        let take = left.min(zeros.len());
        out.write_all(&zeros[..take])?;
        left -= take;
    }
    Ok(())
}

/// The data of a `binary/zstd` payload that inflates to `len` zeros.
pub(crate) fn zstd_bomb(len: usize) -> anyhow::Result<Vec<u8>> {
    let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 19)?;
    write_zeros_payload(&mut encoder, len)?;
    Ok(encoder.finish()?)
}

/// The data of a `binary/zlib` payload that inflates to `len` zeros.
pub(crate) fn zlib_bomb(len: usize) -> anyhow::Result<Vec<u8>> {
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    write_zeros_payload(&mut encoder, len)?;
    Ok(encoder.finish()?)
}
