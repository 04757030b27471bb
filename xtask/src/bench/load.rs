//! A small HTTP/1.1 load client over hyper: keep-alive connections sending
//! the same request as fast as answers come, for a fixed time.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// A load to run.
pub(crate) struct Load {
    pub(crate) addr: SocketAddr,
    pub(crate) path: &'static str,
    pub(crate) body: Bytes,
    pub(crate) connections: usize,
    pub(crate) duration: Duration,
}

/// What a load measured.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    /// Latencies in microseconds, sorted.
    latencies: Vec<u32>,
    elapsed: Duration,
    bytes: u64,
    pub(crate) errors: u64,
}

impl Stats {
    fn merge(&mut self, other: Stats) {
        self.latencies.extend(other.latencies);
        self.bytes += other.bytes;
        self.errors += other.errors;
    }

    fn finish(mut self, elapsed: Duration) -> Self {
        self.latencies.sort_unstable();
        self.elapsed = elapsed;
        self
    }

    /// Stats of requests timed elsewhere (each one succeeded), `bytes`
    /// each, one after another.
    pub(crate) fn from_latencies(latencies: &[Duration], bytes: usize) -> Self {
        let mut stats = Stats::default();
        for latency in latencies {
            stats
                .latencies
                .push(u32::try_from(latency.as_micros()).unwrap_or(u32::MAX));
            stats.bytes += bytes as u64;
        }
        let elapsed = latencies.iter().sum();
        stats.finish(elapsed)
    }

    pub(crate) fn rps(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    /// Request body bytes per second.
    pub(crate) fn mib_per_sec(&self) -> f64 {
        self.bytes as f64 / self.elapsed.as_secs_f64() / 1048576.0
    }

    fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let index =
            ((self.latencies.len() as f64 * p).ceil() as usize).clamp(1, self.latencies.len()) - 1;
        f64::from(self.latencies[index]) / 1000.0
    }

    pub(crate) fn p50_ms(&self) -> f64 {
        self.percentile_ms(0.50)
    }

    pub(crate) fn p99_ms(&self) -> f64 {
        self.percentile_ms(0.99)
    }

    pub(crate) fn mean_ms(&self) -> f64 {
        let sum: u64 = self.latencies.iter().map(|l| u64::from(*l)).sum();
        sum as f64 / self.latencies.len().max(1) as f64 / 1000.0
    }

    pub(crate) fn summary(&self) -> String {
        format!(
            "{:>9.0} req/s {:>8.1} MiB/s  p50 {:.3} ms  p99 {:.3} ms  errors {}",
            self.rps(),
            self.mib_per_sec(),
            self.p50_ms(),
            self.p99_ms(),
            self.errors
        )
    }
}

async fn connect(addr: SocketAddr) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

async fn send(
    sender: &mut SendRequest<Full<Bytes>>,
    path: &str,
    body: &Bytes,
) -> anyhow::Result<(StatusCode, Bytes)> {
    sender.ready().await?;
    let request = Request::post(path)
        .header("host", "127.0.0.1")
        .header("content-type", "application/json")
        .header("x-namespace", "default")
        .body(Full::new(body.clone()))?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let answer = response.into_body().collect().await?.to_bytes();
    Ok((status, answer))
}

/// One request on a fresh connection.
pub(crate) async fn once(
    addr: SocketAddr,
    path: &str,
    body: Bytes,
) -> anyhow::Result<(u16, Bytes)> {
    let mut sender = connect(addr).await?;
    let (status, answer) = send(&mut sender, path, &body).await?;
    Ok((status.as_u16(), answer))
}

/// `count` requests one after another on one connection.
pub(crate) async fn sequential(
    addr: SocketAddr,
    path: &'static str,
    body: Bytes,
    count: usize,
) -> anyhow::Result<Stats> {
    let mut sender = connect(addr).await?;
    let mut stats = Stats::default();
    // Warm up the connection and caches.
    for _ in 0..50 {
        send(&mut sender, path, &body).await?;
    }
    let started = Instant::now();
    for _ in 0..count {
        let t = Instant::now();
        let (status, _) = send(&mut sender, path, &body).await?;
        record(&mut stats, t, status, body.len());
    }
    Ok(stats.finish(started.elapsed()))
}

fn record(stats: &mut Stats, started: Instant, status: StatusCode, len: usize) {
    if status == StatusCode::OK {
        stats
            .latencies
            .push(u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX));
        stats.bytes += len as u64;
    } else {
        stats.errors += 1;
    }
}

impl Load {
    /// Runs the load: a one-second warm-up, then `duration` measured.
    pub(crate) async fn run(self) -> anyhow::Result<Stats> {
        let mut tasks = Vec::new();
        let warmup = Instant::now() + Duration::from_secs(1);
        let deadline = warmup + self.duration;
        for _ in 0..self.connections {
            let mut sender = connect(self.addr).await?;
            let body = self.body.clone();
            let path = self.path;
            tasks.push(tokio::spawn(async move {
                let mut stats = Stats::default();
                loop {
                    let t = Instant::now();
                    if t >= deadline {
                        break;
                    }
                    match send(&mut sender, path, &body).await {
                        Ok((status, _)) if t >= warmup => record(&mut stats, t, status, body.len()),
                        Ok(_) => {}
                        Err(_) => {
                            // The connection is gone: count it and stop this worker.
                            stats.errors += 1;
                            break;
                        }
                    }
                }
                stats
            }));
        }
        let mut total = Stats::default();
        for task in tasks {
            total.merge(task.await?);
        }
        Ok(total.finish(self.duration))
    }
}
