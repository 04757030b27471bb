//! [`ZstdCodec`]: zstd compression of whole payloads, with a size threshold
//! and a bound on decompressed size.
//!
//! A compressed payload is
//! `Payload { metadata: {"encoding": "binary/zstd"}, data: zstd(serialized inner Payload) }`
//! (one zstd frame with the content size in its header).

use payload_converter::{BoxFuture, PayloadCodec, PayloadCodecError};
use payload_proto::temporal::api::common::v1::Payload;

use crate::compressed::{self, Compression, DEFAULT_MAX_DECODED_SIZE, read_bounded};
use crate::error::CodecError;

/// The encoding of zstd-compressed payloads.
pub const ENCODING_ZSTD: &str = "binary/zstd";

/// Default zstd compression level (zstd's own default).
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;

/// Default threshold: serialized payloads smaller than 1 KiB are not
/// compressed (the gain is small and the frame overhead relatively large).
pub const DEFAULT_ZSTD_MIN_SIZE: usize = 1024;

/// Smallest decoder window limit, as a power of two (8 MiB): enough for
/// frames written at any standard level by streaming encoders.
const MIN_WINDOW_LOG_MAX: u32 = 23;

/// Compresses payloads with zstd when they are at least
/// [`min_size`](ZstdCodec::with_min_size) bytes serialized and the result is
/// smaller; otherwise passes them through unchanged. Decoding passes through
/// payloads that are not `binary/zstd`, and refuses to decompress more than
/// [`max_decoded_size`](ZstdCodec::with_max_decoded_size) bytes
/// ([`CodecError::TooLarge`], kind `LimitExceeded`).
///
/// Defaults: level [`DEFAULT_ZSTD_LEVEL`], threshold
/// [`DEFAULT_ZSTD_MIN_SIZE`], limit [`DEFAULT_MAX_DECODED_SIZE`].
#[derive(Clone, Debug)]
pub struct ZstdCodec {
    level: i32,
    min_size: usize,
    max_decoded_size: usize,
}

impl Default for ZstdCodec {
    fn default() -> Self {
        Self {
            level: DEFAULT_ZSTD_LEVEL,
            min_size: DEFAULT_ZSTD_MIN_SIZE,
            max_decoded_size: DEFAULT_MAX_DECODED_SIZE,
        }
    }
}

impl ZstdCodec {
    /// A codec with the default settings.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the compression level (1 to 22; negative levels are faster).
    #[must_use]
    pub fn with_level(mut self, level: i32) -> Self {
        self.level = level;
        self
    }

    /// Compresses only payloads of at least `min_size` bytes serialized
    /// (0 tries every payload).
    #[must_use]
    pub fn with_min_size(mut self, min_size: usize) -> Self {
        self.min_size = min_size;
        self
    }

    /// Refuses to decompress a payload to more than `max` bytes.
    #[must_use]
    pub fn with_max_decoded_size(mut self, max: usize) -> Self {
        self.max_decoded_size = max;
        self
    }
}

impl Compression for ZstdCodec {
    const ENCODING: &'static str = ENCODING_ZSTD;

    fn min_size(&self) -> usize {
        self.min_size
    }

    fn always_encode(&self) -> bool {
        false
    }

    fn max_decoded_size(&self) -> usize {
        self.max_decoded_size
    }

    fn compress(&self, input: &[u8]) -> std::io::Result<Vec<u8>> {
        ::zstd::bulk::compress(input, self.level)
    }

    fn decompress(&self, data: &[u8], limit: usize) -> Result<Vec<u8>, CodecError> {
        let corrupt = |source| CodecError::Corrupt {
            encoding: ENCODING_ZSTD,
            source,
        };
        // The declared size is only a hint (an attacker chooses it), used to
        // reserve memory up to the limit and to refuse early.
        let declared = ::zstd::zstd_safe::get_frame_content_size(data)
            .ok()
            .flatten()
            .and_then(|n| usize::try_from(n).ok());
        if declared.is_some_and(|n| n > limit) {
            return Err(CodecError::TooLarge {
                encoding: ENCODING_ZSTD,
                limit,
            });
        }
        let mut decoder = ::zstd::stream::read::Decoder::with_buffer(data).map_err(corrupt)?;
        // Bound the decoder's window buffer too, not only its output.
        decoder
            .window_log_max(window_log_max(limit))
            .map_err(corrupt)?;
        read_bounded(decoder, limit, declared.unwrap_or(0), ENCODING_ZSTD)
    }
}

/// The decoder window limit for an output limit: log2 of the limit rounded
/// up, at least [`MIN_WINDOW_LOG_MAX`], at most 30 (1 GiB, the most every
/// platform supports).
fn window_log_max(limit: usize) -> u32 {
    let log = usize::BITS - limit.saturating_sub(1).leading_zeros();
    log.clamp(MIN_WINDOW_LOG_MAX, 30)
}

impl PayloadCodec for ZstdCodec {
    fn name(&self) -> &str {
        "zstd"
    }

    fn encode(
        &self,
        payloads: Vec<Payload>,
    ) -> BoxFuture<'_, Result<Vec<Payload>, PayloadCodecError>> {
        Box::pin(async move { compressed::encode_batch(self, payloads) })
    }

    fn decode(
        &self,
        payloads: Vec<Payload>,
    ) -> BoxFuture<'_, Result<Vec<Payload>, PayloadCodecError>> {
        Box::pin(async move { compressed::decode_batch(self, payloads) })
    }
}
