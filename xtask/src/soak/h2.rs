//! The HTTP/2 attacks of the soak, with the `h2` client (cleartext HTTP/2
//! with prior knowledge, which the server accepts like any client's).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio::task::JoinSet;

use super::Outcome;
use super::client;

/// Streams opened and reset at once (CVE-2023-44487), 25,000 on each of
/// four connections: the server stays up and keeps answering, and may
/// close the flooding connections.
pub(crate) async fn rapid_reset(addr: SocketAddr) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let mut floods = JoinSet::new();
    for _ in 0..4 {
        floods.spawn(async move {
            let tcp = TcpStream::connect(addr).await?;
            let (client, connection) = h2::client::handshake(tcp).await?;
            let driver = tokio::spawn(connection);
            let mut client = client.ready().await?;
            let mut sent = 0_u32;
            while sent < 25_000 {
                let request = hyper::Request::post("/decode")
                    .header("content-type", "application/json")
                    .body(())?;
                let Ok((_, mut stream)) = client.send_request(request, false) else {
                    break;
                };
                stream.send_reset(h2::Reason::CANCEL);
                sent += 1;
                match tokio::time::timeout(Duration::from_secs(5), client.ready()).await {
                    Ok(Ok(ready)) => client = ready,
                    _ => break,
                }
            }
            driver.abort();
            anyhow::Ok(sent)
        });
    }
    let mut sent = Vec::new();
    while let Some(count) = floods.join_next().await {
        sent.push(count??);
    }
    let body = client::payloads_body(&[("binary/plain", b"ok")]);
    let after = client::decode(addr, &body).await?;
    Ok(Outcome {
        measured: format!(
            "{} streams opened and reset per connection before it ended, in {:.1} s; a request \
             after: {}",
            sent.iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join("/"),
            started.elapsed().as_secs_f64(),
            after.status
        ),
        held: after.status == 200,
    })
}

/// Twenty connections each opening 150 streams whose bodies never end:
/// the server serves at most its limit a connection (cut at the request
/// timeout with 408) and refuses the rest, and other clients are served
/// meanwhile.
pub(crate) async fn stream_flood(
    addr: SocketAddr,
    request_timeout: Duration,
) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    // Streams the server serves at once are all cut one request timeout
    // after they opened; streams it served later, after earlier ones ended,
    // a timeout after that.
    let first_wave = request_timeout + request_timeout / 2;
    let mut floods = JoinSet::new();
    for _ in 0..20 {
        floods.spawn(async move {
            let tcp = TcpStream::connect(addr).await?;
            let (client, connection) = h2::client::handshake(tcp).await?;
            let driver = tokio::spawn(connection);
            let mut client = client.ready().await?;
            let mut open = Vec::new();
            for _ in 0..150 {
                let request = hyper::Request::post("/decode")
                    .header("content-length", "1000")
                    .body(())?;
                let Ok((answer, stream)) = client.send_request(request, false) else {
                    break;
                };
                open.push((answer, stream));
                let ready = std::future::poll_fn(|cx| client.poll_ready(cx));
                if !matches!(
                    tokio::time::timeout(Duration::from_millis(200), ready).await,
                    Ok(Ok(()))
                ) {
                    break;
                }
            }
            // Served streams are answered when the server cuts them;
            // refused ones end with an error at once.
            let mut served = 0_usize;
            let mut at_once = 0_usize;
            let mut refused = 0_usize;
            let mut other = 0_usize;
            for (answer, _stream) in open {
                match tokio::time::timeout(request_timeout * 4, answer).await {
                    Ok(Ok(response)) if response.status() == 408 => {
                        served += 1;
                        if started.elapsed() < first_wave {
                            at_once += 1;
                        }
                    }
                    Ok(Err(_)) => refused += 1,
                    _ => other += 1,
                }
            }
            driver.abort();
            anyhow::Ok((served, at_once, refused, other))
        });
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let body = client::payloads_body(&[("binary/plain", b"ok")]);
    let during = client::decode(addr, &body).await?.status;
    let (mut most, mut served, mut refused, mut other) = (0, 0, 0, 0);
    while let Some(result) = floods.join_next().await {
        let (s, at_once, r, o) = result??;
        most = most.max(at_once);
        served += s;
        refused += r;
        other += o;
    }
    Ok(Outcome {
        measured: format!(
            "20 connections × 150 streams: {served} served, each cut with 408 (at most {most} \
             at once on a connection), {refused} refused, {other} other; a request meanwhile: \
             {during}"
        ),
        held: during == 200 && most <= 100 && other == 0,
    })
}
