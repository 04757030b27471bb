//! The HTTP/1.1 attacks of the soak, one function each, every loop bounded.
//! Each returns what it measured and whether the server held up.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use super::client::{self, Answer, head, payloads_body, read_answer};
use super::server::Server;
use super::{Outcome, Settings};

const MIB: usize = 1024 * 1024;

/// Statuses seen, as `200×3 422×5`.
fn tally(statuses: &[u16]) -> String {
    let mut counts = std::collections::BTreeMap::new();
    for status in statuses {
        *counts.entry(*status).or_insert(0) += 1;
    }
    counts
        .iter()
        .map(|(s, n)| format!("{s}×{n}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Sixteen copies of a small frame that inflates to 60 MiB, eight requests
/// at a time, twice: every one refused (422, or 503 when the memory all
/// requests may hold is taken), none answered.
pub(crate) async fn bombs(
    addr: SocketAddr,
    encoding: &'static str,
    data: &[u8],
) -> anyhow::Result<Outcome> {
    let body = payloads_body(&vec![(encoding, data); 16]);
    let mut statuses = Vec::new();
    for _ in 0..2 {
        let mut calls = JoinSet::new();
        for _ in 0..8 {
            let body = body.clone();
            calls.spawn(async move { client::decode(addr, &body).await.map(|a| a.status) });
        }
        while let Some(status) = calls.join_next().await {
            statuses.push(status?.unwrap_or(0));
        }
    }
    // Refused, each by its own limit (422) or by the memory all requests
    // share (503): which one a request meets first depends on how the eight
    // interleave, so both count; the memory bound is checked apart.
    let refused = statuses.iter().all(|s| matches!(s, 422 | 503));
    Ok(Outcome {
        measured: format!(
            "{} B frames, {} KB bodies: {}",
            data.len(),
            body.len() / 1000,
            tally(&statuses)
        ),
        held: refused,
    })
}

/// One payload of 12 MiB (a 16 MiB body), 64 requests at once, chunked or
/// with a length: all answered, or refused for lack of time or memory.
pub(crate) async fn many_large(addr: SocketAddr, chunked: bool) -> anyhow::Result<Outcome> {
    let data = vec![b'x'; 12 * MIB];
    let body = std::sync::Arc::new(payloads_body(&[("binary/plain", data.as_slice())]));
    let started = Instant::now();
    let mut calls = JoinSet::new();
    for _ in 0..64 {
        let body = body.clone();
        calls.spawn(async move {
            let tcp = TcpStream::connect(addr).await?;
            let (mut reader, mut writer) = tcp.into_split();
            // The answer is read while the body is still being written: a
            // server that cuts a body short answers before it has all of it.
            let send = async move {
                let headers = [
                    ("content-type", "application/json"),
                    ("x-namespace", "soak"),
                ];
                if chunked {
                    let mut text = head("POST", "/decode", &headers, None);
                    text.insert_str(text.len() - 2, "transfer-encoding: chunked\r\n");
                    writer.write_all(text.as_bytes()).await?;
                    for piece in body.chunks(64 * 1024) {
                        writer
                            .write_all(format!("{:x}\r\n", piece.len()).as_bytes())
                            .await?;
                        writer.write_all(piece).await?;
                        writer.write_all(b"\r\n").await?;
                    }
                    writer.write_all(b"0\r\n\r\n").await?;
                } else {
                    let text = head("POST", "/decode", &headers, Some(body.len()));
                    writer.write_all(text.as_bytes()).await?;
                    writer.write_all(&body).await?;
                }
                anyhow::Ok(writer)
            };
            let send = tokio::spawn(send);
            let answer = read_answer(&mut reader).await;
            send.abort();
            anyhow::Ok(answer?.status)
        });
    }
    let mut statuses = Vec::new();
    while let Some(status) = calls.join_next().await {
        statuses.push(status?.unwrap_or(0));
    }
    let ok = statuses.iter().filter(|s| **s == 200).count();
    Ok(Outcome {
        measured: format!(
            "{} in {:.1} s ({})",
            tally(&statuses),
            started.elapsed().as_secs_f64(),
            if chunked { "chunked" } else { "content-length" }
        ),
        held: statuses.iter().all(|s| matches!(s, 200 | 408 | 503)) && ok > 0,
    })
}

/// Reads until the server closes `tcp` or `limit` passes; when it closed.
async fn closed_after(tcp: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut sink = vec![0_u8; 4096];
    loop {
        let left = limit.checked_sub(started.elapsed())?;
        match tokio::time::timeout(left, tcp.read(&mut sink)).await {
            Ok(Ok(0) | Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {}
            Err(_) => return None,
        }
    }
}

/// Sixty connections that send part of a request's headers and stop: each
/// is cut within the header-read timeout (and a second).
pub(crate) async fn partial_headers(
    addr: SocketAddr,
    settings: &Settings,
) -> anyhow::Result<Outcome> {
    let bound = settings.header_read_timeout + Duration::from_secs(1);
    let mut conns = JoinSet::new();
    for i in 0..60 {
        conns.spawn(async move {
            let mut tcp = TcpStream::connect(addr).await?;
            tcp.write_all(
                format!("POST /decode HTTP/1.1\r\nhost: soak\r\nx-slow-{i}: ").as_bytes(),
            )
            .await?;
            anyhow::Ok(closed_after(&mut tcp, bound * 3).await)
        });
    }
    let mut slowest = Duration::ZERO;
    let mut open = 0;
    while let Some(closed) = conns.join_next().await {
        match closed?? {
            Some(after) => slowest = slowest.max(after),
            None => open += 1,
        }
    }
    Ok(Outcome {
        measured: format!(
            "60 cut, the last after {:.1} s; {open} still open after {:.0} s",
            slowest.as_secs_f64(),
            (bound * 3).as_secs_f64()
        ),
        held: open == 0 && slowest <= bound,
    })
}

/// Twenty connections that send a byte of their body a second: normal
/// requests are still answered at once, and the slow ones are cut at the
/// request timeout.
pub(crate) async fn slow_bodies(addr: SocketAddr, settings: &Settings) -> anyhow::Result<Outcome> {
    let bound = settings.request_timeout + Duration::from_secs(1);
    let mut slow = JoinSet::new();
    for _ in 0..20 {
        slow.spawn(async move {
            let mut tcp = TcpStream::connect(addr).await?;
            tcp.write_all(head("POST", "/decode", &[], Some(1000)).as_bytes())
                .await?;
            let started = Instant::now();
            while started.elapsed() < bound * 2 {
                if tcp.write_all(b" ").await.is_err() {
                    break;
                }
                match tokio::time::timeout(Duration::from_secs(1), read_answer(&mut tcp)).await {
                    Ok(Ok(answer)) => return anyhow::Ok((answer.status, started.elapsed())),
                    Ok(Err(_)) => break,
                    Err(_) => {}
                }
            }
            Ok((0, started.elapsed()))
        });
    }
    let mut slowest_normal = Duration::ZERO;
    let body = payloads_body(&[("binary/plain", b"ok")]);
    for _ in 0..20 {
        let started = Instant::now();
        let answer = client::decode(addr, &body).await?;
        anyhow::ensure!(
            answer.status == 200,
            "a normal request got {}",
            answer.status
        );
        slowest_normal = slowest_normal.max(started.elapsed());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut cut = Vec::new();
    while let Some(result) = slow.join_next().await {
        cut.push(result??);
    }
    let statuses: Vec<u16> = cut.iter().map(|(s, _)| *s).collect();
    let latest = cut.iter().map(|(_, t)| *t).max().unwrap_or_default();
    Ok(Outcome {
        measured: format!(
            "normal requests answered in ≤ {:.0} ms; slow bodies got {} after ≤ {:.1} s",
            slowest_normal.as_secs_f64() * 1000.0,
            tally(&statuses),
            latest.as_secs_f64()
        ),
        held: slowest_normal < Duration::from_secs(1)
            && statuses.iter().all(|s| *s == 408)
            && latest <= bound,
    })
}

/// As many idle connections as this process may open (up to 20,000):
/// a normal request is still answered.
pub(crate) async fn idle_sockets(
    addr: SocketAddr,
    fd_limit: usize,
    server_fds: impl Fn() -> usize,
) -> anyhow::Result<Outcome> {
    let wanted = 20_000.min(fd_limit.saturating_sub(200));
    let mut sockets = Vec::with_capacity(wanted);
    let started = Instant::now();
    let mut failed_connects = 0;
    while sockets.len() + failed_connects < wanted && started.elapsed() < Duration::from_secs(60) {
        let batch = (wanted - sockets.len() - failed_connects).min(500);
        let mut connects = JoinSet::new();
        for _ in 0..batch {
            connects.spawn(async move {
                tokio::time::timeout(Duration::from_secs(3), TcpStream::connect(addr)).await
            });
        }
        while let Some(connected) = connects.join_next().await {
            match connected? {
                Ok(Ok(tcp)) => sockets.push(tcp),
                _ => failed_connects += 1,
            }
        }
    }
    let opened = sockets.len();
    let fds = server_fds();
    let body = payloads_body(&[("binary/plain", b"ok")]);
    let asked = Instant::now();
    let answer = tokio::time::timeout(Duration::from_secs(10), client::decode(addr, &body))
        .await
        .context("a normal request among idle sockets")?;
    let took = asked.elapsed();
    let status = answer.map_or(0, |a| a.status);
    drop(sockets);
    Ok(Outcome {
        measured: format!(
            "{opened} idle sockets opened ({failed_connects} connects timed out), the server \
             holding {fds} file descriptors; a new request got {status} in {:.0} ms",
            took.as_secs_f64() * 1000.0
        ),
        held: status == 200 && took < Duration::from_secs(2),
    })
}

/// One connection failing requests as fast as it can for three seconds,
/// each with a 60 KB `X-Namespace`: the log grows by little.
pub(crate) async fn log_flood(addr: SocketAddr) -> anyhow::Result<(Outcome, u64)> {
    let namespace = "n".repeat(60_000);
    let request = head(
        "POST",
        "/decode",
        &[("content-type", "text/plain"), ("x-namespace", &namespace)],
        Some(0),
    );
    let started = Instant::now();
    let mut sent = 0_u64;
    let mut tcp = TcpStream::connect(addr).await?;
    while started.elapsed() < Duration::from_secs(3) {
        tcp.write_all(request.as_bytes()).await?;
        let answer = read_answer(&mut tcp).await?;
        anyhow::ensure!(answer.status == 415, "expected 415, got {}", answer.status);
        sent += 1;
        if answer.closes {
            tcp = TcpStream::connect(addr).await?;
        }
    }
    Ok((
        Outcome {
            measured: format!("{sent} failed requests"),
            held: true,
        },
        sent,
    ))
}

/// 2,000 requests refused before their body is read (401), on kept-alive
/// connections, each body sent just after its head: none of the next
/// requests fails.
pub(crate) async fn early_refusals(addr: SocketAddr) -> anyhow::Result<Outcome> {
    let mut conns = JoinSet::new();
    for _ in 0..10 {
        conns.spawn(async move {
            let body = payloads_body(&[("binary/plain", b"ok")]);
            let head = head(
                "POST",
                "/decode",
                &[
                    ("content-type", "application/json"),
                    ("x-namespace", "locked"),
                ],
                Some(body.len()),
            );
            let mut tcp = TcpStream::connect(addr).await?;
            let (mut refused, mut broken) = (0, 0);
            for i in 0..200 {
                tcp.write_all(head.as_bytes()).await?;
                if i % 2 == 0 {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                tcp.write_all(&body).await?;
                match read_answer(&mut tcp).await {
                    Ok(Answer {
                        status: 401,
                        closes,
                        ..
                    }) => {
                        refused += 1;
                        if closes {
                            tcp = TcpStream::connect(addr).await?;
                        }
                    }
                    _ => {
                        broken += 1;
                        tcp = TcpStream::connect(addr).await?;
                    }
                }
            }
            anyhow::Ok((refused, broken))
        });
    }
    let (mut refused, mut broken) = (0, 0);
    while let Some(result) = conns.join_next().await {
        let (r, b) = result??;
        refused += r;
        broken += b;
    }
    Ok(Outcome {
        measured: format!("{refused} answered 401, {broken} failed on a kept-alive connection"),
        held: broken == 0 && refused == 2000,
    })
}

/// A request whose codec work would take far longer than the request
/// timeout, on a server that allows it that much memory: refused at the
/// deadline, and the work stops (its memory goes back) instead of going
/// on.
pub(crate) async fn work_past_the_deadline(
    addr: SocketAddr,
    zlib_bomb: &[u8],
    rss: impl Fn() -> u64,
) -> anyhow::Result<Outcome> {
    let body = payloads_body(&vec![("binary/zlib", zlib_bomb); 48]);
    let before = rss();
    let started = Instant::now();
    let answer = client::decode(addr, &body).await?;
    let answered = started.elapsed();
    let mut after = rss();
    let settle = Instant::now();
    while after > before + 64 * MIB as u64 && settle.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        after = rss();
    }
    let back = settle.elapsed();
    Ok(Outcome {
        measured: format!(
            "{} after {:.1} s; memory back to {} MiB {:.1} s later",
            answer.status,
            answered.as_secs_f64(),
            after / MIB as u64,
            back.as_secs_f64()
        ),
        held: answer.status == 503 && after <= before + 64 * MIB as u64,
    })
}

/// A request half sent when SIGTERM comes: the server exits within its
/// shutdown grace period (and a second).
pub(crate) async fn half_sent_at_sigterm(
    server: &mut Server,
    settings: &Settings,
) -> anyhow::Result<Outcome> {
    let mut tcp = TcpStream::connect(server.addr).await?;
    tcp.write_all(head("POST", "/decode", &[], Some(1000)).as_bytes())
        .await?;
    tcp.write_all(b"{\"payloads\":").await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.terminate()?;
    let bound = settings.shutdown_grace + Duration::from_secs(1);
    let exited = tokio::task::block_in_place(|| server.wait_exit(bound * 3))?;
    Ok(Outcome {
        measured: match exited {
            Some(after) => format!("exited {:.1} s after SIGTERM", after.as_secs_f64()),
            None => format!(
                "still running {:.0} s after SIGTERM",
                (bound * 3).as_secs_f64()
            ),
        },
        held: exited.is_some_and(|after| after <= bound),
    })
}
