//! `cargo xtask bench`: the Codec Server against the transport ceiling and
//! the Python reference, in one run on loopback.
//!
//! `cargo xtask bench` builds release binaries, runs the criterion in-process
//! decode bench (`crates/codec-server/benches/decode.rs`), then starts the
//! release `xtask bench-run`, which runs every server as its own process:
//! (1) our `codec-server`, (2) `xtask bench-echo`, a minimal hyper server
//! that only echoes the body (the transport ceiling), (3) the Python aiohttp
//! reference with the `cryptography` AES-GCM codec. A hyper load client in
//! the runner measures requests/s and latency; peak RSS comes from
//! `/proc/<pid>/status`. Then the external storage case ([`download`]):
//! `/download` from S3 (moto) against a direct fetch and decode. Results are
//! printed and written to `target/bench/latest.md`. With
//! `BENCH_ONLY=download`, only that case runs (no criterion), written to
//! `target/bench/download.md`. Last, envelope encryption ([`kms`]): small
//! `/decode` with a warm data key cache against the keyring codec, and the
//! KEK calls of a cold cache (`BENCH_ONLY=kms`: `target/bench/kms.md`).

mod download;
mod echo;
mod kms;
mod load;

use std::fmt::Write as _;
use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;

pub(crate) use self::echo::serve as echo_server;
use self::load::{Load, Stats};
use crate::project;

/// Entry point of `cargo xtask bench` (a debug build): build, run criterion,
/// hand over to the release runner.
pub(crate) fn run() -> anyhow::Result<()> {
    let root = project::root();
    project::run(project::cargo().args([
        "build",
        "--release",
        "--quiet",
        "-p",
        "codec-server",
        "-p",
        "xtask",
        "--bins",
    ]))?;
    project::venv("bench-venv", "xtask/bench/requirements.txt")?;
    if only_download() || only_kms() {
        return project::run(Command::new(root.join("target/release/xtask")).arg("bench-run"));
    }
    project::run(project::cargo().args([
        "bench",
        "--quiet",
        "-p",
        "codec-server",
        "--bench",
        "decode",
        "--",
        "--noplot",
    ]))?;
    project::run(Command::new(root.join("target/release/xtask")).arg("bench-run"))
}

/// `BENCH_ONLY=download`: only the external storage case.
fn only_download() -> bool {
    std::env::var("BENCH_ONLY").is_ok_and(|v| v == "download")
}

/// `BENCH_ONLY=kms`: only the envelope encryption case.
fn only_kms() -> bool {
    std::env::var("BENCH_ONLY").is_ok_and(|v| v == "kms")
}

/// A server process, killed on drop.
struct Server {
    name: &'static str,
    child: Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(name: &'static str, cmd: &mut Command, port: u16, log: &Path) -> anyhow::Result<Self> {
        let out = fs::File::create(log)?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let server = Self {
            name,
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(server.addr).is_err() {
            if Instant::now() > deadline {
                bail!("{name} did not start; see {}", log.display());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(server)
    }

    /// Peak resident memory (VmHWM) in bytes.
    fn peak_rss(&self) -> u64 {
        let status =
            fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The criterion mean time per iteration, in seconds, of `decode/<name>`.
fn criterion_mean(root: &Path, name: &str) -> anyhow::Result<f64> {
    let path = root.join(format!("target/criterion/decode/{name}/new/estimates.json"));
    let text = fs::read_to_string(&path)
        .with_context(|| format!("reading {} (run `cargo xtask bench`)", path.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text)?;
    value["mean"]["point_estimate"]
        .as_f64()
        .map(|ns| ns / 1e9)
        .with_context(|| format!("no mean in {}", path.display()))
}

/// The release runner (`xtask bench-run`).
pub(crate) fn bench_run() -> anyhow::Result<()> {
    let root = project::root();
    let dir = root.join("target/bench");
    let keyring = bench_keyring(&root)?;
    let runtime = client_runtime()?;
    if only_download() {
        let report = runtime.block_on(download::measure(&root, &keyring))?;
        return write_report(&dir.join("download.md"), &report);
    }
    if only_kms() {
        let report = runtime.block_on(kms::measure(&root, &keyring))?;
        return write_report(&dir.join("kms.md"), &report);
    }

    let ours = start_ours(&root, &keyring)?;
    let before = start_before(&root, &keyring)?;
    let echo = start_echo(&root)?;
    let py_port = free_port()?;
    let python = Server::start(
        "python-aiohttp",
        Command::new(root.join("target/bench-venv/bin/python"))
            .arg(root.join("xtask/bench/reference_server.py"))
            .args(["--port", &py_port.to_string()]),
        py_port,
        &dir.join("python.log"),
    )?;

    let mut report = runtime.block_on(measure(&root, &ours, before.as_ref(), &echo, &python))?;
    // The other servers stop before the external storage case.
    drop((ours, before, echo, python));
    report.push_str(&runtime.block_on(download::measure(&root, &keyring))?);
    report.push_str(&runtime.block_on(kms::measure(&root, &keyring))?);
    write_report(&dir.join("latest.md"), &report)
}

fn write_report(path: &Path, report: &str) -> anyhow::Result<()> {
    println!("{report}");
    fs::write(path, report)?;
    eprintln!("written to {}", path.display());
    Ok(())
}

/// The load client's runtime: two threads, like the servers'.
fn client_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// The bench keyring, written under `target/bench`.
fn bench_keyring(root: &Path) -> anyhow::Result<std::path::PathBuf> {
    let dir = root.join("target/bench");
    fs::create_dir_all(&dir)?;
    let keyring = dir.join("keyring.toml");
    fs::write(
        &keyring,
        "active = \"test-key-id\"\n[[keys]]\nid = \"test-key-id\"\nbase64 = \"dGVzdC1rZXktdGVzdC1rZXktdGVzdC1rZXktdGVzdCE=\"\n",
    )?;
    Ok(keyring)
}

fn start_ours(root: &Path, keyring: &Path) -> anyhow::Result<Server> {
    start_codec_server(
        "codec-server",
        &root.join("target/release/codec-server"),
        root,
        keyring,
    )
}

/// With `BENCH_BEFORE` set to another build of `codec-server` (the one
/// before a change), that build too, measured in the same run.
fn start_before(root: &Path, keyring: &Path) -> anyhow::Result<Option<Server>> {
    match std::env::var_os("BENCH_BEFORE") {
        Some(binary) => Ok(Some(start_codec_server(
            "codec-server (before)",
            Path::new(&binary),
            root,
            keyring,
        )?)),
        None => Ok(None),
    }
}

fn start_codec_server(
    name: &'static str,
    binary: &Path,
    root: &Path,
    keyring: &Path,
) -> anyhow::Result<Server> {
    let ours_port = free_port()?;
    let log = root.join(format!(
        "target/bench/{}.log",
        name.replace([' ', '(', ')'], "")
    ));
    Server::start(
        name,
        Command::new(binary)
            .args(["--listen", &format!("127.0.0.1:{ours_port}"), "--keyring"])
            .arg(keyring)
            .env(
                "CODEC_SERVER_MAX_BODY_BYTES",
                (64 * 1024 * 1024).to_string(),
            )
            .env(
                "CODEC_SERVER_LOG",
                std::env::var("BENCH_SERVER_LOG").unwrap_or_else(|_| "info".to_owned()),
            ),
        ours_port,
        &log,
    )
}

fn start_echo(root: &Path) -> anyhow::Result<Server> {
    let echo_port = free_port()?;
    Server::start(
        "echo",
        Command::new(root.join("target/release/xtask"))
            .args(["bench-echo", &echo_port.to_string()]),
        echo_port,
        &root.join("target/bench/echo.log"),
    )
}

/// `xtask bench-small` (a quick check while working, not the bench): the
/// small and the 50 × 1 KiB /decode cases, our server and the echo (and
/// `BENCH_BEFORE`, if set) in turns, five rounds of 3 s each; prints each
/// round's ratios and the medians.
pub(crate) fn bench_small() -> anyhow::Result<()> {
    let root = project::root();
    let keyring = bench_keyring(&root)?;
    let runtime = client_runtime()?;
    let ours = start_ours(&root, &keyring)?;
    let before = start_before(&root, &keyring)?;
    let echo = start_echo(&root)?;
    runtime.block_on(async {
        let cases = [
            ("1 small payload", encrypted_body(&ours, 1, 16).await?, 32),
            ("50 x 1 KiB", encrypted_body(&ours, 50, 1024).await?, 16),
        ];
        for (name, body, connections) in cases {
            let servers = [Some(&echo), Some(&ours), before.as_ref()];
            let mut ratios = [Vec::new(), Vec::new()];
            for round in 1..=5 {
                let mut rps = [0.0; 3];
                for (i, server) in servers.into_iter().enumerate() {
                    let Some(server) = server else { continue };
                    rps[i] = Load {
                        addr: server.addr,
                        path: "/decode",
                        body: body.clone(),
                        connections,
                        duration: Duration::from_secs(3),
                    }
                    .run()
                    .await?
                    .rps();
                }
                eprintln!(
                    "{name}, round {round}: echo {:.0}/s, codec-server {:.0}/s ({:.1}%), before \
                     {:.0}/s ({:.1}%)",
                    rps[0],
                    rps[1],
                    rps[1] / rps[0] * 100.0,
                    rps[2],
                    rps[2] / rps[0] * 100.0
                );
                ratios[0].push(rps[1] / rps[0]);
                ratios[1].push(rps[2] / rps[0]);
            }
            for ratios in &mut ratios {
                ratios.sort_by(f64::total_cmp);
            }
            println!(
                "{name}: median {:.1}% of the echo{}",
                ratios[0][2] * 100.0,
                if before.is_some() {
                    format!(", before {:.1}%", ratios[1][2] * 100.0)
                } else {
                    String::new()
                }
            );
        }
        anyhow::Ok(())
    })
}

/// The request bodies, encrypted by our server with the samples' format.
struct Bodies {
    small: Bytes,
    batch: Bytes,
    large: Bytes,
}

async fn encrypted_body(server: &Server, payloads: usize, size: usize) -> anyhow::Result<Bytes> {
    use base64::Engine as _;
    let data: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
    let encoded = base64::engine::general_purpose::STANDARD.encode(&data);
    let one = format!(r#"{{"metadata":{{"encoding":"YmluYXJ5L3BsYWlu"}},"data":"{encoded}"}}"#);
    let body = format!(r#"{{"payloads":[{}]}}"#, vec![one; payloads].join(","));
    let (status, answer) = load::once(server.addr, "/encode", Bytes::from(body)).await?;
    if status != 200 {
        bail!(
            "encoding the bench bodies failed: {status} {}",
            String::from_utf8_lossy(&answer)
        );
    }
    Ok(answer)
}

struct Row {
    body: &'static str,
    server: &'static str,
    stats: Stats,
}

async fn measure(
    root: &Path,
    ours: &Server,
    before: Option<&Server>,
    echo: &Server,
    python: &Server,
) -> anyhow::Result<String> {
    let bodies = Bodies {
        small: encrypted_body(ours, 1, 16).await?,
        batch: encrypted_body(ours, 50, 1024).await?,
        large: encrypted_body(ours, 1, 2 * 1024 * 1024).await?,
    };
    // Each server must decode (or echo) correctly before it is timed.
    for server in [ours, python] {
        let (status, answer) = load::once(server.addr, "/decode", bodies.small.clone()).await?;
        if status != 200 || !String::from_utf8_lossy(&answer).contains("YWJjZGVmZ2hpamtsbW5vcA") {
            bail!(
                "{} did not decode the small body: {status} {}",
                server.name,
                String::from_utf8_lossy(&answer)
            );
        }
    }

    let cases: [(&str, &Bytes, usize); 3] = [
        ("1 small payload", &bodies.small, 32),
        ("50 x 1 KiB", &bodies.batch, 16),
        ("1 x 2 MiB", &bodies.large, 4),
    ];
    let mut rows = Vec::new();
    let servers: Vec<&Server> = [Some(echo), Some(ours), before, Some(python)]
        .into_iter()
        .flatten()
        .collect();
    for (name, body, connections) in cases {
        for server in servers.iter().copied() {
            let stats = Load {
                addr: server.addr,
                path: "/decode",
                body: body.clone(),
                connections,
                duration: Duration::from_secs(5),
            }
            .run()
            .await?;
            eprintln!("{name:>16} {:>15}: {}", server.name, stats.summary());
            rows.push(Row {
                body: name,
                server: server.name,
                stats,
            });
        }
    }
    // What a person waits for: one connection, 1,000 small decodes in a row.
    let mut sequential = Vec::new();
    for server in servers.iter().copied() {
        let stats = load::sequential(server.addr, "/decode", bodies.small.clone(), 1000).await?;
        eprintln!(
            "{:>16} {:>15}: {}",
            "sequential",
            server.name,
            stats.summary()
        );
        sequential.push((server.name, stats));
    }
    let in_process_2mib = (2.0 * 1024.0 * 1024.0) / criterion_mean(root, "2mib")?;
    // Peak RSS under the sustained loads, before the one-off 16 MiB request.
    let rss = [ours.peak_rss(), echo.peak_rss(), python.peak_rss()];
    if let Some(before) = before {
        eprintln!(
            "peak RSS of codec-server (before): {:.1} MiB",
            before.peak_rss() as f64 / 1048576.0
        );
    }
    // No request refused up to 16 MiB: encode one, then decode it.
    let huge = encrypted_body(ours, 1, 16 * 1024 * 1024).await?;
    let (huge_status, _) = load::once(ours.addr, "/decode", huge).await?;
    Ok(report(
        &rows,
        &sequential,
        in_process_2mib,
        huge_status,
        [ours, echo, python],
        rss,
    ))
}

fn find<'a>(rows: &'a [Row], body: &str, server: &str) -> &'a Stats {
    &rows
        .iter()
        .find(|r| r.body == body && r.server == server)
        .expect("every case was measured")
        .stats
}

fn report(
    rows: &[Row],
    sequential: &[(&str, Stats)],
    in_process: f64,
    huge_status: u16,
    servers: [&Server; 3],
    rss: [u64; 3],
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| body | server | requests/s | MiB/s | p50 ms | p99 ms | errors |"
    );
    let _ = writeln!(out, "| --- | --- | ---: | ---: | ---: | ---: | ---: |");
    for row in rows {
        let s = &row.stats;
        let _ = writeln!(
            out,
            "| {} | {} | {:.0} | {:.1} | {:.3} | {:.3} | {} |",
            row.body,
            row.server,
            s.rps(),
            s.mib_per_sec(),
            s.p50_ms(),
            s.p99_ms(),
            s.errors
        );
    }
    let _ = writeln!(
        out,
        "\n| sequential, 1 connection, 1000 small /decode | mean ms | p99 ms |"
    );
    let _ = writeln!(out, "| --- | ---: | ---: |");
    for (name, s) in sequential {
        let _ = writeln!(out, "| {name} | {:.3} | {:.3} |", s.mean_ms(), s.p99_ms());
    }
    let _ = writeln!(
        out,
        "\n| server | peak RSS under the loads above, MiB |\n| --- | ---: |"
    );
    for (server, rss) in servers.iter().zip(rss) {
        let _ = writeln!(out, "| {} | {:.1} |", server.name, rss as f64 / 1048576.0);
    }
    let small = "1 small payload";
    let large = "1 x 2 MiB";
    let ours_small = find(rows, small, "codec-server").rps();
    let echo_small = find(rows, small, "echo").rps();
    let py_small = find(rows, small, "python-aiohttp").rps();
    let ours_large = find(rows, large, "codec-server").mib_per_sec() * 1048576.0;
    let rss = rss[0] as f64 / 1048576.0;
    let seq_ours = sequential
        .iter()
        .find(|(n, _)| *n == "codec-server")
        .map_or(0.0, |(_, s)| s.mean_ms());
    let seq_echo = sequential
        .iter()
        .find(|(n, _)| *n == "echo")
        .map_or(0.0, |(_, s)| s.mean_ms());
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    let _ = writeln!(
        out,
        "\n| target | measured | verdict |\n| --- | --- | --- |"
    );
    let r1 = ours_small / echo_small;
    let _ = writeln!(
        out,
        "| small /decode ≥ 80% of echo requests/s | {:.0}% | {} |",
        r1 * 100.0,
        verdict(r1 >= 0.8)
    );
    let r2 = ours_small / py_small;
    let _ = writeln!(
        out,
        "| small /decode ≥ 15× Python | {r2:.1}× | {} |",
        verdict(r2 >= 15.0)
    );
    let r3 = ours_large / in_process;
    let _ = writeln!(
        out,
        "| 2 MiB /decode ≥ 50% of in-process ({:.0} MiB/s) | {:.0}% | {} |",
        in_process / 1048576.0,
        r3 * 100.0,
        verdict(r3 >= 0.5)
    );
    let _ = writeln!(
        out,
        "| peak RSS under sustained load < 30 MB | {rss:.1} MiB | {} |",
        verdict(rss * 1.048576 < 30.0)
    );
    let _ = writeln!(
        out,
        "| 16 MiB /decode answered | HTTP {huge_status} | {} |",
        verdict(huge_status == 200)
    );
    let _ = writeln!(
        out,
        "| sequential mean latency vs echo | {seq_ours:.3} ms vs {seq_echo:.3} ms ({:.2}×) | info |",
        seq_ours / seq_echo.max(1e-9)
    );
    out
}
