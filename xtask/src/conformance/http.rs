//! Plain HTTP/1.1 calls to our Codec Server on 127.0.0.1 (hyper, one
//! connection a call), blocking, for the checks that speak its API directly
//! rather than through the CLI or the browser.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// How long one call may take, connection included.
const CALL_LIMIT: Duration = Duration::from_secs(90);

/// An answer: its status and body.
pub(super) struct Answer {
    pub(super) status: u16,
    pub(super) body: Vec<u8>,
}

impl Answer {
    /// The body as JSON.
    pub(super) fn json(&self) -> anyhow::Result<serde_json::Value> {
        serde_json::from_slice(&self.body).with_context(|| {
            format!(
                "the answer ({}) is not JSON: {}",
                self.status,
                String::from_utf8_lossy(&self.body[..self.body.len().min(500)])
            )
        })
    }

    /// The beginning of the body, for messages.
    pub(super) fn excerpt(&self) -> String {
        String::from_utf8_lossy(&self.body[..self.body.len().min(500)]).into_owned()
    }
}

/// `POST path` with a JSON `body` and the CLI's headers
/// (`X-Namespace: default`).
pub(super) fn post(port: u16, path: &str, body: &[u8]) -> anyhow::Result<Answer> {
    post_in(port, "default", path, body)
}

/// [`post`] with `X-Namespace: namespace`.
pub(super) fn post_in(
    port: u16,
    namespace: &str,
    path: &str,
    body: &[u8],
) -> anyhow::Result<Answer> {
    call(
        port,
        ("POST", path),
        namespace,
        Bytes::copy_from_slice(body),
    )
}

/// `GET path`.
pub(super) fn get(port: u16, path: &str) -> anyhow::Result<Answer> {
    call(port, ("GET", path), "default", Bytes::new())
}

/// `GET /healthz` answers 200: the server is up (used while a store or KMS
/// it needs is down).
pub(super) fn healthy(port: u16) -> anyhow::Result<()> {
    let health = get(port, "/healthz")?;
    anyhow::ensure!(
        health.status == 200,
        "/healthz answered {}: {}",
        health.status,
        health.excerpt()
    );
    Ok(())
}

fn call(
    port: u16,
    (method, path): (&str, &str),
    namespace: &str,
    body: Bytes,
) -> anyhow::Result<Answer> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime
        .block_on(async {
            tokio::time::timeout(CALL_LIMIT, send(port, (method, path), namespace, body))
                .await
                .with_context(|| format!("no answer within {CALL_LIMIT:?}"))?
        })
        .with_context(|| format!("{method} {path} on 127.0.0.1:{port}"))
}

async fn send(
    port: u16,
    (method, path): (&str, &str),
    namespace: &str,
    body: Bytes,
) -> anyhow::Result<Answer> {
    let stream = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", format!("127.0.0.1:{port}"))
        .header("content-type", "application/json")
        .header("x-namespace", namespace)
        .body(Full::new(body))?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes().to_vec();
    Ok(Answer { status, body })
}
