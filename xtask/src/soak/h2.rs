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

/// Twenty connections each opening as many streams as the server lets
/// them, whose bodies never end, and trying one more: the streams are held
/// to the server's limit, cut at the request timeout, and other clients
/// are served meanwhile.
pub(crate) async fn stream_flood(addr: SocketAddr) -> anyhow::Result<Outcome> {
    let mut floods = JoinSet::new();
    for _ in 0..20 {
        floods.spawn(async move {
            let tcp = TcpStream::connect(addr).await?;
            let (client, connection) = h2::client::handshake(tcp).await?;
            let driver = tokio::spawn(connection);
            let mut client = client.ready().await?;
            let mut open = Vec::new();
            // The client keeps to the limit the server announces; what
            // counts is how many the server really serves at once.
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
            let opened = open.len();
            let announced = client.current_max_send_streams();
            // The answers come when the server cuts the streams.
            let mut statuses = Vec::new();
            for (answer, _stream) in open {
                match tokio::time::timeout(Duration::from_secs(15), answer).await {
                    Ok(Ok(response)) => statuses.push(response.status().as_u16()),
                    _ => statuses.push(0),
                }
            }
            driver.abort();
            anyhow::Ok((opened, announced, statuses))
        });
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let body = client::payloads_body(&[("binary/plain", b"ok")]);
    let during = client::decode(addr, &body).await?.status;
    let mut opened = 0;
    let mut announced = 0;
    let mut statuses = Vec::new();
    while let Some(result) = floods.join_next().await {
        let (count, limit, seen) = result??;
        opened += count;
        announced = announced.max(limit);
        statuses.extend(seen);
    }
    let timed_out = statuses.iter().filter(|s| **s == 408).count();
    Ok(Outcome {
        measured: format!(
            "{opened} streams asked for on 20 connections, the server allowing {announced} at \
             once on each; {timed_out} of {} cut with 408; a request meanwhile: {during}",
            statuses.len()
        ),
        held: during == 200 && announced <= 100 && timed_out == statuses.len(),
    })
}
