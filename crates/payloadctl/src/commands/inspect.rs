//! `payloadctl inspect`: how each payload of a document is encoded, layer
//! by layer, without printing a value or a secret.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use payload_converter::PayloadExt as _;
use payload_converter::encoding::{
    BINARY_NULL, BINARY_PLAIN, BINARY_PROTOBUF, JSON_PROTOBUF, METADATA_MESSAGE_TYPE,
};
use payload_proto::temporal::api::common::v1::Payload;
use payload_storage::StorageReference;
use serde::Serialize;

use crate::cli::{KeyringArgs, KmsArgs, OutputFormat};
use crate::codecs::Layers;
use crate::commands::{Outcome, runtime};
use crate::document::Json;
use crate::{input, output, payloads};

/// Show how each payload is encoded, without printing values or secrets.
///
/// Reads a payloads body ({"payloads":[...]}) or an exported history from
/// FILE or stdin. For each payload prints its JSON path, its encoding chain
/// outermost first (e.g. binary/encrypted(key=k1) > binary/zstd >
/// json/plain), its size on the wire and once decoded, and the type of the
/// decoded value (string, number, object, ...) when the keyring can decode
/// it. An external storage reference is shown with its driver, bucket, key
/// and size, and not fetched. Exits 1 when some payload cannot be decoded, e.g. its key is not in
/// the keyring.
#[derive(Debug, Args)]
#[command(after_long_help = "\
Examples:
  payloadctl inspect order-42.json --keyring keyring.toml
  payloadctl inspect order-42.json
  payloadctl encode --keyring keyring.toml --value '{\"a\": 1}' | payloadctl inspect --keyring keyring.toml --output json")]
pub(crate) struct InspectArgs {
    /// A payloads body or an exported history ("-" or nothing: stdin).
    #[arg(value_name = "FILE")]
    file: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    output: OutputFormat,
    #[command(flatten)]
    keyring: KeyringArgs,
    #[command(flatten)]
    kms: KmsArgs,
}

/// What is shown of one payload.
#[derive(Debug, Serialize)]
struct Row {
    path: String,
    /// Layers outermost first, the last being the innermost encoding.
    chain: Vec<String>,
    /// Key ids of the encryption layers.
    key_ids: Vec<String>,
    /// Serialized size of the payload as stored.
    stored_bytes: usize,
    /// Size of the innermost payload's data, when it could be decoded.
    #[serde(skip_serializing_if = "Option::is_none")]
    data_bytes: Option<usize>,
    /// The decoded value's type, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    value_type: Option<String>,
    /// Where the payload is, when it is an external storage reference
    /// (shown, never fetched).
    #[serde(skip_serializing_if = "Option::is_none")]
    reference: Option<Reference>,
    /// Why the payload could not be decoded.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// An external storage reference, as `inspect` shows it.
#[derive(Debug, Serialize)]
struct Reference {
    driver: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    bucket: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    /// The stored payload's serialized size, as the reference says.
    #[serde(skip_serializing_if = "Option::is_none")]
    size_bytes: Option<u64>,
}

impl Reference {
    /// The reference `payload` is, or a note on why it cannot be read.
    fn of(payload: &Payload) -> Option<Result<Self, String>> {
        match StorageReference::from_payload(payload) {
            Ok(Some(r)) => Some(Ok(Reference {
                bucket: r.claim.get("bucket").map(str::to_owned),
                key: r.claim.get("key").map(str::to_owned),
                driver: r.driver_name,
                size_bytes: r.size_bytes,
            })),
            Ok(None) => None,
            Err(e) => Some(Err(format!("malformed storage reference: {e}"))),
        }
    }

    fn describe(&self) -> String {
        let place = match (&self.bucket, &self.key) {
            (Some(bucket), Some(key)) => format!(" {bucket}/{key}"),
            (None, Some(key)) => format!(" {key}"),
            _ => String::new(),
        };
        let size = self
            .size_bytes
            .map_or_else(String::new, |n| format!(", {n} bytes"));
        format!("stored externally: {}{place}{size}", self.driver)
    }
}

/// Runs `payloadctl inspect`.
pub(crate) fn run(args: InspectArgs) -> anyhow::Result<Outcome> {
    let input = input::read(args.file.as_ref())?;
    let doc =
        Json::parse(&input.bytes).with_context(|| format!("{} is not valid JSON", input.name))?;
    let found = payloads::find(&doc).with_context(|| format!("in {}", input.name))?;
    let layers = Layers::new(&args.keyring, &args.kms, &[])?;
    let rows: Vec<Row> = runtime()?.block_on(async {
        let mut rows = Vec::with_capacity(found.len());
        for item in &found {
            let stored_bytes = prost::Message::encoded_len(&item.payload);
            let mut peeled = layers.peel(item.payload.clone()).await;
            let reference = match Reference::of(&peeled.payload) {
                Some(Ok(reference)) => Some(reference),
                Some(Err(error)) => {
                    peeled.error.get_or_insert(error);
                    None
                }
                None => None,
            };
            rows.push(Row {
                path: item.path.to_string(),
                chain: peeled.layers.iter().map(ToString::to_string).collect(),
                key_ids: peeled
                    .layers
                    .iter()
                    .filter_map(|l| l.key_id.clone())
                    .collect(),
                stored_bytes,
                data_bytes: peeled.error.is_none().then(|| peeled.payload.data.len()),
                value_type: peeled
                    .error
                    .is_none()
                    .then(|| value_type(&peeled.payload))
                    .flatten(),
                reference,
                error: peeled.error,
            });
        }
        rows
    });
    let failed = rows.iter().filter(|r| r.error.is_some()).count();
    let text = match args.output {
        OutputFormat::Json => {
            let mut text = serde_json::to_string_pretty(&rows)?;
            text.push('\n');
            text
        }
        OutputFormat::Text => table(&rows),
    };
    output::write_data(None, text.as_bytes())?;
    output::note(&format!(
        "{}: {} payloads, {} decodable, {failed} not",
        input.name,
        rows.len(),
        rows.len() - failed
    ));
    Ok(Outcome::failed_if(failed > 0))
}

/// The type of a plain payload's value, never the value.
fn value_type(payload: &Payload) -> Option<String> {
    match payload.encoding()? {
        BINARY_NULL => Some("null".to_owned()),
        BINARY_PLAIN => Some("bytes".to_owned()),
        JSON_PROTOBUF | BINARY_PROTOBUF => {
            Some(match payload.metadata_str(METADATA_MESSAGE_TYPE) {
                Some(name) => format!("protobuf {name}"),
                None => "protobuf".to_owned(),
            })
        }
        _ => payloads::value_of(payload).map(|v| v.type_name().to_owned()),
    }
}

fn table(rows: &[Row]) -> String {
    let cells: Vec<[String; 4]> = rows
        .iter()
        .map(|r| {
            let mut chain = r.chain.join(" > ");
            if r.error.is_some() {
                chain.push_str(" > ?");
            }
            [
                r.path.clone(),
                chain,
                match r.data_bytes {
                    Some(data) => format!("{} > {data}", r.stored_bytes),
                    None => format!("{} > ?", r.stored_bytes),
                },
                match (&r.error, &r.value_type) {
                    (Some(err), _) => format!("cannot decode: {err}"),
                    (None, _) if r.reference.is_some() => r
                        .reference
                        .as_ref()
                        .map(Reference::describe)
                        .unwrap_or_default(),
                    (None, Some(t)) => t.clone(),
                    (None, None) => "-".to_owned(),
                },
            ]
        })
        .collect();
    let header = ["PATH", "ENCODING", "BYTES", "VALUE"].map(str::to_owned);
    let widths: Vec<usize> = (0..3)
        .map(|c| {
            cells
                .iter()
                .chain(std::iter::once(&header))
                .map(|row| row[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&cells) {
        let line = format!(
            "{:<w0$}  {:<w1$}  {:<w2$}  {}",
            row[0],
            row[1],
            row[2],
            row[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
