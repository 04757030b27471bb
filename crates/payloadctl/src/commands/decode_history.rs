//! `payloadctl decode-history`: an exported workflow history with every
//! payload decoded, wherever it sits, and failure messages restored.
//!
//! The document is walked generically (see `payloads.rs`), all its payloads
//! are decoded in batches, written back in place, then failures with
//! encoded attributes get their message and stack trace back (see
//! `failures.rs`). Everything else is written as it was read.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;

use crate::cli::{KeySources, StorageArgs};
use crate::codecs::Decoder;
use crate::commands::{Outcome, runtime};
use crate::document::Json;
use crate::{batches, failures, input, output, payloads};

/// Decode every payload of an exported workflow history.
///
/// Takes a history exported with `temporal workflow show -o json` (or
/// downloaded from the Web UI), decodes every payload in it (inputs,
/// results, memos, headers, signals, markers, failure details and encoded
/// attributes, at any depth of any event type) and writes the same document
/// decoded, with failure messages and stack traces restored from their
/// encoded attributes. External storage references are resolved with
/// --storage (or by the server with --remote). Payloads that cannot be decoded are left as they were,
/// reported on stderr with their JSON path, and make the exit status 1.
#[derive(Debug, Args)]
#[command(after_long_help = "\
Examples:
  temporal workflow show -w order-42 -o json > order-42.json
  payloadctl decode-history order-42.json --keyring keyring.toml -o order-42.decoded.json
  payloadctl decode-history order-42.json --remote http://127.0.0.1:8888 --namespace prod
  payloadctl decode-history order-42.json --keyring keyring.toml --storage s3.toml
  temporal workflow show -w order-42 -o json | payloadctl decode-history - --show-values | jq '.events[0]'")]
pub(crate) struct DecodeHistoryArgs {
    /// The exported history ("-": stdin).
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Write the decoded history here instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Add each readable payload's value beside it, as "value" (for reading:
    /// strict proto3 JSON parsers, such as SDK replayers, refuse the extra
    /// field).
    #[arg(long)]
    show_values: bool,
    #[command(flatten)]
    keys: KeySources,
    #[command(flatten)]
    storage: StorageArgs,
}

/// Runs `payloadctl decode-history`.
pub(crate) fn run(args: DecodeHistoryArgs) -> anyhow::Result<Outcome> {
    let input = input::read(Some(&args.file))?;
    let mut doc = Json::parse(&input.bytes).with_context(|| {
        format!(
            "{} is not valid JSON; export the history with `temporal workflow show -w ID -o json`",
            input.name
        )
    })?;
    let found = payloads::find(&doc).with_context(|| format!("in {}", input.name))?;
    let decoder =
        Arc::new(Decoder::from_args(&args.keys, &[])?.with_storage(args.storage.load()?)?);
    let originals: Vec<_> = found.iter().map(|f| f.payload.clone()).collect();
    let results = runtime()?.block_on(batches::decode_all(decoder, originals))?;

    let mut decoded = 0;
    let mut failures = Vec::new();
    for (found, result) in found.iter().zip(results) {
        match result {
            Ok(payload) if payload != found.payload => {
                decoded += 1;
                payloads::replace(
                    &mut doc,
                    &found.path,
                    payloads::write_payload(&payload, args.show_values),
                )?;
            }
            Ok(payload) => {
                if args.show_values {
                    payloads::replace(
                        &mut doc,
                        &found.path,
                        payloads::write_payload(&payload, true),
                    )?;
                }
            }
            Err(err) => failures.push((format!("the payload at {}", found.path), err)),
        }
    }
    let restored = failures::restore(&mut doc);
    output::write_data(args.output.as_deref(), &doc.to_pretty())?;

    output::report_failures(&failures);
    let mut summary = format!(
        "{}: {} payloads, {decoded} decoded, {} already plain, {} not decodable; {} failure messages restored",
        input.name,
        found.len(),
        found.len() - decoded - failures.len(),
        failures.len(),
        restored.restored,
    );
    if restored.still_encoded > 0 {
        summary.push_str(&format!(", {} still encoded", restored.still_encoded));
    }
    output::note(&summary);
    Ok(Outcome::failed_if(!failures.is_empty()))
}
