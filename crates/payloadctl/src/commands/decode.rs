//! `payloadctl decode`: payloads back to what the SDK wrote, as the Codec
//! Server's `/decode` would, locally or through a Codec Server.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use payload_codecs::CodecName;

use crate::cli::{KeySources, codec_names};
use crate::codecs::Decoder;
use crate::commands::{Outcome, runtime};
use crate::{batches, input, output, payloads};

/// Decode payloads with the local keyring, or through a Codec Server.
///
/// Reads a Codec Server body, {"payloads":[...]}, from FILE or stdin and
/// writes the decoded body to stdout. Every layer payloadctl knows
/// (binary/encrypted with any key of the keyring, binary/zstd, binary/zlib)
/// is undone, whatever order the chain that wrote it used; payloads that
/// cannot be decoded are written as they were, reported on stderr, and make
/// the exit status 1.
#[derive(Debug, Args)]
#[command(after_long_help = "\
Examples:
  payloadctl decode encoded.json --keyring keyring.toml
  payloadctl encode --keyring keyring.toml --value '[1, 2]' | payloadctl decode --keyring keyring.toml --show-values
  payloadctl decode encoded.json --remote http://127.0.0.1:8888 --auth \"Bearer $TOKEN\"")]
pub(crate) struct DecodeArgs {
    /// The payloads body to decode ("-" or nothing: stdin).
    #[arg(value_name = "FILE")]
    file: Option<PathBuf>,
    /// Only undo these codecs (default: all that payloadctl knows).
    #[arg(long, value_parser = codec_names(), value_delimiter = ',')]
    chain: Vec<CodecName>,
    /// Add each readable payload's value beside it, as "value" (for reading:
    /// strict proto3 JSON parsers refuse the extra field).
    #[arg(long)]
    show_values: bool,
    #[command(flatten)]
    keys: KeySources,
}

/// Runs `payloadctl decode`.
pub(crate) fn run(args: DecodeArgs) -> anyhow::Result<Outcome> {
    let input = input::read(args.file.as_ref())?;
    let encoded = payloads::parse_body(&input.name, &input.bytes)?;
    let decoder = Arc::new(Decoder::from_args(&args.keys, &args.chain)?);
    let results = runtime()?.block_on(batches::decode_all(decoder, encoded.clone()))?;
    let mut failures = Vec::new();
    let decoded: Vec<_> = results
        .into_iter()
        .zip(encoded)
        .enumerate()
        .map(|(i, (result, original))| {
            result.unwrap_or_else(|err| {
                failures.push((format!("payload {i}"), err));
                original
            })
        })
        .collect();
    output::write_data(None, &payloads::write_body(&decoded, args.show_values))?;
    output::report_failures(&failures);
    Ok(Outcome::failed_if(!failures.is_empty()))
}
