//! [`KmsSettings`]: envelope encryption described in configuration (the
//! Codec Server's `[kms]` section, payloadctl's `--kms` file), and building
//! a [`Kms`] and each namespace's [`EnvelopeCodec`] from it.
//!
//! Secrets never sit in the settings: the Vault token comes from a file or
//! an environment variable, AWS credentials from the standard variables.
//! The caller passes the variable lookup in, so that libraries do not read
//! the environment.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use payload_codecs::{AesGcmCodec, Keyring, KeyringError};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::envelope::{EnvelopeBuilder, EnvelopeCodec};
use crate::error::KmsError;
use crate::kms::Kms;
use crate::options::{AwsAccess, KmsOptions, VaultAccess};

/// The `[kms]` section. `Debug` shows KEK URIs as
/// [`shown_kek`](crate::shown_kek) does (no key of a `testing://` URI).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KmsSettings {
    /// The KEK new data keys are wrapped with, for namespaces that name
    /// none (a URI: `awskms:///alias/temporal`, `hashivault://payloads`,
    /// `keyring://kek-1`).
    #[serde(default)]
    pub kek: Option<String>,
    /// KEKs that only decrypt (being retired), for every namespace.
    #[serde(default)]
    pub decrypt_keks: Vec<String>,
    /// How long one data key encrypts before a new one is made.
    #[serde(default = "default_data_key_ttl")]
    pub data_key_ttl_secs: u64,
    /// How long before its end a data key is renewed.
    #[serde(default = "default_renew_before")]
    pub renew_before_secs: u64,
    /// Unwrapped data keys kept in memory.
    #[serde(default = "default_cache_size")]
    pub cache_size: usize,
    /// How long an unwrapped data key is kept.
    #[serde(default = "default_cache_ttl")]
    pub cache_ttl_secs: u64,
    /// Longest one KMS call may take.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Tries of a KMS call that fails for a transient reason.
    #[serde(default = "default_attempts")]
    pub attempts: usize,
    /// The keyring file whose keys `keyring://<id>` KEKs name.
    #[serde(default)]
    pub keyring: Option<PathBuf>,
    /// Vault or OpenBao.
    #[serde(default)]
    pub vault: Option<VaultSettings>,
    /// AWS KMS.
    #[serde(default)]
    pub aws: Option<AwsSettings>,
}

/// `[kms.vault]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultSettings {
    /// The server's URL (else `BAO_ADDR`, else `VAULT_ADDR`).
    #[serde(default)]
    pub address: Option<String>,
    /// A file holding the token.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// The environment variable holding the token (else `BAO_TOKEN`, else
    /// `VAULT_TOKEN`).
    #[serde(default)]
    pub token_env: Option<String>,
}

/// `[kms.aws]`. Credentials come from `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN` through the lookup the
/// binary passes in (which a shared AWS profile may answer for:
/// `payload_storage::AwsProfile`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsSettings {
    /// The region when a KEK URI names none (else `AWS_REGION`, else
    /// `AWS_DEFAULT_REGION`, else `us-east-1`).
    #[serde(default)]
    pub region: Option<String>,
    /// An emulator's or a VPC endpoint's URL (else `AWS_ENDPOINT_URL_KMS`,
    /// else the region's public endpoint).
    #[serde(default)]
    pub endpoint: Option<String>,
}

/// One namespace's KEKs, overriding the `[kms]` defaults.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KekPolicy {
    /// The namespace's KEK (else `[kms] kek`).
    #[serde(default)]
    pub kek: Option<String>,
    /// KEKs that only decrypt, besides `[kms] decrypt_keks`.
    #[serde(default)]
    pub decrypt_keks: Vec<String>,
}

fn shown_all<'a>(uris: impl IntoIterator<Item = &'a String>) -> Vec<String> {
    uris.into_iter().map(|u| crate::uri::shown(u)).collect()
}

impl std::fmt::Debug for KmsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KmsSettings")
            .field("kek", &shown_all(&self.kek))
            .field("decrypt_keks", &shown_all(&self.decrypt_keks))
            .field("data_key_ttl_secs", &self.data_key_ttl_secs)
            .field("renew_before_secs", &self.renew_before_secs)
            .field("cache_size", &self.cache_size)
            .field("cache_ttl_secs", &self.cache_ttl_secs)
            .field("timeout_secs", &self.timeout_secs)
            .field("attempts", &self.attempts)
            .field("keyring", &self.keyring)
            .field("vault", &self.vault)
            .field("aws", &self.aws)
            .finish()
    }
}

impl std::fmt::Debug for KekPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KekPolicy")
            .field("kek", &shown_all(&self.kek))
            .field("decrypt_keks", &shown_all(&self.decrypt_keks))
            .finish()
    }
}

fn default_data_key_ttl() -> u64 {
    crate::envelope::DEFAULT_DATA_KEY_TTL.as_secs()
}
fn default_renew_before() -> u64 {
    crate::envelope::DEFAULT_RENEW_BEFORE.as_secs()
}
fn default_cache_size() -> usize {
    crate::options::DEFAULT_CACHE_SIZE
}
fn default_cache_ttl() -> u64 {
    crate::options::DEFAULT_CACHE_TTL.as_secs()
}
fn default_timeout() -> u64 {
    crate::options::DEFAULT_CALL_TIMEOUT.as_secs()
}
fn default_attempts() -> usize {
    crate::options::DEFAULT_ATTEMPTS
}

impl Default for KmsSettings {
    fn default() -> Self {
        Self {
            kek: None,
            decrypt_keks: Vec::new(),
            data_key_ttl_secs: default_data_key_ttl(),
            renew_before_secs: default_renew_before(),
            cache_size: default_cache_size(),
            cache_ttl_secs: default_cache_ttl(),
            timeout_secs: default_timeout(),
            attempts: default_attempts(),
            keyring: None,
            vault: None,
            aws: None,
        }
    }
}

/// The settings cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SettingsError {
    /// A value is out of range or missing.
    #[error("{0}")]
    Invalid(String),
    /// The KEK keyring file cannot be loaded.
    #[error("keyring: {0}")]
    Keyring(#[from] KeyringError),
    /// A KEK cannot be set up.
    #[error(transparent)]
    Kms(#[from] KmsError),
}

impl KmsSettings {
    /// Whether a KEK here (`kek` or `decrypt_keks`) is in AWS KMS: the
    /// binaries then read the shared AWS profile for credentials.
    pub fn uses_aws(&self) -> bool {
        self.kek
            .iter()
            .chain(&self.decrypt_keks)
            .any(|uri| crate::is_aws_kek(uri))
    }

    /// Checks values that need no file or network.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let invalid = |m: &str| Err(SettingsError::Invalid(m.to_owned()));
        if self.data_key_ttl_secs == 0 {
            return invalid("data_key_ttl_secs must be at least 1");
        }
        if self.renew_before_secs >= self.data_key_ttl_secs {
            return invalid("renew_before_secs must be less than data_key_ttl_secs");
        }
        if self.cache_size == 0 {
            return invalid("cache_size must be at least 1");
        }
        if self.timeout_secs == 0 || self.attempts == 0 {
            return invalid("timeout_secs and attempts must be at least 1");
        }
        for uri in self.kek.iter().chain(&self.decrypt_keks) {
            crate::uri::KekUri::parse(uri)?;
        }
        Ok(())
    }

    /// The [`Kms`] these settings describe: reads the KEK keyring file
    /// (`resolve` makes its path absolute), the Vault token and the AWS
    /// credentials (through `env`).
    pub fn build(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
        resolve: &dyn Fn(&Path) -> PathBuf,
    ) -> Result<Arc<Kms>, SettingsError> {
        self.validate()?;
        let keyring = match &self.keyring {
            Some(path) => Some(Arc::new(Keyring::load(&resolve(path), env)?)),
            None => None,
        };
        let options = KmsOptions {
            cache_size: self.cache_size,
            cache_ttl: Duration::from_secs(self.cache_ttl_secs),
            call_timeout: Duration::from_secs(self.timeout_secs),
            attempts: self.attempts,
            keyring,
            vault: self.vault_access(env, resolve)?,
            aws: self.aws_access(env),
            ..KmsOptions::default()
        };
        Ok(Arc::new(Kms::new(options)))
    }

    fn vault_access(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
        resolve: &dyn Fn(&Path) -> PathBuf,
    ) -> Result<Option<VaultAccess>, SettingsError> {
        let section = self.vault.clone().unwrap_or_default();
        let Some(address) = section
            .address
            .or_else(|| env("BAO_ADDR"))
            .or_else(|| env("VAULT_ADDR"))
        else {
            return Ok(None);
        };
        let token = match (&section.token_file, &section.token_env) {
            (Some(path), _) => {
                let path = resolve(path);
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    SettingsError::Invalid(format!(
                        "cannot read the Vault token file {}: {e}",
                        path.display()
                    ))
                })?;
                Some(text.trim().to_owned())
            }
            (None, Some(var)) => Some(env(var).ok_or_else(|| {
                SettingsError::Invalid(format!(
                    "the Vault token variable `{var}` is not set; set it to the token"
                ))
            })?),
            (None, None) => env("BAO_TOKEN").or_else(|| env("VAULT_TOKEN")),
        };
        let token = token.ok_or_else(|| {
            SettingsError::Invalid(
                "Vault is configured but no token was found: set [kms.vault] token_file or \
                 token_env, or BAO_TOKEN/VAULT_TOKEN"
                    .to_owned(),
            )
        })?;
        Ok(Some(VaultAccess {
            address,
            token: Zeroizing::new(token),
        }))
    }

    fn aws_access(&self, env: &dyn Fn(&str) -> Option<String>) -> Option<AwsAccess> {
        let section = self.aws.clone().unwrap_or_default();
        let access_key_id = env("AWS_ACCESS_KEY_ID")?.trim().to_owned();
        let secret = env("AWS_SECRET_ACCESS_KEY")?.trim().to_owned();
        Some(AwsAccess {
            region: section
                .region
                .or_else(|| env("AWS_REGION"))
                .or_else(|| env("AWS_DEFAULT_REGION"))
                .unwrap_or_else(|| "us-east-1".to_owned()),
            endpoint: section.endpoint.or_else(|| env("AWS_ENDPOINT_URL_KMS")),
            access_key_id,
            secret_access_key: Zeroizing::new(secret),
            session_token: env("AWS_SESSION_TOKEN").map(|t| Zeroizing::new(t.trim().to_owned())),
        })
    }

    /// The KEK a namespace with `policy` encrypts under, if any.
    pub fn active_kek<'a>(&'a self, policy: &'a KekPolicy) -> Option<&'a str> {
        policy.kek.as_deref().or(self.kek.as_deref())
    }

    /// A namespace's envelope codec: its KEK (or the default), the
    /// decrypt-only KEKs, and `keyring` for keyring-format payloads.
    /// `None` when neither the namespace nor `[kms]` names a KEK.
    pub fn envelope(
        &self,
        kms: &Arc<Kms>,
        policy: &KekPolicy,
        keyring: Option<Arc<Keyring>>,
    ) -> Result<Option<EnvelopeCodec>, KmsError> {
        let Some(active) = self.active_kek(policy) else {
            return Ok(None);
        };
        let mut builder = EnvelopeBuilder::new(kms.clone(), active).data_key_ttl(
            Duration::from_secs(self.data_key_ttl_secs),
            Duration::from_secs(self.renew_before_secs),
        );
        for uri in policy.decrypt_keks.iter().chain(&self.decrypt_keks) {
            if uri != active {
                builder = builder.decrypt_only(uri.clone());
            }
        }
        if let Some(keyring) = keyring {
            builder = builder.keyring(AesGcmCodec::new(keyring));
        }
        builder.build().map(Some)
    }
}
