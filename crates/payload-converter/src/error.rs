//! Errors of the payload converters, the failure converter and the codec
//! trait.

use std::error::Error as StdError;
use std::fmt;

use payload_proto::temporal::api::common::v1::Payload;

/// A boxed error from a codec implementation, kept as the `source` of a
/// [`PayloadCodecError`].
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Turning a value into a payload, or a payload into a value, failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConversionError {
    /// The payload has no `encoding` metadata.
    #[error(
        "payload has no `encoding` metadata: it was not written by a Temporal payload converter"
    )]
    MissingEncoding,
    /// No converter in the composite handles the payload's encoding.
    #[error(
        "no payload converter for encoding `{encoding}`; if it is a codec's encoding \
         (compressed or encrypted), decode the payload with that codec first"
    )]
    UnknownEncoding {
        /// The encoding named by the payload (lossily decoded as UTF-8).
        encoding: String,
    },
    /// No converter accepted the value.
    #[error("no payload converter accepts a {kind} value; add a converter for it")]
    Unsupported {
        /// What kind of value it was.
        kind: &'static str,
    },
    /// A converter that requires `messageType` metadata did not find it.
    #[error(
        "payload with encoding `{encoding}` has no `messageType` metadata, which is needed to decode it"
    )]
    MissingMessageType {
        /// The payload's encoding.
        encoding: &'static str,
    },
    /// The payload holds a different protobuf message than asked for.
    #[error("payload holds protobuf message `{found}`, expected `{expected}`")]
    MessageTypeMismatch {
        /// The message type the caller asked for.
        expected: String,
        /// The `messageType` metadata of the payload.
        found: String,
    },
    /// The payload's encoding cannot produce the requested Rust type.
    #[error("cannot read a payload with encoding `{encoding}` as {target}")]
    TypeMismatch {
        /// The payload's encoding.
        encoding: &'static str,
        /// What was asked for.
        target: &'static str,
    },
    /// A `binary/null` payload carries data.
    #[error("`binary/null` payload carries {len} bytes of data; it must be empty")]
    NullWithData {
        /// How many bytes it carries.
        len: usize,
    },
    /// JSON could not be written or read; the message has line and column.
    #[error("invalid JSON in payload: {0}")]
    Json(#[from] serde_json::Error),
    /// Protobuf binary could not be decoded.
    #[error("invalid protobuf binary in payload: {0}")]
    Protobuf(#[from] prost::DecodeError),
    /// A metadata value that must be UTF-8 text is not.
    #[error("metadata `{key}` is not valid UTF-8")]
    MetadataNotUtf8 {
        /// The metadata key.
        key: &'static str,
    },
}

/// What went wrong in a [`PayloadCodec`](crate::PayloadCodec), classified so
/// that callers (an HTTP server, a CLI) can tell their faults from the input's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CodecErrorKind {
    /// The payload is malformed for this codec: truncated, corrupted, failed
    /// authentication, missing metadata.
    InvalidPayload,
    /// The payload names a key (or other resource) this codec does not have.
    UnknownKey,
    /// Processing the payload would exceed a configured limit (for example a
    /// decompression bomb).
    LimitExceeded,
    /// The codec broke its contract (for example changed the batch size).
    Contract,
    /// A resource shared by all callers is exhausted for now (see
    /// [`MemoryPool`](crate::MemoryPool)): neither the input's fault nor a
    /// bug; retry later.
    Busy,
    /// The caller cancelled the call (see [`Budget::cancel`](crate::Budget::cancel)).
    Cancelled,
    /// A service the codec depends on (a KMS, a key store) cannot be
    /// reached or refused to serve, after retries: neither the input's fault
    /// nor a bug; retry later.
    Unavailable,
    /// Anything else: an internal or environmental failure.
    Internal,
}

impl CodecErrorKind {
    /// Whether the input, rather than the codec or its environment, is at
    /// fault (so an HTTP server answers 4xx, not 500).
    pub fn is_input_fault(self) -> bool {
        matches!(
            self,
            Self::InvalidPayload | Self::UnknownKey | Self::LimitExceeded
        )
    }
}

/// A [`PayloadCodec`](crate::PayloadCodec) failed on a batch.
///
/// Carries a [`CodecErrorKind`], the index of the failing payload in the
/// batch when known, and the codec's own typed error as `source`, which
/// callers can downcast.
#[derive(Debug)]
pub struct PayloadCodecError {
    kind: CodecErrorKind,
    index: Option<usize>,
    source: BoxError,
}

impl PayloadCodecError {
    /// An error of `kind` caused by `source`.
    pub fn new(kind: CodecErrorKind, source: impl Into<BoxError>) -> Self {
        Self {
            kind,
            index: None,
            source: source.into(),
        }
    }

    /// Records which payload of the batch failed (0-based). Keeps an index
    /// already set by an inner layer.
    #[must_use]
    pub fn at_index(mut self, index: usize) -> Self {
        self.index.get_or_insert(index);
        self
    }

    /// The class of failure.
    pub fn kind(&self) -> CodecErrorKind {
        self.kind
    }

    /// Which payload of the batch failed (0-based), when known.
    pub fn index(&self) -> Option<usize> {
        self.index
    }

    /// The codec's own error.
    pub fn inner(&self) -> &(dyn StdError + Send + Sync + 'static) {
        &*self.source
    }
}

impl fmt::Display for PayloadCodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(index) = self.index {
            write!(f, "payload {index}: ")?;
        }
        write!(f, "{}", self.source)
    }
}

impl StdError for PayloadCodecError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&*self.source)
    }
}

/// A codec changed the size of a batch.
#[derive(Debug, thiserror::Error)]
#[error(
    "codec `{codec}` returned {actual} payloads for a batch of {expected}; \
     a codec must keep the count and order of the payloads it is given"
)]
pub struct CountMismatch {
    /// The codec's name.
    pub codec: String,
    /// How many payloads went in.
    pub expected: usize,
    /// How many came out.
    pub actual: usize,
}

impl CountMismatch {
    /// Checks the codec contract: the codec named `codec`, given a batch of
    /// `expected` payloads, returned `out` with as many. A
    /// [`CodecErrorKind::Contract`] error otherwise.
    pub fn check(
        codec: &str,
        expected: usize,
        out: Vec<Payload>,
    ) -> Result<Vec<Payload>, PayloadCodecError> {
        if out.len() == expected {
            return Ok(out);
        }
        Err(PayloadCodecError::new(
            CodecErrorKind::Contract,
            Self {
                codec: codec.to_owned(),
                expected,
                actual: out.len(),
            },
        ))
    }
}

/// An error and its causes as one line, `: `-separated, for people: a
/// cause whose text the line already holds (errors that put their source in
/// their own message) is not repeated.
pub fn error_text(err: &(dyn StdError + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// A [`DataConverter`](crate::DataConverter) operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataConverterError {
    /// Converting value `index` (0-based) to or from a payload failed.
    #[error("value {index}: {source}")]
    Conversion {
        /// Position in the list of values or payloads.
        index: usize,
        /// What failed.
        #[source]
        source: ConversionError,
    },
    /// The codec chain failed.
    #[error(transparent)]
    Codec(#[from] PayloadCodecError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_text_joins_causes_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("cannot read f: {source}")]
        struct Repeats {
            source: std::io::Error,
        }
        #[derive(Debug, thiserror::Error)]
        #[error("loading failed")]
        struct Terse {
            source: Repeats,
        }
        let err = Terse {
            source: Repeats {
                source: std::io::Error::other("gone"),
            },
        };
        assert_eq!(error_text(&err), "loading failed: cannot read f: gone");
    }

    #[test]
    fn codec_error_names_the_payload_and_keeps_the_first_index() {
        let err = PayloadCodecError::new(CodecErrorKind::UnknownKey, "unknown key id `k2`")
            .at_index(3)
            .at_index(7);
        assert_eq!(err.to_string(), "payload 3: unknown key id `k2`");
        assert_eq!(err.index(), Some(3));
        assert!(err.kind().is_input_fault());
        assert!(!CodecErrorKind::Internal.is_input_fault());
    }
}
