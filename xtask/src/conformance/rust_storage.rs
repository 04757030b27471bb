//! The official Rust SDK with external storage: the `temporal-sdk-codec`
//! example worker and starter with `--storage` on moto's bucket (our
//! `payload-storage` S3 driver inside the SDK's data converter), and their
//! references read and written by the Python SDK's S3 driver.
//!
//! A Rust worker on a task queue of its own runs `RustGreet`:
//! a. started by the Rust starter with a ~300 KB input (above the 256 KiB
//!    default threshold): the result comes back whole, the history holds
//!    references to objects in moto, and `storage.py resolve` (the Python
//!    SDK) reads the workflow result's reference: Python reads what Rust
//!    wrote;
//! b. started by the Python SDK (`storage.py start`) with a ~1 MiB input
//!    it offloads: the Rust worker resolves a Python-written reference.
//!
//! Run in a full conformance run only: the storage stage alone does not
//! build the examples.

use std::fs;
use std::time::Duration;

use anyhow::{Context, ensure};
use serde_json::Value;

use super::history::payloads_with;
use super::payloads::{BUCKET, REFERENCE_TYPE, claim_of};
use super::process::{output_within, spawn};
use super::storage::Moto;
use super::{Report, expect_all};

/// The task queue of the Rust worker with `--storage`.
const QUEUE: &str = "payloadkit-rust-storage";
const RUST_ID: &str = "conf-rust-storage";
const PYTHON_ID: &str = "conf-python-storage-to-rust";
/// `--input Ada --repeat 100000`: the result is `Hello from Rust, ` (17),
/// the input and `!`.
const REPEAT: usize = 100_000;
const RESULT_CHARS: usize = 17 + 3 * REPEAT + 1;

/// Every check, on moto as the storage stage left it (running, with the
/// bucket).
pub(super) fn all(moto: &Moto<'_>, r: &mut Report) {
    let s = moto.s;
    if !s.rust_built {
        eprintln!(
            "SKIP storage: Rust SDK with external storage (the Rust examples are built by a full `cargo xtask conformance` only)"
        );
        return;
    }
    let file = s.artifacts.join("rust-storage.toml");
    let written = fs::write(
        &file,
        format!(
            "driver = \"s3\"\nbucket = \"{BUCKET}\"\nendpoint = \"{}\"\nregion = \"us-east-1\"\n",
            moto.endpoint
        ),
    );
    if let Err(err) = written {
        return r.check("storage: Rust SDK: the storage file", Err(err.into()));
    }
    let storage = file.to_string_lossy().into_owned();
    let mut worker_cmd = s.rust_example("worker");
    worker_cmd.args([
        "--task-queue",
        QUEUE,
        "--seconds",
        "600",
        "--storage",
        &storage,
    ]);
    let worker = match spawn(
        "rust sdk worker (storage)",
        &mut worker_cmd,
        &s.artifacts.join("rust-worker-storage.log"),
    ) {
        Ok(worker) => worker,
        Err(err) => {
            return r.check(
                "storage: Rust SDK: example worker with --storage starts",
                Err(err),
            );
        }
    };
    r.check(
        "storage: Rust SDK: Rust starter (--storage, 300 KB input) runs RustGreet; Python resolves the result's reference",
        rust_writes(moto, &storage),
    );
    r.check(
        "storage: Rust SDK: the Python SDK starts RustGreet with a 1 MiB input it offloaded; the Rust worker resolves it",
        python_writes(moto),
    );
    drop(worker);
}

/// (a) The Rust starter and worker offload; the history's references point
/// at objects in moto; Python resolves the workflow result.
fn rust_writes(moto: &Moto<'_>, storage: &str) -> anyhow::Result<String> {
    let s = moto.s;
    let repeat = REPEAT.to_string();
    let out = s.rust_start(
        RUST_ID,
        "RustGreet",
        QUEUE,
        "Ada",
        &["--repeat", &repeat, "--storage", storage],
    )?;
    expect_all(
        &out,
        &[&format!(
            "result: {RESULT_CHARS} chars, beginning \"Hello from Rust, AdaAda"
        )],
        &[],
    )?;
    let raw = s.show(RUST_ID, None, &["-o", "json"])?;
    let references = payloads_with(&raw, "messageType", REFERENCE_TYPE);
    ensure!(
        references.len() >= 4,
        "{} reference payloads in the history (want the workflow input, the activity's input and result, the workflow result); it begins: {}",
        references.len(),
        raw.chars().take(1500).collect::<String>()
    );
    for reference in &references {
        moto.check_stored(&claim_of(reference)?)?;
    }
    ensure!(
        raw.len() < 256 * 1024,
        "the history has {} bytes: a 300 KB value is inline",
        raw.len()
    );
    let result = references.last().context("no reference")?;
    let resolved = resolve(moto, result)?;
    let expected = format!("Hello from Rust, {}!", "Ada".repeat(REPEAT));
    ensure!(
        resolved == serde_json::to_string(&expected)?,
        "storage.py resolve printed {} characters beginning {:?}, not the result",
        resolved.len(),
        resolved.chars().take(60).collect::<String>()
    );
    Ok(format!(
        "{} references to objects in moto, history {} bytes; Python printed the {RESULT_CHARS}-char result",
        references.len(),
        raw.len()
    ))
}

/// `storage.py resolve` on one reference: the line it printed.
fn resolve(moto: &Moto<'_>, reference: &Value) -> anyhow::Result<String> {
    let file = moto.s.artifacts.join("rust-storage-result-reference.json");
    fs::write(&file, serde_json::to_vec(reference)?)?;
    let shown = moto.py("resolve", &["--file", &file.to_string_lossy()])?;
    shown
        .lines()
        .find(|line| line.starts_with('"'))
        .map(str::to_owned)
        .with_context(|| {
            format!(
                "storage.py resolve printed no value: {}",
                shown.chars().take(500).collect::<String>()
            )
        })
}

/// (b) The Python SDK offloads the input and waits for the Rust worker's
/// result; the history's input is a reference.
fn python_writes(moto: &Moto<'_>) -> anyhow::Result<String> {
    let s = moto.s;
    let mut cmd = std::process::Command::new(&s.python);
    cmd.arg(s.workflows.with_file_name("storage.py")).args([
        "start",
        "--endpoint",
        &moto.endpoint,
        "--address",
        &s.address,
        "--workflow-id",
        PYTHON_ID,
        "--workflow-type",
        "RustGreet",
        "--task-queue",
        QUEUE,
    ]);
    let log = s.artifacts.join("storage-start.log");
    let (ok, shown) = output_within(&mut cmd, Duration::from_secs(150), &log)?;
    ensure!(ok, "storage.py start failed: {shown}");
    expect_all(
        &shown,
        &["result: ", "begins 'Hello from Rust, payloadkit-large-"],
        &[],
    )?;
    let raw = s.show(PYTHON_ID, None, &["-o", "json"])?;
    let references = payloads_with(&raw, "messageType", REFERENCE_TYPE);
    ensure!(
        references.len() >= 4,
        "{} reference payloads in the history (want the input, the activity's input and result, the result)",
        references.len()
    );
    let input = claim_of(references.first().context("no reference")?)?;
    ensure!(
        moto.object_size(&input.key)? == Some(input.size),
        "the input's object {} is not in moto with size {}",
        input.key,
        input.size
    );
    let line = shown
        .lines()
        .find(|line| line.starts_with("result: "))
        .unwrap_or_default();
    Ok(format!(
        "{line}; {} references, the input's at {}",
        references.len(),
        input.key
    ))
}
