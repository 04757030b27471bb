//! `payloadctl check-references`: every external storage reference of a
//! document exists in the store and matches its hash.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use payload_converter::Budget;
use payload_storage::StorageReference;
use payload_storage::reference::has_marker;

use crate::cli::StorageArgs;
use crate::commands::{Outcome, runtime};
use crate::document::Json;
use crate::{input, output, payloads};

/// Check that every external storage reference exists and is intact.
///
/// Reads a payloads body or an exported history from FILE or stdin, finds
/// every external storage reference in it, fetches each object from the
/// store given with --storage and checks its SHA-256 against the
/// reference. Prints one line per reference (its JSON path, then `ok`, or
/// what is wrong) and exits 1 when any is missing or does not match.
/// Values are never printed and no key is needed.
#[derive(Debug, Args)]
#[command(after_long_help = "\
Examples:
  temporal workflow show -w order-42 -o json > order-42.json
  payloadctl check-references order-42.json --storage s3.toml
  temporal workflow show -w order-42 -o json | PAYLOADCTL_STORAGE=s3.toml payloadctl check-references")]
pub(crate) struct CheckReferencesArgs {
    /// A payloads body or an exported history ("-" or nothing: stdin).
    #[arg(value_name = "FILE")]
    file: Option<PathBuf>,
    #[command(flatten)]
    storage: StorageArgs,
}

/// Runs `payloadctl check-references`.
pub(crate) fn run(args: CheckReferencesArgs) -> anyhow::Result<Outcome> {
    let Some(storage) = args.storage.load()? else {
        anyhow::bail!(
            "no store given: pass --storage FILE (a TOML file with the Codec Server's storage \
             keys, docs/storage.md) or set PAYLOADCTL_STORAGE"
        );
    };
    let input = input::read(args.file.as_ref())?;
    let doc =
        Json::parse(&input.bytes).with_context(|| format!("{} is not valid JSON", input.name))?;
    let found = payloads::find(&doc).with_context(|| format!("in {}", input.name))?;
    let mut lines = String::new();
    let (mut checked, mut bad, mut skipped) = (0, 0, 0);
    runtime()?.block_on(async {
        for item in &found {
            let verdict = if has_marker(&item.payload) {
                skipped += 1;
                "not checked: the reference went through a codec (decode it first)".to_owned()
            } else {
                match StorageReference::from_payload(&item.payload) {
                    Ok(None) => continue,
                    Err(err) => {
                        bad += 1;
                        format!("malformed reference: {err}")
                    }
                    Ok(Some(_)) => {
                        checked += 1;
                        // Fetching verifies the hash; the bytes are dropped.
                        match storage
                            .resolve(vec![item.payload.clone()], &Budget::unlimited())
                            .await
                        {
                            Ok(_) => "ok".to_owned(),
                            Err(err) => {
                                bad += 1;
                                err.to_string()
                            }
                        }
                    }
                }
            };
            lines.push_str(&format!("{}  {verdict}\n", item.path));
        }
    });
    output::write_data(None, lines.as_bytes())?;
    output::note(&format!(
        "{}: {checked} references checked, {bad} missing, corrupt or malformed, {skipped} not checked",
        input.name
    ));
    Ok(Outcome::failed_if(bad > 0))
}
