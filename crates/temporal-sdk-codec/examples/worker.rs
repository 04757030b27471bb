//! A Temporal worker on the official Rust SDK whose payloads payloadkit
//! encrypts: it runs the `RustGreet` workflow and its activity.
//!
//! ```sh
//! temporal server start-dev &
//! cargo run -p codec-server &          # creates .payloadkit/dev-keyring.toml
//! cargo run -p temporal-sdk-codec --example worker -- \
//!     --keyring .payloadkit/dev-keyring.toml [--zstd] [--task-queue payloadkit-rust]
//! ```
//!
//! Runs until Ctrl-C, or for `--seconds N`.

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod greet;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use temporalio_sdk::{Runtime, Worker, WorkerOptions};

use greet::{Greetings, RustGreet};

/// Runs the `RustGreet` workflow and its activity, with payloadkit's codec.
#[derive(Debug, Parser)]
struct Args {
    #[command(flatten)]
    connect: greet::Connect,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    seconds: Option<u64>,
}

#[tokio::main]
async fn main() -> ExitCode {
    greet::exit_code("worker", run(Args::parse()).await)
}

async fn run(args: Args) -> anyhow::Result<()> {
    let runtime =
        Runtime::from_current_tokio(Default::default()).context("starting the SDK runtime")?;
    let client = args.connect.client().await?;
    let options = WorkerOptions::new(args.connect.task_queue.as_str())
        .register_workflow::<RustGreet>()
        .context("registering the workflow")?
        .register_activities(Greetings)
        .build();
    let mut worker = Worker::new(&runtime, client, options).context("creating the worker")?;

    let shutdown = worker.shutdown_handle();
    let seconds = args.seconds;
    tokio::spawn(async move {
        match seconds {
            Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        shutdown();
    });

    println!(
        "worker: polling task queue `{}` on {}",
        args.connect.task_queue, args.connect.address
    );
    worker.run().await.context("running the worker")?;
    println!("worker: stopped");
    Ok(())
}
