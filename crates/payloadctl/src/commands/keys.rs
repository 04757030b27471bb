//! `payloadctl keys`: the keyring file shared with the Codec Server.
//!
//! Every change loads the file, edits it with `KeyringFile` and saves it
//! atomically with mode 0600 (a temporary file renamed over the old one),
//! so a server reloading the file sees the old or the new keyring, never a
//! partial one. Key material is never printed.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use clap::{Args, Subcommand};
use payload_codecs::{KeyId, KeySource, KeyringFile, SecretKey};
use serde::Serialize;

use crate::cli::{KeyringArgs, OutputFormat};
use crate::commands::Outcome;
use crate::output;

/// Create, rotate and list the keys of a keyring file.
#[derive(Debug, Args)]
#[command(after_long_help = "\
Examples:
  payloadctl keys generate --keyring keyring.toml
  payloadctl keys rotate --keyring keyring.toml
  payloadctl keys list --keyring keyring.toml
  payloadctl keys retire key-20250101-000000 --keyring keyring.toml")]
pub(crate) struct KeysArgs {
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create a new keyring file with one random key, which is active.
    #[command(after_long_help = "\
Examples:
  payloadctl keys generate --keyring keyring.toml
  payloadctl keys generate --keyring /etc/codec-server/keyring.toml --id key-2026-11")]
    Generate {
        #[command(flatten)]
        keyring: KeyringArgs,
        /// The key id (default: `key-` and the current UTC date and time).
        #[arg(long)]
        id: Option<KeyId>,
    },
    /// Add a key that is not active (to decode payloads other systems wrote).
    ///
    /// The key comes from stdin (32 bytes as base64 or hex text), from a file
    /// the keyring points to (--file), or from an environment variable the
    /// server reads (--env); with none of these, a random key is generated.
    #[command(after_long_help = "\
Examples:
  printf %s \"$OLD_KEY_BASE64\" | payloadctl keys add old-key --stdin --keyring keyring.toml
  payloadctl keys add from-vault --env CODEC_KEY_FROM_VAULT --keyring keyring.toml
  payloadctl keys add spare --keyring keyring.toml")]
    Add {
        /// The new key's id.
        id: KeyId,
        #[command(flatten)]
        keyring: KeyringArgs,
        /// Read the key from stdin, as base64 or hex text.
        #[arg(long, group = "source")]
        stdin: bool,
        /// Reference a key file (32 raw bytes, base64 or hex; relative paths
        /// are resolved from the keyring's folder).
        #[arg(long, value_name = "PATH", group = "source")]
        file: Option<PathBuf>,
        /// Reference an environment variable holding the key as base64 or hex.
        #[arg(long, value_name = "NAME", group = "source")]
        env: Option<String>,
    },
    /// Make a new random key active; the old keys stay to decode old payloads.
    #[command(after_long_help = "\
Examples:
  payloadctl keys rotate --keyring keyring.toml
  payloadctl keys rotate --keyring keyring.toml --id key-2026-12
  payloadctl keys rotate --keyring keyring.toml --to spare")]
    Rotate {
        #[command(flatten)]
        keyring: KeyringArgs,
        /// The new key's id (default: `key-` and the current UTC date and time).
        #[arg(long, conflicts_with = "to")]
        id: Option<KeyId>,
        /// Activate this existing key instead of generating one.
        #[arg(long, value_name = "ID")]
        to: Option<KeyId>,
    },
    /// List the keys: ids, which one is active, where each key is kept.
    ///
    /// Never prints key material.
    #[command(after_long_help = "\
Examples:
  payloadctl keys list --keyring keyring.toml
  PAYLOADCTL_KEYRING=keyring.toml payloadctl keys list --output json")]
    List {
        #[command(flatten)]
        keyring: KeyringArgs,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Remove a key that is no longer needed; refuses the active key.
    ///
    /// Payloads encrypted with a retired key can no longer be decoded:
    /// retire a key only once nothing stored uses it (`payloadctl inspect`
    /// shows the key of each payload of an export).
    #[command(after_long_help = "\
Examples:
  payloadctl keys retire key-20250101-000000 --keyring keyring.toml
  payloadctl inspect history.json --keyring keyring.toml | grep key-20250101-000000")]
    Retire {
        /// The key to remove.
        id: KeyId,
        #[command(flatten)]
        keyring: KeyringArgs,
    },
}

/// Runs `payloadctl keys ...`.
pub(crate) fn run(args: KeysArgs) -> anyhow::Result<Outcome> {
    let (KeysCommand::Generate { keyring, .. }
    | KeysCommand::Add { keyring, .. }
    | KeysCommand::Rotate { keyring, .. }
    | KeysCommand::List { keyring, .. }
    | KeysCommand::Retire { keyring, .. }) = &args.command;
    if let Some(path) = &keyring.keyring {
        clean_interrupted_saves(path);
    }
    match args.command {
        KeysCommand::Generate { keyring, id } => {
            let path = keyring.required()?;
            if path.exists() {
                bail!(
                    "{} already exists: use `payloadctl keys rotate` to add a new active key to it, \
                     or choose another path",
                    path.display()
                );
            }
            let id = id.map_or_else(default_key_id, Ok)?;
            let file = KeyringFile::generate(id.clone())?;
            save(&file, path)?;
            output::note(&format!(
                "created {} with key `{id}` (active); keep this file private",
                path.display()
            ));
        }
        KeysCommand::Add {
            id,
            keyring,
            stdin,
            file,
            env,
        } => {
            let path = keyring.required()?;
            let mut keys = load(path)?;
            let (source, how) = if stdin {
                (key_from_stdin()?, "from stdin")
            } else if let Some(file) = file {
                (KeySource::File(file), "as a key file reference")
            } else if let Some(env) = env {
                (KeySource::Env(env), "as an environment variable reference")
            } else {
                (KeySource::Base64(SecretKey::generate()?), "generated")
            };
            keys.add_key(id.clone(), source)?;
            save(&keys, path)?;
            warn_unresolved(&keys);
            output::note(&format!(
                "added key `{id}` ({how}, not active) to {}",
                path.display()
            ));
        }
        KeysCommand::Rotate { keyring, id, to } => {
            let path = keyring.required()?;
            let mut keys = load(path)?;
            let new = match to {
                Some(existing) => existing,
                None => {
                    let id = id.map_or_else(default_key_id, Ok)?;
                    keys.generate_key(id.clone())?;
                    id
                }
            };
            let old = keys.set_active(&new)?;
            save(&keys, path)?;
            warn_unresolved(&keys);
            let kept = keys.keys().len() - 1;
            output::note(&format!(
                "rotated {}: `{new}` is active (was `{old}`); {kept} {} kept to decode older payloads",
                path.display(),
                if kept == 1 { "key" } else { "keys" }
            ));
        }
        KeysCommand::List { keyring, output } => {
            let keys = load(keyring.required()?)?;
            list(&keys, output)?;
        }
        KeysCommand::Retire { id, keyring } => {
            let path = keyring.required()?;
            let mut keys = load(path)?;
            if id == *keys.active() {
                bail!(
                    "key `{id}` is the active key and cannot be retired: rotate first \
                     (`payloadctl keys rotate`), then retire it once no stored payload uses it"
                );
            }
            keys.retire_key(&id)
                .map_err(|e| anyhow::anyhow!("{e}; `payloadctl keys list` shows the keys"))?;
            save(&keys, path)?;
            output::note(&format!("retired key `{id}` from {}", path.display()));
        }
    }
    Ok(Outcome::Ok)
}

/// Removes the temporary files an interrupted save left next to the
/// keyring (they hold key material) and says so; a failure to remove them
/// is a warning, not an error.
fn clean_interrupted_saves(path: &Path) {
    match KeyringFile::remove_interrupted_saves(path) {
        Ok(removed) => {
            for file in removed {
                output::note(&format!(
                    "removed {}, left by an interrupted save of the keyring",
                    file.display()
                ));
            }
        }
        Err(err) => output::note(&format!(
            "warning: cannot look for files left by interrupted saves next to {}: {err}; \
             remove any `.{}.*.tmp` there by hand, they hold key material",
            path.display(),
            path.file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
        )),
    }
}

fn load(path: &Path) -> anyhow::Result<KeyringFile> {
    KeyringFile::load(path).with_context(|| {
        if path.exists() {
            format!("cannot use the keyring {}", path.display())
        } else {
            format!(
                "cannot use the keyring {}: create one with `payloadctl keys generate`",
                path.display()
            )
        }
    })
}

fn save(keys: &KeyringFile, path: &Path) -> anyhow::Result<()> {
    keys.save_atomic(path)
        .with_context(|| format!("cannot save the keyring {}", path.display()))
}

/// Warns when a `file` or `env` key cannot be read here: it may well be
/// readable where the Codec Server runs, but the operator should know.
fn warn_unresolved(keys: &KeyringFile) {
    if let Err(err) = keys.to_keyring(&|name| std::env::var(name).ok()) {
        output::note(&format!(
            "warning: {err}; make sure the key is readable where the Codec Server runs"
        ));
    }
}

/// `key-YYYYMMDD-HHMMSS` in UTC.
fn default_key_id() -> anyhow::Result<KeyId> {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the system clock is before 1970")?
        .as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    let id = format!(
        "key-{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    );
    Ok(KeyId::new(id)?)
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard
/// Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A key read from stdin as base64 (44 characters) or hex (64 digits).
fn key_from_stdin() -> anyhow::Result<KeySource> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .context("cannot read the key from stdin")?;
    let text = text.trim();
    let hex_digits = text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit());
    let bytes = if hex_digits {
        hex::decode(text).ok()
    } else {
        base64::engine::general_purpose::STANDARD.decode(text).ok()
    };
    let invalid = || {
        anyhow::anyhow!(
            "the key on stdin is not 32 bytes as base64 (44 characters) or hex (64 digits)"
        )
    };
    let key = SecretKey::from_bytes(&bytes.ok_or_else(invalid)?).ok_or_else(invalid)?;
    Ok(if hex_digits {
        KeySource::Hex(key)
    } else {
        KeySource::Base64(key)
    })
}

/// One key, as listed.
#[derive(Debug, Serialize)]
struct Listed {
    id: String,
    active: bool,
    /// `base64`, `hex` (inline), `file` or `env`.
    source: &'static str,
    /// The file path or variable name, for `file` and `env` keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    reference: Option<String>,
}

fn list(keys: &KeyringFile, format: OutputFormat) -> anyhow::Result<()> {
    let listed: Vec<Listed> = keys
        .keys()
        .map(|(id, source)| Listed {
            id: id.to_string(),
            active: id == keys.active(),
            source: source.field_name(),
            reference: match source {
                KeySource::File(path) => Some(path.display().to_string()),
                KeySource::Env(name) => Some(name.clone()),
                _ => None,
            },
        })
        .collect();
    let text = match format {
        OutputFormat::Json => {
            let mut text = serde_json::to_string_pretty(&listed)?;
            text.push('\n');
            text
        }
        OutputFormat::Text => {
            let width = listed.iter().map(|k| k.id.len()).max().unwrap_or(0).max(2);
            let mut text = format!("{:<width$}  {:<6}  SOURCE\n", "ID", "ACTIVE");
            for key in &listed {
                let source = match &key.reference {
                    Some(reference) => format!("{} {reference}", key.source),
                    None => format!("{} (inline)", key.source),
                };
                text.push_str(&format!(
                    "{:<width$}  {:<6}  {source}\n",
                    key.id,
                    if key.active { "yes" } else { "" }
                ));
            }
            text
        }
    };
    output::write_data(None, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_from_day_counts() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(20_515), (2026, 3, 3));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
