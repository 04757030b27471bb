//! `cargo xtask soak`: the attacks of the adversarial review (issue 17)
//! against the release `codec-server` on 127.0.0.1, each with its bound.
//!
//! While each attack runs, a prober asks `/healthz` on a new connection
//! every 50 ms (as a load balancer would) and must be answered within
//! [`HEALTH_BOUND`]; the server's peak resident memory during the attack
//! (reset before each through `/proc/<pid>/clear_refs`) must stay below
//! [`RSS_BOUND`]; every loop is bounded. The report goes to stdout and
//! `target/soak/latest.md`; any attack the server did not hold up under
//! fails the task.
//!
//! `--binary PATH` attacks another build (for instance the one before a
//! fix) instead of building the release binary; `--plain-config` gives it
//! a configuration without the limit keys an older build does not know.

mod attacks;
mod client;
mod h2;
mod server;

use std::fmt::Write as _;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};

use self::server::Server;
use crate::project;

/// Peak resident memory of the server allowed during any attack.
const RSS_BOUND: u64 = 256 * 1024 * 1024;
/// Slowest `/healthz` allowed during any attack.
const HEALTH_BOUND: Duration = Duration::from_secs(1);
/// Most the log may grow during the log flood.
const LOG_BOUND: u64 = 1024 * 1024;
/// Longest an attack may run before it counts as failed.
const ATTACK_LIMIT: Duration = Duration::from_secs(120);

/// What an attack measured, and whether the server held up.
pub(crate) struct Outcome {
    pub(crate) measured: String,
    pub(crate) held: bool,
}

/// The timeouts of the configuration the soak runs with.
pub(crate) struct Settings {
    pub(crate) header_read_timeout: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) shutdown_grace: Duration,
}

/// A line of the report.
struct Row {
    attack: &'static str,
    measured: String,
    peak_mib: u64,
    health: String,
    passed: bool,
    /// Passed on every count but the memory bound.
    held_but_for_memory: bool,
}

/// The options of `cargo xtask soak`.
struct Options {
    binary: Option<PathBuf>,
    plain_config: bool,
}

pub(crate) fn run(args: &[&str]) -> anyhow::Result<()> {
    let mut options = Options {
        binary: None,
        plain_config: false,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match *arg {
            "--binary" => {
                let path = args.next().context("--binary needs a path")?;
                options.binary = Some(PathBuf::from(path));
            }
            "--plain-config" => options.plain_config = true,
            other => bail!("soak: unknown option {other}; use --binary PATH [--plain-config]"),
        }
    }
    let root = project::root();
    let binary = match options.binary.clone() {
        Some(binary) => binary,
        None => {
            project::run(project::cargo().args([
                "build",
                "--release",
                "--locked",
                "-p",
                "codec-server",
            ]))?;
            root.join("target/release/codec-server")
        }
    };
    let dir = root.join("target/soak");
    std::fs::create_dir_all(&dir)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let rows = runtime.block_on(attack_all(&binary, &dir, &options))?;
    report(&rows, &binary, &dir)
}

/// Sixteen zeros-bombs and the soak's configuration, then every attack.
async fn attack_all(binary: &Path, dir: &Path, options: &Options) -> anyhow::Result<Vec<Row>> {
    const MIB: usize = 1024 * 1024;
    let zstd = tokio::task::spawn_blocking(|| client::zstd_bomb(60 * MIB)).await??;
    let zlib = tokio::task::spawn_blocking(|| client::zlib_bomb(60 * MIB)).await??;
    let settings = Settings {
        header_read_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(5),
        shutdown_grace: Duration::from_secs(3),
    };
    let keyring = write_keyring(dir)?;
    let config = write_config(dir, &keyring, options.plain_config, "")?;
    let mut server = Server::start(binary, &config, &dir.join("codec-server.log"))?;
    let addr = server.addr;
    let mut rows = Vec::new();
    rows.push(
        phase(
            &server,
            "zstd bombs",
            attacks::bombs(addr, "binary/zstd", &zstd),
        )
        .await,
    );
    rows.push(
        phase(
            &server,
            "zlib bombs",
            attacks::bombs(addr, "binary/zlib", &zlib),
        )
        .await,
    );
    rows.push(
        phase(
            &server,
            "64 × 16 MiB, chunked",
            attacks::many_large(addr, true),
        )
        .await,
    );
    rows.push(
        phase(
            &server,
            "64 × 16 MiB, with length",
            attacks::many_large(addr, false),
        )
        .await,
    );
    rows.push(
        phase(
            &server,
            "partial headers",
            attacks::partial_headers(addr, &settings),
        )
        .await,
    );
    rows.push(
        phase(
            &server,
            "slow bodies",
            attacks::slow_bodies(addr, &settings),
        )
        .await,
    );
    let fds = fd_limit();
    let idle = attacks::idle_sockets(addr, fds, || server.open_fds());
    rows.push(phase(&server, "idle sockets", idle).await);
    let log_before = server.log_bytes();
    let mut flood = phase(&server, "log flood", async {
        attacks::log_flood(addr).await.map(|(outcome, _)| outcome)
    })
    .await;
    let grown = server.log_bytes().saturating_sub(log_before);
    let _ = write!(flood.measured, "; the log grew by {} KB", grown / 1000);
    flood.passed &= grown < LOG_BOUND;
    rows.push(flood);
    rows.push(
        phase(
            &server,
            "early refusals, kept alive",
            attacks::early_refusals(addr),
        )
        .await,
    );
    rows.push(phase(&server, "HTTP/2 rapid reset", h2::rapid_reset(addr)).await);
    let flood = h2::stream_flood(addr, settings.request_timeout);
    rows.push(phase(&server, "HTTP/2 stream flood", flood).await);
    let log = server.log_text();
    if log.contains("Too many open files") {
        rows.push(Row {
            attack: "file descriptors",
            measured: "the server ran out of file descriptors".to_owned(),
            peak_mib: 0,
            health: String::new(),
            passed: false,
            held_but_for_memory: false,
        });
    }
    let sigterm = attacks::half_sent_at_sigterm(&mut server, &settings);
    rows.push(phase_without_probe(sigterm).await);

    // Work that would outlast its deadline needs more memory than the
    // defaults allow: a server of its own.
    let roomy = "max_decoded_bytes = 4294967296\nmax_in_flight_bytes = 4294967296\n\
                 request_timeout_secs = 1\n";
    let config = write_config(dir, &keyring, options.plain_config, roomy)?;
    let server = Server::start(binary, &config, &dir.join("codec-server-roomy.log"))?;
    let deadline = attacks::work_past_the_deadline(server.addr, &zlib, || server.rss());
    let mut row = phase(&server, "work past the deadline", deadline).await;
    // This server may hold 4 GiB: its peak is reported, not bounded.
    row.passed |= row.held_but_for_memory;
    row.measured
        .push_str(" (peak not bounded: this server may hold 4 GiB)");
    rows.push(row);
    Ok(rows)
}

/// Runs `attack` against `server` with the prober and the memory bound.
async fn phase(
    server: &Server,
    attack: &'static str,
    work: impl Future<Output = anyhow::Result<Outcome>>,
) -> Row {
    eprintln!("soak: {attack}");
    server.reset_peak();
    let prober = client::Prober::start(server.addr);
    let outcome = tokio::time::timeout(ATTACK_LIMIT, work).await;
    let health = prober.finish().await;
    let peak = server.peak_rss();
    let (measured, held) = match outcome {
        Ok(Ok(outcome)) => (outcome.measured, outcome.held),
        Ok(Err(err)) => (format!("error: {err:#}"), false),
        Err(_) => (
            format!("did not end within {} s", ATTACK_LIMIT.as_secs()),
            false,
        ),
    };
    Row {
        attack,
        measured,
        peak_mib: peak / (1024 * 1024),
        health: format!(
            "≤ {:.0} ms{}",
            health.slowest.as_secs_f64() * 1000.0,
            if health.failures > 0 {
                format!(", {} failed", health.failures)
            } else {
                String::new()
            }
        ),
        passed: held && peak < RSS_BOUND && health.slowest < HEALTH_BOUND && health.failures == 0,
        held_but_for_memory: held && health.slowest < HEALTH_BOUND && health.failures == 0,
    }
}

/// Runs the SIGTERM attack, which ends the server (no prober).
async fn phase_without_probe(work: impl Future<Output = anyhow::Result<Outcome>>) -> Row {
    eprintln!("soak: SIGTERM with a request half sent");
    let (measured, passed) = match work.await {
        Ok(outcome) => (outcome.measured, outcome.held),
        Err(err) => (format!("error: {err:#}"), false),
    };
    Row {
        attack: "SIGTERM, request half sent",
        measured,
        peak_mib: 0,
        health: String::new(),
        passed,
        held_but_for_memory: passed,
    }
}

/// The open-file limit of this process (the clients' side).
fn fd_limit() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("Max open files"))?;
            line.split_whitespace().nth(3)?.parse().ok()
        })
        .unwrap_or(1024)
}

fn write_keyring(dir: &Path) -> anyhow::Result<PathBuf> {
    use base64::Engine as _;
    let key = base64::engine::general_purpose::STANDARD.encode(b"soak-key-soak-key-soak-key-soak!");
    let path = dir.join("keyring.toml");
    std::fs::write(
        &path,
        format!("active = \"soak\"\n[[keys]]\nid = \"soak\"\nbase64 = \"{key}\"\n"),
    )?;
    Ok(path)
}

/// The soak's configuration: short timeouts so that attacks end quickly,
/// every codec, a namespace that needs a token; `extra` lines for
/// `[server]`. Plain: without the keys older builds do not know, on a free
/// port (they cannot report the port they were given).
fn write_config(dir: &Path, keyring: &Path, plain: bool, extra: &str) -> anyhow::Result<PathBuf> {
    let listen = if plain {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        format!("127.0.0.1:{port}")
    } else {
        "127.0.0.1:0".to_owned()
    };
    let limits = if plain {
        String::new()
    } else {
        format!(
            "header_read_timeout_secs = 2\nidle_timeout_secs = 5\nshutdown_grace_secs = 3\n{}",
            if extra.contains("request_timeout_secs") {
                ""
            } else {
                "request_timeout_secs = 5\n"
            }
        )
    };
    let extra = if plain { "" } else { extra };
    // The locked namespace's token is `soak` (the soak never sends it).
    let token: String = ring::digest::digest(&ring::digest::SHA256, b"soak")
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let text = format!(
        "[server]\nlisten = \"{listen}\"\n{limits}{extra}\n\
         [default]\nkeyring = \"{keyring}\"\nchain = [\"encrypt\", \"zstd\", \"zlib\"]\n\n\
         [namespaces.locked]\nkeyring = \"{keyring}\"\n\
         auth = {{ mode = \"bearer\", token_sha256 = [\"{token}\"] }}\n",
        keyring = keyring.display()
    );
    let name = if extra.is_empty() {
        "codec-server.toml"
    } else {
        "codec-server-roomy.toml"
    };
    let path = dir.join(name);
    std::fs::write(&path, text)?;
    Ok(path)
}

fn report(rows: &[Row], binary: &Path, dir: &Path) -> anyhow::Result<()> {
    let mut text = format!(
        "# cargo xtask soak\n\n`{}`; bounds: peak RSS < {} MiB and `/healthz` < {} ms during \
         every attack, the log growing < {} KB under the log flood.\n\n\
         | attack | what happened | peak RSS MiB | `/healthz` | held |\n\
         | --- | --- | ---: | --- | --- |\n",
        binary.display(),
        RSS_BOUND / 1024 / 1024,
        HEALTH_BOUND.as_millis(),
        LOG_BOUND / 1000
    );
    for row in rows {
        let _ = writeln!(
            text,
            "| {} | {} | {} | {} | {} |",
            row.attack,
            row.measured,
            row.peak_mib,
            row.health,
            if row.passed { "yes" } else { "**no**" }
        );
    }
    print!("{text}");
    std::fs::write(dir.join("latest.md"), &text)?;
    let failed: Vec<&str> = rows
        .iter()
        .filter(|r| !r.passed)
        .map(|r| r.attack)
        .collect();
    if !failed.is_empty() {
        bail!("the server did not hold up under: {}", failed.join(", "));
    }
    Ok(())
}
