//! Errors of the codecs ([`CodecError`]) and of keyring handling
//! ([`KeyringError`], [`KeyIdError`]).
//!
//! No error of this crate ever holds key bytes or key material text: a bad
//! key is described by its id, its source and its length only.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use payload_converter::{BudgetError, CodecErrorKind, PayloadCodecError};

use crate::keyring::KeyId;

/// Longest part of an untrusted key id (read from a payload) shown in an
/// error message.
const SHOWN_KEY_ID_CHARS: usize = 128;

/// A codec failed on one payload.
///
/// Converted into [`PayloadCodecError`] (with [`CodecError::kind`] and the
/// payload's index) by the codecs; callers can get it back with
/// `payload_codec_error.inner().downcast_ref::<CodecError>()`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// A `binary/encrypted` payload has no `encryption-key-id` metadata.
    #[error(
        "encrypted payload has no `encryption-key-id` metadata; \
         it was not written by a Temporal encryption codec"
    )]
    MissingKeyId,
    /// The `encryption-key-id` metadata is not UTF-8 text.
    #[error(
        "encrypted payload's `encryption-key-id` metadata is not UTF-8 text; \
         the payload is corrupted or was not written by a Temporal encryption codec"
    )]
    KeyIdNotUtf8,
    /// The payload names a key id the keyring does not hold.
    #[error(
        "unknown encryption key id `{}`: add the key with this id to the keyring \
         to decode the payload",
        shown_key_id(.key_id)
    )]
    UnknownKeyId {
        /// The id named by the payload (any UTF-8 text: it comes from the
        /// payload, so it need not be a valid [`KeyId`]).
        key_id: String,
    },
    /// An envelope-encrypted payload (the Temporal Proxy's format, with
    /// `encryption-dek`) reached a codec that has only a keyring.
    #[error(
        "the payload is envelope-encrypted (Temporal Proxy format) under the KMS key `{}`; \
         configure that key encryption key to decode it (docs/key-management.md)",
        shown_key_id(.kek)
    )]
    EnvelopeNeedsKek {
        /// The KEK the payload names (from the payload: any text).
        kek: String,
    },
    /// Encrypted data too short to hold a nonce and a tag.
    #[error(
        "encrypted payload data is {len} bytes, shorter than the 28 bytes of nonce and tag; \
         the payload is truncated or corrupted"
    )]
    Truncated {
        /// The data length.
        len: usize,
    },
    /// AES-GCM authentication failed.
    #[error(
        "cannot decrypt payload with key `{key_id}`: authentication failed; the payload was \
         corrupted or encrypted with a different key that has the same id"
    )]
    Decrypt {
        /// The key that was tried.
        key_id: KeyId,
    },
    /// AES-GCM authentication failed on an envelope payload.
    #[error(
        "cannot decrypt the envelope payload under KEK `{}`: authentication failed; the \
         payload or its `encryption-dek` was changed",
        shown_key_id(.kek)
    )]
    DecryptEnvelope {
        /// The KEK the payload names, as shown.
        kek: String,
    },
    /// The decrypted or decompressed bytes are not a serialized `Payload`.
    #[error(
        "the {encoding} payload does not contain a valid serialized Payload: {source}; \
         it was written by an incompatible codec"
    )]
    InvalidInnerPayload {
        /// The outer encoding, e.g. `binary/encrypted`.
        encoding: &'static str,
        /// What prost found wrong.
        #[source]
        source: prost::DecodeError,
    },
    /// Compressed data is corrupted.
    #[error("cannot decompress the {encoding} payload: {source}; the payload is corrupted")]
    Corrupt {
        /// The encoding, e.g. `binary/zstd`.
        encoding: &'static str,
        /// The decompressor's error.
        #[source]
        source: io::Error,
    },
    /// Decompressed data would exceed the configured maximum size.
    #[error(
        "the {encoding} payload decompresses to more than {limit} bytes, the configured \
         maximum; raise the codec's maximum decoded size if the payload is legitimate"
    )]
    TooLarge {
        /// The encoding, e.g. `binary/zlib`.
        encoding: &'static str,
        /// The configured maximum decoded size in bytes.
        limit: usize,
    },
    /// The system random number generator failed (no nonce could be made).
    #[error("the system random number generator failed; cannot make a nonce")]
    Random,
    /// Encryption failed (the payload is too large for AES-GCM).
    #[error("AES-256-GCM encryption failed: the payload is too large")]
    Encrypt,
    /// The payload could not be serialized.
    #[error("cannot serialize the payload: {source}")]
    Serialize {
        /// prost's error.
        #[source]
        source: prost::EncodeError,
    },
    /// Compression failed.
    #[error("cannot compress payload with {encoding}: {source}")]
    Compress {
        /// The encoding, e.g. `binary/zstd`.
        encoding: &'static str,
        /// The compressor's error.
        #[source]
        source: io::Error,
    },
    /// The call's [`Budget`](payload_converter::Budget) refused the memory
    /// a buffer needs, or the call was cancelled.
    #[error(transparent)]
    Budget(#[from] BudgetError),
}

impl CodecError {
    /// How the codec-trait layer classifies this error.
    pub fn kind(&self) -> CodecErrorKind {
        match self {
            CodecError::MissingKeyId
            | CodecError::KeyIdNotUtf8
            | CodecError::Truncated { .. }
            | CodecError::Decrypt { .. }
            | CodecError::DecryptEnvelope { .. }
            | CodecError::InvalidInnerPayload { .. }
            | CodecError::Corrupt { .. } => CodecErrorKind::InvalidPayload,
            CodecError::UnknownKeyId { .. } | CodecError::EnvelopeNeedsKek { .. } => {
                CodecErrorKind::UnknownKey
            }
            CodecError::TooLarge { .. } => CodecErrorKind::LimitExceeded,
            CodecError::Random
            | CodecError::Encrypt
            | CodecError::Serialize { .. }
            | CodecError::Compress { .. } => CodecErrorKind::Internal,
            CodecError::Budget(err) => err.kind(),
        }
    }
}

impl From<CodecError> for PayloadCodecError {
    fn from(err: CodecError) -> Self {
        PayloadCodecError::new(err.kind(), err)
    }
}

/// An untrusted key id, escaped and shortened for an error message.
pub fn shown_key_id(key_id: &str) -> String {
    let mut shown: String = key_id
        .chars()
        .take(SHOWN_KEY_ID_CHARS)
        .flat_map(char::escape_debug)
        .collect();
    if key_id.chars().count() > SHOWN_KEY_ID_CHARS {
        shown.push('…');
    }
    shown
}

/// A text is not a valid [`KeyId`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyIdError {
    /// The id is empty.
    #[error("key id is empty; give a name such as `key-2026-11`")]
    Empty,
    /// The id is longer than 128 characters.
    #[error("key id is {len} characters long; the maximum is 128")]
    TooLong {
        /// Its length.
        len: usize,
    },
    /// The id holds a character other than printable ASCII without space.
    #[error(
        "key id `{}` contains {found:?}; use printable ASCII without spaces \
         (letters, digits, `-`, `_`, `.`, ...)",
        shown_key_id(.id)
    )]
    InvalidChar {
        /// The id as given.
        id: String,
        /// The first character not allowed.
        found: char,
    },
}

/// Loading, checking, changing or saving a keyring failed.
///
/// Displays as `<file>:<line>: <what>` when the error comes from a keyring
/// file (`<file>: <what>` when no line applies), or as `<what>` for keyrings
/// built in memory.
#[derive(Debug)]
pub struct KeyringError {
    path: Option<PathBuf>,
    line: Option<usize>,
    kind: KeyringErrorKind,
}

impl KeyringError {
    pub(crate) fn new(kind: KeyringErrorKind) -> Self {
        Self {
            path: None,
            line: None,
            kind,
        }
    }

    /// Adds the keyring file path (keeps one already set).
    pub(crate) fn in_file(mut self, path: &Path) -> Self {
        self.path.get_or_insert_with(|| path.to_owned());
        self
    }

    /// Adds the 1-based line in the keyring file (keeps one already set).
    pub(crate) fn at_line(mut self, line: Option<usize>) -> Self {
        if self.line.is_none() {
            self.line = line;
        }
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> &KeyringErrorKind {
        &self.kind
    }

    /// The keyring file, when the error comes from one.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The 1-based line in the keyring file, when known.
    pub fn line(&self) -> Option<usize> {
        self.line
    }
}

impl fmt::Display for KeyringError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.path, self.line) {
            (Some(path), Some(line)) => write!(f, "{}:{line}: ", path.display())?,
            (Some(path), None) => write!(f, "{}: ", path.display())?,
            (None, Some(line)) => write!(f, "line {line}: ")?,
            (None, None) => {}
        }
        write!(f, "{}", self.kind)
    }
}

impl std::error::Error for KeyringError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.kind.source()
    }
}

impl From<KeyringErrorKind> for KeyringError {
    fn from(kind: KeyringErrorKind) -> Self {
        Self::new(kind)
    }
}

/// What went wrong with a keyring; see [`KeyringError`] for where.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyringErrorKind {
    /// The keyring file could not be read.
    #[error("cannot read the keyring file: {0}")]
    Read(#[source] io::Error),
    /// The keyring file could not be written.
    #[error("cannot write the keyring file: {0}")]
    Write(#[source] io::Error),
    /// The file is not valid TOML or does not have the keyring's fields.
    #[error("invalid keyring file: {message}; see docs/keyring.md for the format")]
    Syntax {
        /// The TOML parser's message (never holds key material).
        message: String,
    },
    /// A key id is not valid.
    #[error(transparent)]
    InvalidKeyId(#[from] KeyIdError),
    /// A key entry gives no key material.
    #[error(
        "key `{key_id}` has no key material; give exactly one of `base64`, `hex`, `file` or `env`"
    )]
    NoKeySource {
        /// The key.
        key_id: KeyId,
    },
    /// A key entry gives more than one source of key material.
    #[error(
        "key `{key_id}` has more than one of `base64`, `hex`, `file` and `env`; give exactly one"
    )]
    ManyKeySources {
        /// The key.
        key_id: KeyId,
    },
    /// Key material is not valid base64 or hex.
    #[error(
        "key `{key_id}`: the {source_kind} is not valid {format}; \
         a key is 32 bytes as standard base64 (44 characters) or hex (64 characters)"
    )]
    BadKeyEncoding {
        /// The key.
        key_id: KeyId,
        /// Where the text came from, e.g. "`base64` value", "environment variable `K`".
        source_kind: String,
        /// `base64` or `hex`.
        format: &'static str,
    },
    /// A key does not have 32 bytes.
    #[error(
        "key `{key_id}` is {len} bytes; AES-256-GCM needs 32 bytes \
         (44 characters of base64 or 64 of hex); use a 32-byte random key"
    )]
    WrongKeyLength {
        /// The key.
        key_id: KeyId,
        /// Its length in bytes.
        len: usize,
    },
    /// A key file could not be read.
    #[error("key `{key_id}`: cannot read key file {}: {source}", path.display())]
    KeyFile {
        /// The key.
        key_id: KeyId,
        /// The key file, resolved against the keyring file's folder.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// An environment variable named by a key is not set (or not Unicode).
    #[error("key `{key_id}`: environment variable `{var}` is not set; set it to the key as base64")]
    EnvVarMissing {
        /// The key.
        key_id: KeyId,
        /// The variable's name.
        var: String,
    },
    /// Two keys have the same id.
    #[error("key id `{key_id}` appears more than once; key ids must be unique")]
    DuplicateKeyId {
        /// The repeated id.
        key_id: KeyId,
    },
    /// The active key is not among the keys.
    #[error(
        "active key `{key_id}` is not in the keyring; add a [[keys]] entry with this id \
         or set `active` to one of the listed keys"
    )]
    ActiveKeyMissing {
        /// The id named as active.
        key_id: KeyId,
    },
    /// A key asked for by id is not in the keyring.
    #[error("no key `{key_id}` in the keyring")]
    NoSuchKey {
        /// The id asked for.
        key_id: KeyId,
    },
    /// The active key cannot be retired.
    #[error(
        "key `{key_id}` is the active key and cannot be retired; make another key active first"
    )]
    RetireActive {
        /// The active key's id.
        key_id: KeyId,
    },
    /// The system random number generator failed.
    #[error("cannot generate a key: the system random number generator failed")]
    Random,
}
