//! [`KmsError`]: what went wrong with a KEK, a KMS call or an envelope
//! payload, classified for callers by [`KmsError::kind`].

use payload_codecs::CodecError;
use payload_converter::{CodecErrorKind, PayloadCodecError};

/// An envelope encryption failure.
///
/// Messages never hold key material: KEK URIs that carry a key are shown
/// as `base64key://<key hidden>`, and ids read from payloads are shortened
/// and escaped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KmsError {
    /// A KEK URI is malformed.
    #[error("invalid KEK URI `{uri}`: {reason}")]
    InvalidUri {
        /// The URI, as shown.
        uri: String,
        /// What is wrong and what to write.
        reason: String,
    },
    /// A KEK URI of a KMS payloadkit does not talk to.
    #[error(
        "KEK scheme `{scheme}://` is not supported: payloadkit talks to AWS KMS (awskms://), \
         Vault/OpenBao transit (hashivault://, vault://) and keyring files (keyring://)"
    )]
    UnsupportedScheme {
        /// The scheme.
        scheme: String,
    },
    /// A KEK needs settings that were not given (the Vault address, the
    /// keyring file, AWS credentials, or a cargo feature).
    #[error("KEK `{kek}`: {missing}")]
    NotConfigured {
        /// The KEK, as shown.
        kek: String,
        /// What to configure.
        missing: String,
    },
    /// The KMS could not be reached or failed, after retries.
    #[error("the KMS for KEK `{kek}` is unavailable ({op}): {cause}; retry later")]
    Unavailable {
        /// The KEK, as shown.
        kek: String,
        /// `wrap` or `unwrap`.
        op: &'static str,
        /// The last failure.
        cause: String,
    },
    /// The KMS refused to wrap a new data key (no such key, no permission).
    #[error(
        "the KMS refused to wrap a data key with KEK `{kek}`: {cause}; check that the key \
         exists and that this server's credentials may use it"
    )]
    WrapRefused {
        /// The KEK, as shown.
        kek: String,
        /// What the KMS said.
        cause: String,
    },
    /// The KMS refused to unwrap a payload's data key (not its ciphertext,
    /// no permission, no such key).
    #[error("the KMS refused to unwrap the payload's data key with KEK `{kek}`: {cause}")]
    UnwrapRefused {
        /// The KEK, as shown.
        kek: String,
        /// What the KMS said.
        cause: String,
    },
    /// A payload names a KEK this codec may not use.
    #[error(
        "the payload's data key is wrapped by KEK `{kek}`, which this namespace does not use; \
         add it to `decrypt_keks` to decode payloads written under it"
    )]
    UnknownKek {
        /// The KEK named by the payload, as shown.
        kek: String,
    },
    /// A payload's `encryption-dek` is not base64 or is empty.
    #[error(
        "the payload's `encryption-dek` metadata is not a base64 wrapped data key; \
         the payload is corrupted"
    )]
    BadWrappedKey,
    /// An unwrapped data key is not 32 bytes.
    #[error("the unwrapped data key is {len} bytes, not 32; the payload is corrupted")]
    WrongKeyLength {
        /// Its length.
        len: usize,
    },
    /// A payload in the keyring format reached a codec without a keyring.
    #[error(
        "the payload is encrypted with keyring key `{key_id}` (keyring format, no \
         `encryption-dek`); give this namespace a keyring to decode it"
    )]
    NoKeyring {
        /// The key id named by the payload, as shown.
        key_id: String,
    },
    /// AES-GCM or the keyring codec failed.
    #[error(transparent)]
    Codec(#[from] CodecError),
}

impl KmsError {
    /// How the codec-trait layer classifies this error.
    pub fn kind(&self) -> CodecErrorKind {
        match self {
            KmsError::Unavailable { .. } | KmsError::WrapRefused { .. } => {
                CodecErrorKind::Unavailable
            }
            KmsError::UnknownKek { .. }
            | KmsError::NoKeyring { .. }
            | KmsError::UnwrapRefused { .. } => CodecErrorKind::UnknownKey,
            KmsError::BadWrappedKey | KmsError::WrongKeyLength { .. } => {
                CodecErrorKind::InvalidPayload
            }
            KmsError::InvalidUri { .. }
            | KmsError::UnsupportedScheme { .. }
            | KmsError::NotConfigured { .. } => CodecErrorKind::Internal,
            KmsError::Codec(err) => err.kind(),
        }
    }
}

impl From<KmsError> for PayloadCodecError {
    fn from(err: KmsError) -> Self {
        PayloadCodecError::new(err.kind(), err)
    }
}

/// A KEK provider's failure, before retries.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KekError {
    /// Worth retrying: no connection, a timeout, throttling, a 5xx, a
    /// sealed Vault.
    #[error("{0}")]
    Transient(String),
    /// Not worth retrying: the KMS answered no.
    #[error("{0}")]
    Refused(String),
}
