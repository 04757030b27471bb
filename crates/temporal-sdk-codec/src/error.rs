//! [`SdkCodecError`]: a payloadkit codec failed inside the Temporal SDK.

use std::fmt;

use payload_converter::PayloadCodecError;

/// Which way a batch was going through the codec.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Before the payloads are sent to the server.
    Encode,
    /// After the payloads are received from the server.
    Decode,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Encode => "encode",
            Self::Decode => "decode",
        })
    }
}

/// A payloadkit codec failed on a batch the SDK gave it.
///
/// The SDK receives it as
/// `PayloadConversionError::EncodingError(Box<SdkCodecError>)` and prints
/// it with `Display`, so the message names the codec and carries our
/// codec's own message (with the payload's index); the typed
/// [`PayloadCodecError`] (its [`CodecErrorKind`](payload_converter::CodecErrorKind),
/// its index) is the `source` and [`SdkCodecError::codec_error`]. Like every
/// payloadkit error, it never holds payload data or key bytes.
#[derive(Debug, thiserror::Error)]
#[error("payloadkit codec `{codec}` could not {direction} the payloads: {source}")]
pub struct SdkCodecError {
    codec: String,
    direction: Direction,
    source: PayloadCodecError,
}

impl SdkCodecError {
    pub(crate) fn new(codec: &str, direction: Direction, source: PayloadCodecError) -> Self {
        Self {
            codec: codec.to_owned(),
            direction,
            source,
        }
    }

    /// The name of the codec (chain) that failed, e.g. `aes-256-gcm > zstd`.
    pub fn codec(&self) -> &str {
        &self.codec
    }

    /// Whether encoding or decoding failed.
    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// The codec's typed error.
    pub fn codec_error(&self) -> &PayloadCodecError {
        &self.source
    }
}
