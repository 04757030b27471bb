//! `payloadctl encode`: payloads (or values) through the local codec chain
//! or a Codec Server, as the Codec Server's `/encode` would.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use payload_converter::{CompositeConverter, PayloadCodec, PayloadConverter as _, Value};
use payload_proto::temporal::api::common::v1::Payload;

use payload_codecs::CodecName;

use crate::cli::{KeySources, codec_names};
use crate::commands::{Outcome, runtime};
use crate::{codecs, input, output, payloads};

/// Encode payloads with the local keyring and codec chain.
///
/// Reads a Codec Server body, {"payloads":[...]}, from FILE or stdin and
/// writes the encoded body to stdout. With --value, makes the payloads from
/// JSON values with the default payload converter instead (null becomes
/// binary/null, anything else json/plain), then encodes them.
#[derive(Debug, Args)]
#[command(after_long_help = "\
Examples:
  payloadctl encode --keyring keyring.toml --value '\"hello\"'
  payloadctl encode --keyring keyring.toml --chain encrypt,zstd plain.json > encoded.json
  payloadctl encode --remote http://127.0.0.1:8888 --value '{\"order\": 42}'")]
pub(crate) struct EncodeArgs {
    /// The payloads body to encode ("-" or nothing: stdin).
    #[arg(value_name = "FILE", conflicts_with = "value")]
    file: Option<PathBuf>,
    /// A JSON value to make a payload from (repeat for several payloads).
    #[arg(long, value_name = "JSON")]
    value: Vec<String>,
    /// The codec chain, outermost layer first: `encrypt,zstd` compresses,
    /// then encrypts.
    #[arg(long, value_parser = codec_names(), value_delimiter = ',', default_value = "encrypt")]
    chain: Vec<CodecName>,
    #[command(flatten)]
    keys: KeySources,
}

/// Runs `payloadctl encode`.
pub(crate) fn run(args: EncodeArgs) -> anyhow::Result<Outcome> {
    let plain = if args.value.is_empty() {
        let input = input::read(args.file.as_ref())?;
        payloads::parse_body(&input.name, &input.bytes)?
    } else {
        args.value
            .iter()
            .enumerate()
            .map(|(i, text)| from_value(i, text))
            .collect::<anyhow::Result<Vec<_>>>()?
    };
    let keys = &args.keys;
    let codec: Box<dyn PayloadCodec> = match &keys.remote.remote {
        Some(url) => Box::new(codecs::remote_codec(url, &keys.remote)?),
        None => Box::new(codecs::encode_chain(&args.chain, &keys.keyring, &keys.kms)?),
    };
    let encoded = runtime()?
        .block_on(codec.encode(plain))
        .context("cannot encode the payloads")?;
    output::write_data(None, &payloads::write_body(&encoded, false))?;
    Ok(Outcome::Ok)
}

/// A payload from the `index`th `--value`.
fn from_value(index: usize, text: &str) -> anyhow::Result<Payload> {
    let value: serde_json::Value = serde_json::from_str(text).with_context(|| {
        format!(
            "--value number {} is not JSON: quote strings as JSON, e.g. --value '\"text\"'",
            index + 1
        )
    })?;
    let converter = CompositeConverter::default();
    let payload = if value.is_null() {
        converter.to_payload(&Value::Null)?
    } else {
        converter.to_payload(&Value::json(&value))?
    };
    Ok(payload)
}
