//! One module per subcommand, each with its arguments and a
//! `run(args) -> anyhow::Result<Outcome>`.

pub(crate) mod check_references;
pub(crate) mod decode;
pub(crate) mod decode_history;
pub(crate) mod encode;
pub(crate) mod inspect;
pub(crate) mod keys;
pub(crate) mod probe;
pub(crate) mod probe_kek;

use std::process::ExitCode;

use crate::cli::{Cli, Command};

/// How a command that ran ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Everything worked: exit 0.
    Ok,
    /// It ran, but a check failed or some payloads could not be decoded:
    /// exit 1.
    Failed,
}

impl Outcome {
    /// The process exit code.
    pub(crate) fn exit_code(self) -> ExitCode {
        match self {
            Outcome::Ok => ExitCode::SUCCESS,
            Outcome::Failed => ExitCode::from(1),
        }
    }

    /// `Failed` when `failed` is true.
    pub(crate) fn failed_if(failed: bool) -> Self {
        if failed { Outcome::Failed } else { Outcome::Ok }
    }
}

/// Runs the command the user asked for.
pub(crate) fn run(cli: Cli) -> anyhow::Result<Outcome> {
    match cli.command {
        Command::Keys(args) => keys::run(args),
        Command::Encode(args) => encode::run(args),
        Command::Decode(args) => decode::run(args),
        Command::DecodeHistory(args) => decode_history::run(args),
        Command::Inspect(args) => inspect::run(args),
        Command::Probe(args) => probe::run(args),
        Command::ProbeKek(args) => probe_kek::run(args),
        Command::CheckReferences(args) => check_references::run(args),
    }
}

/// A runtime for the async codecs and HTTP clients.
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    use anyhow::Context as _;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}
