//! Envelope encryption for Temporal payloads, in the format of the Temporal
//! Proxy 1.0: each payload is encrypted with AES-256-GCM under a data key,
//! and the data key, wrapped by a key-encryption key (KEK) held in a KMS,
//! travels with it in `encryption-dek`.
//!
//! - [`EnvelopeCodec`]: the `binary/encrypted` codec of a namespace. It
//!   reuses one data key for a configured time (renewed before it ends),
//!   decrypts under the active KEK and decrypt-only KEKs (rotation), and
//!   hands keyring-format payloads (no `encryption-dek`) to a keyring codec,
//!   so both formats decode from one chain.
//! - [`Kms`]: the KEKs ([`KekUri`]: `awskms://`, `hashivault://`,
//!   `keyring://`, `testing://`), KMS calls with retries and backoff, the
//!   cache of unwrapped data keys (one KMS call per data key, not per
//!   payload), and [`KmsStats`].
//! - [`KmsSettings`]: all of it from configuration.
//!
//! Cargo features: `vault` (Vault/OpenBao transit over HTTP) and `aws` (AWS
//! KMS). Without them only the local KEKs (`keyring://`, `testing://`)
//! exist. Data keys are zeroized when dropped and never logged; KEK URIs
//! that carry a key are never shown.
//!
//! ```
//! use std::sync::Arc;
//!
//! use payload_converter::{PayloadCodec, PayloadExt};
//! use payload_kms::{EnvelopeBuilder, Kms, KmsOptions};
//! use payload_proto::temporal::api::common::v1::Payload;
//!
//! # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
//! let kms = Arc::new(Kms::new(KmsOptions::default()));
//! let kek = "testing://AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
//! let codec = EnvelopeBuilder::new(kms.clone(), kek).build()?;
//!
//! let plain = Payload::with_encoding("json/plain", &br#""hello""#[..]);
//! let sealed = codec.encode(vec![plain.clone(); 3]).await?;
//! assert_eq!(sealed[0].encoding(), Some("binary/encrypted"));
//! assert!(sealed[0].metadata_str("encryption-dek").is_some());
//! assert_eq!(codec.decode(sealed).await?, vec![plain; 3]);
//! // One data key wrapped, none unwrapped: this process made it.
//! assert_eq!((kms.stats().wraps, kms.stats().unwraps), (1, 0));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#[cfg(feature = "aws")]
mod aws;
mod envelope;
mod error;
#[cfg(feature = "vault")]
mod http;
mod kek;
mod kms;
mod options;
mod settings;
mod uri;
#[cfg(feature = "vault")]
mod vault;

pub use envelope::{
    DEFAULT_DATA_KEY_TTL, DEFAULT_RENEW_BEFORE, EnvelopeBuilder, EnvelopeCodec,
    MAX_DATA_KEYS_PER_BATCH,
};
pub use error::{KekError, KmsError};
pub use kek::KeyEncryptionKey;
pub use kms::{Kek, Kms, KmsStats};
pub use options::{
    AwsAccess, DEFAULT_ATTEMPTS, DEFAULT_CACHE_SIZE, DEFAULT_CACHE_TTL, DEFAULT_CALL_TIMEOUT,
    KmsOptions, VaultAccess,
};
pub use settings::{AwsSettings, KekPolicy, KmsSettings, SettingsError, VaultSettings};
pub use uri::{KekKind, KekUri, is_aws_kek, shown as shown_kek};
