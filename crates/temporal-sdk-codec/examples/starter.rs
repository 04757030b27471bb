//! Starts a workflow through a Temporal client on the official Rust SDK
//! with payloadkit's codec, waits for it and prints its result: its input
//! goes to the server encrypted, its result comes back encrypted and is
//! decrypted here.
//!
//! ```sh
//! cargo run -p temporal-sdk-codec --example starter -- \
//!     --keyring .payloadkit/dev-keyring.toml --workflow-id greet-1 --input Ada
//! ```
//!
//! `RustGreet` (the default) is started typed, for the example worker. Any
//! other `--workflow-type` is started by name with one string argument and
//! a string result, e.g. `--workflow-type Greet --task-queue …` for a Python
//! worker that uses the samples' encryption codec with the same key.

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod greet;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Parser;
use temporalio_client::{
    Client, NamespacedClient as _, WorkflowGetResultOptions, WorkflowStartOptions,
};
use temporalio_common::UntypedWorkflow;
use temporalio_common::data_converters::{
    GenericPayloadConverter as _, RawValue, SerializationContext, SerializationContextData,
};

use greet::RustGreet;

/// Starts a workflow with an encrypted input and prints its decrypted result.
#[derive(Debug, Parser)]
struct Args {
    #[command(flatten)]
    connect: greet::Connect,
    /// The workflow id.
    #[arg(long, default_value = "payloadkit-rust-greet")]
    workflow_id: String,
    /// The workflow type: `RustGreet` (this crate's worker) or another
    /// workflow taking and returning one string (e.g. `Greet` of a Python
    /// worker).
    #[arg(long, default_value = "RustGreet")]
    workflow_type: String,
    /// The name to greet (the workflow's only argument).
    #[arg(long, default_value = "World")]
    input: String,
    /// Send the input this many times over (a large payload, for
    /// `--storage`); the result is printed with its length only.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Fail the workflow (and this command) when it has not finished after
    /// this many seconds.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    greet::exit_code("starter", run(Args::parse()).await)
}

async fn run(mut args: Args) -> anyhow::Result<()> {
    args.input = args.input.repeat(args.repeat.max(1));
    let client = args.connect.client().await?;
    let options =
        WorkflowStartOptions::new(args.connect.task_queue.as_str(), args.workflow_id.as_str())
            .execution_timeout(Duration::from_secs(args.timeout))
            .build();
    let result = if args.workflow_type == "RustGreet" {
        let handle = client
            .start_workflow(RustGreet::run, args.input.clone(), options)
            .await
            .context("starting the workflow")?;
        handle
            .get_result(WorkflowGetResultOptions::default())
            .await
            .context("waiting for the workflow's result")?
    } else {
        start_by_name(&client, &args.workflow_type, &args.input, options).await?
    };
    if args.repeat > 1 {
        let head: String = result.chars().take(48).collect();
        println!(
            "result: {} chars, beginning {head:?}",
            result.chars().count()
        );
    } else {
        println!("result: {result:?}");
    }
    Ok(())
}

/// Starts `workflow_type` with one string argument and reads a string
/// result (the SDK's untyped workflow handle).
async fn start_by_name(
    client: &Client,
    workflow_type: &str,
    input: &str,
    options: WorkflowStartOptions,
) -> anyhow::Result<String> {
    let converter = client.data_converter().payload_converter().clone();
    let context_data = SerializationContextData::None;
    let context = SerializationContext::new(&context_data, &converter);
    let argument = converter
        .to_payload(&context, &input.to_owned())
        .context("converting the input")?;
    let handle = client
        .start_workflow(
            UntypedWorkflow::new(workflow_type),
            RawValue::new(vec![argument]),
            options,
        )
        .await
        .with_context(|| format!("starting workflow type `{workflow_type}`"))?;
    let raw = handle
        .get_result(WorkflowGetResultOptions::default())
        .await
        .context("waiting for the workflow's result")?;
    let Some(payload) = raw.payloads.into_iter().next() else {
        bail!("the workflow returned no value");
    };
    converter
        .from_payload(&context, payload)
        .context("reading the result as a string")
}
