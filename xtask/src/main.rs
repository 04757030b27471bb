//! `cargo xtask`: project automation written in Rust, so that a fresh machine
//! needs nothing but cargo (and, for the steps that drive real Temporal
//! tools, python3 to install them from PyPI).
//!
//! Tasks:
//! - `codegen [--check]`: regenerate `crates/payload-proto/src/generated/`
//!   from `proto/`; with `--check`, fail when the committed files are stale.
//! - `vectors [--check-rust]`: regenerate the golden vectors with the real
//!   Python SDK in a local venv (`target/vectors-venv`); with
//!   `--check-rust`, make Python decode what our codecs wrote.
//! - `ci`: everything CI runs: fmt, codegen check, clippy, tests, docs,
//!   the Python check of our vectors, conformance, soak.
//! - `bench`: the Codec Server against an echo server (the transport
//!   ceiling) and a Python reference server, in one run.
//! - `conformance [storage|kms]`: the system against the real Temporal CLI,
//!   dev server, Web UI (in Chromium) and Python SDK, external storage
//!   against moto's S3 server and gcp-storage-emulator, and envelope
//!   encryption against OpenBao and moto's KMS (`storage`, `kms`: that
//!   stage alone, without the Rust SDK examples).
//! - `soak`: hostile clients against the release Codec Server, each attack
//!   with its bound on memory and time.

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod bench;
mod ci;
mod codegen;
mod conformance;
mod histories;
mod project;
mod soak;
#[cfg(test)]
mod tidy;
mod vectors;

use std::process::ExitCode;

use anyhow::bail;

const USAGE: &str = "\
usage: cargo xtask <task> [options]

tasks:
  codegen [--check]      regenerate the prost types from proto/ (--check: fail if stale)
  vectors [--check-rust] regenerate golden vectors with the real Python SDK
                         (--check-rust: have Python decode what our codecs wrote)
  ci                     fmt, codegen --check, clippy, the whole test suite, docs,
                         conformance and soak
  bench                  the Codec Server against an echo server and the Python
                         reference, in one run (writes target/bench/latest.md)
  bench-small            quick check while working: small /decode against the
                         echo only, five rounds (needs the release binaries)
  histories              re-export the real encrypted histories payloadctl tests use
  conformance [storage|kms|gcs]
                         the system against the real temporal CLI, dev server,
                         Web UI (in Chromium) and Python SDK, then external
                         storage against moto's S3, then envelope encryption
                         against OpenBao and moto's KMS (storage, kms: that
                         stage alone; gcs: our GCS driver against
                         gcp-storage-emulator, not run by default, see
                         known-failures.txt)
  soak [--binary PATH [--plain-config]]
                         hostile clients against the release Codec Server, with
                         bounds on memory and time (writes target/soak/latest.md)
";

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Vec<String>) -> anyhow::Result<()> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["codegen"] => codegen::run(codegen::Mode::Write),
        ["codegen", "--check"] => codegen::run(codegen::Mode::Check),
        ["vectors"] => vectors::generate(),
        ["vectors", "--check-rust"] => vectors::check_rust(),
        ["ci"] => ci::run(),
        ["histories"] => histories::generate(),
        ["conformance"] => conformance::run(conformance::Stages::All),
        ["conformance", "storage"] => conformance::run(conformance::Stages::Storage),
        ["conformance", "kms"] => conformance::run(conformance::Stages::Kms),
        ["conformance", "gcs"] => conformance::run(conformance::Stages::Gcs),
        ["soak", options @ ..] => soak::run(options),
        ["bench"] => bench::run(),
        ["bench-small"] => bench::bench_small(),
        // Internal: the release runner and the echo server `bench` starts.
        ["bench-run"] => bench::bench_run(),
        ["bench-echo", port] => bench::echo_server(port.parse()?),
        ["help" | "--help" | "-h"] | [] => {
            print!("{USAGE}");
            Ok(())
        }
        other => bail!("unknown task or options {other:?}\n\n{USAGE}"),
    }
}
