//! Building the namespace table from the configuration: load each keyring
//! once (a keyring shared by several namespaces is loaded once), build each
//! codec chain, and set up each namespace's auth.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use payload_codecs::{AesGcmCodec, ChainBuilder, ChainError, Keyring, KeyringError};
use payload_converter::PayloadCodec;
use payload_kms::{Kms, KmsSettings};
use payload_storage::StorageCodec;

use crate::auth::{Auth, BadTokenHash, BearerTokens, JwtAuth};
use crate::config::{AuthConfig, CodecName, Config, NamespaceConfig};
use crate::state::{NamespacePolicy, NamespaceTable};

/// A namespace could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A keyring file could not be loaded.
    #[error("[{section}] keyring: {source}")]
    Keyring {
        /// The config section.
        section: String,
        /// Why (boxed: keyring errors carry a path and a message).
        source: Box<KeyringError>,
    },
    /// The codec chain cannot be built (it encrypts without a keyring, or
    /// names a codec twice).
    #[error("[{section}] chain: {source}")]
    Chain {
        /// The config section.
        section: String,
        /// Why.
        source: ChainError,
    },
    /// The storage section cannot be used (or its client set up).
    #[error("[{section}.storage] {source}")]
    Storage {
        /// The config section.
        section: String,
        /// Why.
        source: payload_storage::SettingsError,
    },
    /// The `[kms]` section cannot be used (its keyring, the Vault token).
    #[error("[kms] {0}")]
    Kms(payload_kms::SettingsError),
    /// A namespace's KEK cannot be set up.
    #[error("[{section}] kek: {source}")]
    Kek {
        /// The config section.
        section: String,
        /// Why.
        source: payload_kms::KmsError,
    },
    /// A bearer token hash is malformed.
    #[error("[{section}] auth: {source}")]
    Token {
        /// The config section.
        section: String,
        /// Why.
        source: BadTokenHash,
    },
}

/// Builds the namespace table for `config`, reading keyring files and the
/// environment variables they reference (through `config.environment`).
pub fn build_namespaces(config: &Config) -> Result<NamespaceTable, BuildError> {
    let mut keyrings: HashMap<PathBuf, Arc<Keyring>> = HashMap::new();
    let env = |name: &str| config.environment.get(name);
    // One KMS hub (clients and data key cache) for every namespace, made
    // only when some namespace encrypts under a KEK.
    let kms_settings = config.kms.clone().unwrap_or_default();
    let uses_kek = config
        .default
        .iter()
        .chain(config.namespaces.values())
        .any(|ns| !ns.refuse && kms_settings.active_kek(&ns.kek_policy()).is_some());
    let kms: Option<Arc<Kms>> = if uses_kek {
        Some(
            kms_settings
                .build(&env, &|path| config.resolve(path))
                .map_err(BuildError::Kms)?,
        )
    } else {
        None
    };
    let mut build = |section: &str, ns: &NamespaceConfig| -> Result<NamespacePolicy, BuildError> {
        let keyring = match &ns.keyring {
            Some(path) => {
                let path = config.resolve(path);
                match keyrings.get(&path) {
                    Some(k) => Some(k.clone()),
                    None => {
                        let loaded = Arc::new(Keyring::load(&path, &env).map_err(|source| {
                            BuildError::Keyring {
                                section: section.to_owned(),
                                source: Box::new(source),
                            }
                        })?);
                        keyrings.insert(path, loaded.clone());
                        Some(loaded)
                    }
                }
            }
            None => None,
        };
        let encryption =
            encryption(&kms_settings, kms.as_ref(), ns, keyring).map_err(|source| {
                BuildError::Kek {
                    section: section.to_owned(),
                    source,
                }
            })?;
        // Fails closed: a chain that encrypts without a keyring or a KEK
        // is an error here too, not only in `Config::validate`.
        let chain = ChainBuilder::from_names_with(&ns.chain, encryption).map_err(|source| {
            BuildError::Chain {
                section: section.to_owned(),
                source,
            }
        })?;
        let auth = match &ns.auth {
            AuthConfig::None => Auth::None,
            AuthConfig::Bearer {
                token_sha256,
                read_only_token_sha256,
            } => Auth::Bearer(
                BearerTokens::from_hashes(token_sha256, read_only_token_sha256).map_err(
                    |source| BuildError::Token {
                        section: section.to_owned(),
                        source,
                    },
                )?,
            ),
            AuthConfig::Jwt(settings) => Auth::Jwt(JwtAuth::new(settings.clone())),
        };
        let codec: Arc<dyn PayloadCodec> = Arc::new(chain);
        let storage = match &ns.storage {
            Some(settings) => {
                let storage =
                    settings
                        .build(&env, &|path| config.resolve(path))
                        .map_err(|source| BuildError::Storage {
                            section: section.to_owned(),
                            source,
                        })?;
                Some(StorageCodec::new(codec.clone(), Arc::new(storage)))
            }
            None => None,
        };
        Ok(NamespacePolicy {
            codec,
            storage,
            may_inflate: ns
                .chain
                .iter()
                .any(|name| matches!(name, CodecName::Zstd | CodecName::Zlib | CodecName::Gzip)),
            auth,
        })
    };
    let default = match &config.default {
        Some(ns) if !ns.refuse => Some(build("default", ns)?),
        _ => None,
    };
    let mut table = NamespaceTable::new(default);
    table.set_kms(kms.clone());
    for (name, ns) in &config.namespaces {
        if ns.refuse {
            table.refuse(name.clone());
        } else {
            table.insert(name.clone(), build(&format!("namespaces.{name}"), ns)?);
        }
    }
    Ok(table)
}

/// What `encrypt` means for a namespace: envelope encryption under its KEK
/// (reading keyring payloads with its keyring, if any), else its keyring.
fn encryption(
    settings: &KmsSettings,
    kms: Option<&Arc<Kms>>,
    ns: &NamespaceConfig,
    keyring: Option<Arc<Keyring>>,
) -> Result<Option<Arc<dyn PayloadCodec>>, payload_kms::KmsError> {
    if let Some(kms) = kms
        && let Some(envelope) = settings.envelope(kms, &ns.kek_policy(), keyring.clone())?
    {
        return Ok(Some(Arc::new(envelope)));
    }
    Ok(keyring.map(|k| Arc::new(AesGcmCodec::new(k)) as Arc<dyn PayloadCodec>))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_that_encrypts_without_a_keyring_is_refused_even_unvalidated() {
        // Built by hand, never validated: the table must still not serve
        // `/encode` in the clear.
        let mut config = Config::development(PathBuf::from("unused.toml"));
        config.default = Some(NamespaceConfig {
            keyring: None,
            chain: vec![CodecName::Zstd, CodecName::Encrypt],
            auth: AuthConfig::None,
            refuse: false,
            storage: None,
            kek: None,
            decrypt_keks: Vec::new(),
        });
        let err = build_namespaces(&config).unwrap_err();
        assert!(
            matches!(
                &err,
                BuildError::Chain {
                    source: ChainError::EncryptWithoutKeyring,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            "[default] chain: the chain names `encrypt` but no keyring was given; give the \
             keyring to encrypt with"
        );
    }
}
