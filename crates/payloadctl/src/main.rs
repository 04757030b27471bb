//! `payloadctl`: the operator's command line for Temporal payloads. Keys,
//! encode and decode, exported histories, inspection, Codec Server probes.
//! See `cli.rs` for the commands and `docs/payloadctl.md` for a guide.

#![allow(clippy::print_stderr)]

mod batches;
mod cli;
mod codecs;
mod commands;
mod document;
mod failures;
mod input;
mod output;
mod payloads;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match commands::run(cli) {
        Ok(outcome) => outcome.exit_code(),
        Err(err) if output::is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!(
                "payloadctl: error: {}",
                payload_converter::error_text(err.as_ref())
            );
            ExitCode::from(2)
        }
    }
}
