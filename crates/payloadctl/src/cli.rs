//! The command line: [`Cli`] and its [`Command`]s, plus the argument groups
//! several commands share. Doc comments here are the `--help` text; each
//! command's own arguments live beside its code in `commands/`.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use payload_codecs::CodecName;

use crate::commands::check_references::CheckReferencesArgs;
use crate::commands::decode::DecodeArgs;
use crate::commands::decode_history::DecodeHistoryArgs;
use crate::commands::encode::EncodeArgs;
use crate::commands::inspect::InspectArgs;
use crate::commands::keys::KeysArgs;
use crate::commands::probe::ProbeArgs;
use crate::commands::probe_kek::ProbeKekArgs;

/// Read, write and check Temporal payloads outside the Web UI.
///
/// For operators: rotate the encryption keys shared with the Codec Server,
/// decode an exported workflow history, see how a payload is encoded, and
/// check that a Codec Server works for the Temporal CLI and Web UI.
///
/// Data goes to stdout, diagnostics and progress to stderr. Exit status: 0
/// ok, 1 a check failed or some payloads could not be decoded, 2 a usage or
/// runtime error.
#[derive(Debug, Parser)]
#[command(
    name = "payloadctl",
    version,
    propagate_version = true,
    after_long_help = "\
Examples:
  payloadctl keys generate --keyring keyring.toml
  temporal workflow show -w order-42 -o json > order-42.json
  payloadctl decode-history order-42.json --keyring keyring.toml -o order-42.decoded.json
  payloadctl probe http://127.0.0.1:8888

See docs/payloadctl.md for more."
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The subcommands. Their help comes from the doc comments of their
/// argument structs in `commands/`.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    Keys(KeysArgs),
    Encode(EncodeArgs),
    Decode(DecodeArgs),
    DecodeHistory(DecodeHistoryArgs),
    Inspect(InspectArgs),
    Probe(ProbeArgs),
    ProbeKek(ProbeKekArgs),
    CheckReferences(CheckReferencesArgs),
}

/// Where the keyring file is.
#[derive(Debug, Clone, Args)]
pub(crate) struct KeyringArgs {
    /// The keyring file (TOML, see docs/keyring.md), shared with the Codec
    /// Server.
    #[arg(long, value_name = "PATH", env = "PAYLOADCTL_KEYRING")]
    pub(crate) keyring: Option<PathBuf>,
}

impl KeyringArgs {
    /// The keyring path, or an error saying how to give one.
    pub(crate) fn required(&self) -> anyhow::Result<&Path> {
        match &self.keyring {
            Some(path) => Ok(path),
            None => bail!("no keyring file given: pass --keyring PATH or set PAYLOADCTL_KEYRING"),
        }
    }
}

/// Where the keys of encode and decode come from: a keyring file, a KMS, or
/// a Codec Server.
#[derive(Debug, Clone, Args)]
pub(crate) struct KeySources {
    #[command(flatten)]
    pub(crate) keyring: KeyringArgs,
    #[command(flatten)]
    pub(crate) kms: KmsArgs,
    #[command(flatten)]
    pub(crate) remote: RemoteArgs,
}

/// A KMS for envelope encryption (the Temporal Proxy's format).
#[derive(Debug, Clone, Args)]
pub(crate) struct KmsArgs {
    /// Envelope encryption with a KMS: a TOML file with the keys of the
    /// Codec Server's `[kms]` section (kek, decrypt_keks, `[vault]`, `[aws]`,
    /// keyring; docs/key-management.md). Credentials come from BAO_TOKEN or
    /// VAULT_TOKEN and the standard AWS variables.
    #[arg(long, value_name = "FILE", env = "PAYLOADCTL_KMS")]
    pub(crate) kms: Option<PathBuf>,
    /// The KEK to encrypt with (a URI such as awskms:///alias/temporal),
    /// instead of the file's `kek`; decoding accepts it too. Without --kms,
    /// the KMS is reached with the defaults (BAO_ADDR/VAULT_ADDR, the AWS
    /// variables).
    #[arg(long, value_name = "URI", env = "PAYLOADCTL_KEK")]
    pub(crate) kek: Option<String>,
}

impl KmsArgs {
    /// The settings of `--kms`, if given, and the folder its relative
    /// paths resolve against.
    pub(crate) fn settings(&self) -> anyhow::Result<Option<(payload_kms::KmsSettings, PathBuf)>> {
        let Some(path) = &self.kms else {
            return Ok(self.kek.as_ref().map(|kek| {
                let settings = payload_kms::KmsSettings {
                    kek: Some(kek.clone()),
                    ..payload_kms::KmsSettings::default()
                };
                (settings, PathBuf::from("."))
            }));
        };
        let (mut settings, base) = read_kms_file(path)?;
        if let Some(kek) = &self.kek
            && let Some(old) = settings.kek.replace(kek.clone())
            && old != *kek
        {
            settings.decrypt_keks.push(old);
        }
        Ok(Some((settings, base)))
    }

    /// The envelope codec of `--kms` (with `keyring` for keyring-format
    /// payloads), if `--kms` is given.
    pub(crate) fn envelope(
        &self,
        keyring: Option<std::sync::Arc<payload_codecs::Keyring>>,
    ) -> anyhow::Result<Option<payload_kms::EnvelopeCodec>> {
        let Some((settings, base)) = self.settings()? else {
            return Ok(None);
        };
        let path = self.kms.as_deref().unwrap_or(Path::new("--kek"));
        let env = crate::codecs::process_env(settings.uses_aws())?;
        let kms = settings
            .build(env.as_ref(), &|p| base.join(p))
            .with_context(|| format!("{}", path.display()))?;
        let policy = payload_kms::KekPolicy::default();
        let envelope = settings
            .envelope(&kms, &policy, keyring)
            .with_context(|| format!("{}", path.display()))?;
        match envelope {
            Some(envelope) => Ok(Some(envelope)),
            None => bail!(
                "{} names no `kek`: add kek = \"<URI>\" to it or pass --kek URI",
                path.display()
            ),
        }
    }
}

/// The `[kms]` settings in the file at `path`, and the folder its relative
/// paths resolve against.
pub(crate) fn read_kms_file(path: &Path) -> anyhow::Result<(payload_kms::KmsSettings, PathBuf)> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the KMS file {}", path.display()))?;
    let settings = toml::from_str(&text).with_context(|| {
        format!(
            "{} is not a [kms] section (docs/key-management.md)",
            path.display()
        )
    })?;
    let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    Ok((settings, base))
}

/// Where externally stored payloads are, to resolve references locally.
#[derive(Debug, Clone, Args)]
pub(crate) struct StorageArgs {
    /// Resolve external storage references with this store: a TOML file
    /// with the keys of the Codec Server's `storage` section (driver,
    /// bucket, region, endpoint, path, ...; docs/storage.md). Credentials
    /// come from the standard AWS or Google variables.
    #[arg(long, value_name = "FILE", env = "PAYLOADCTL_STORAGE")]
    pub(crate) storage: Option<PathBuf>,
}

impl StorageArgs {
    /// The storage the file describes, if one is given.
    pub(crate) fn load(&self) -> anyhow::Result<Option<payload_storage::ExternalStorage>> {
        let Some(path) = &self.storage else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the storage file {}", path.display()))?;
        let settings: payload_storage::StorageSettings = toml::from_str(&text)
            .with_context(|| format!("{} is not a storage section", path.display()))?;
        let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let env = crate::codecs::process_env(settings.uses_aws())?;
        let storage = settings
            .build(env.as_ref(), &|p| base.join(p))
            .with_context(|| format!("{}", path.display()))?;
        Ok(Some(storage))
    }
}

/// A Codec Server to use instead of the local keyring.
#[derive(Debug, Clone, Args)]
pub(crate) struct RemoteArgs {
    /// Use this Codec Server (e.g. http://127.0.0.1:8888 or
    /// http://host/codec) instead of the local keyring, as the Temporal CLI
    /// does with --codec-endpoint.
    #[arg(long, value_name = "URL")]
    pub(crate) remote: Option<String>,
    /// The namespace sent to the Codec Server (X-Namespace).
    #[arg(
        long,
        value_name = "NAME",
        default_value = "default",
        requires = "remote"
    )]
    pub(crate) namespace: String,
    /// The Authorization header for the Codec Server, e.g. "Bearer TOKEN".
    #[arg(
        long,
        value_name = "VALUE",
        env = "PAYLOADCTL_AUTH",
        hide_env_values = true
    )]
    pub(crate) auth: Option<String>,
}

/// The `--chain` values: payload-codecs' [`CodecName`]s, with their help.
pub(crate) fn codec_names() -> impl clap::builder::TypedValueParser<Value = CodecName> {
    let values = CodecName::ALL.map(|name| {
        clap::builder::PossibleValue::new(name.as_str()).help(match name {
            CodecName::Encrypt => "AES-256-GCM with the keyring's active key, or a data key under --kms (`binary/encrypted`)",
            CodecName::Zstd => "zstd compression (`binary/zstd`)",
            CodecName::Zlib => "Go-compatible zlib compression (`binary/zlib`)",
            CodecName::Gzip => "gzip compression (`binary/gzip`), as the Python storage sample",
        })
    });
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(values).try_map(|name| name.parse::<CodecName>())
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub(crate) enum OutputFormat {
    /// Aligned text for people.
    #[default]
    Text,
    /// JSON for scripts.
    Json,
}
