//! [`KmsError`]: what went wrong with a KEK, a KMS call or an envelope
//! payload, classified for callers by [`KmsError::kind`].

use payload_codecs::CodecError;
use payload_converter::{CodecErrorKind, PayloadCodecError};

/// An envelope encryption failure.
///
/// Messages never hold key material: KEK URIs that carry a key are shown
/// as `base64key://<hidden>`, and ids read from payloads are shortened
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
    /// The KMS refused this process (no such key, no permission, expired
    /// credentials, a disabled key): not the payload's fault.
    #[error(
        "the KMS refused to {op} a data key with KEK `{kek}`: {cause}; check that the key \
         exists and is enabled, and that this server's credentials may use it"
    )]
    Refused {
        /// The KEK, as shown.
        kek: String,
        /// `wrap` or `unwrap`.
        op: &'static str,
        /// What the KMS said.
        cause: String,
    },
    /// The KMS could not unwrap a payload's data key: the wrapped key was
    /// not made by this KEK, or was changed.
    #[error(
        "the payload's data key does not unwrap with KEK `{kek}`: {cause}; its \
         `encryption-dek` was made by another key or was changed"
    )]
    Rejected {
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
    /// A payload's `encryption-dek` is not base64, is empty, or is longer
    /// than any KMS's wrapped key.
    #[error(
        "the payload's `encryption-dek` metadata is not a base64 wrapped data key (of at most \
         8 KiB); the payload is corrupted"
    )]
    BadWrappedKey,
    /// A request names more distinct data keys than one request may make
    /// the server unwrap.
    #[error("the payloads name more than {limit} distinct data keys; send them in smaller batches")]
    TooManyDataKeys {
        /// The limit.
        limit: usize,
    },
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
            KmsError::Unavailable { .. } | KmsError::Refused { .. } => CodecErrorKind::Unavailable,
            KmsError::UnknownKek { .. } | KmsError::NoKeyring { .. } => CodecErrorKind::UnknownKey,
            KmsError::BadWrappedKey
            | KmsError::WrongKeyLength { .. }
            | KmsError::Rejected { .. } => CodecErrorKind::InvalidPayload,
            KmsError::TooManyDataKeys { .. } => CodecErrorKind::LimitExceeded,
            KmsError::InvalidUri { .. }
            | KmsError::UnsupportedScheme { .. }
            | KmsError::NotConfigured { .. } => CodecErrorKind::Internal,
            KmsError::Codec(err) => err.kind(),
        }
    }
}

impl KmsError {
    /// The KEK a KMS fault is about (as shown: no key material).
    pub fn kek(&self) -> Option<&str> {
        match self {
            KmsError::Unavailable { kek, .. }
            | KmsError::Refused { kek, .. }
            | KmsError::Rejected { kek, .. }
            | KmsError::UnknownKek { kek }
            | KmsError::NotConfigured { kek, .. } => Some(kek),
            _ => None,
        }
    }

    /// The error for a KEK's failure at `op` (`wrap` or `unwrap`).
    pub(crate) fn from_kek(kek: &crate::KekUri, op: &'static str, err: KekError) -> Self {
        let kek = kek.to_string();
        match err {
            KekError::Transient(cause) => KmsError::Unavailable { kek, op, cause },
            KekError::Refused(cause) => KmsError::Refused { kek, op, cause },
            KekError::Rejected(cause) => KmsError::Rejected { kek, cause },
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
    /// Not worth retrying: the KMS refused this process (no such key, no
    /// permission, a disabled key, bad credentials).
    #[error("{0}")]
    Refused(String),
    /// Not worth retrying: the wrapped key is not one this KEK made (the
    /// payload's fault).
    #[error("{0}")]
    Rejected(String),
}
