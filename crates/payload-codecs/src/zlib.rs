//! [`ZlibCodec`]: zlib compression compatible with the Go SDK's
//! `converter.NewZlibCodec`.
//!
//! A compressed payload is
//! `Payload { metadata: {"encoding": "binary/zlib"}, data: zlib(serialized inner Payload) }`,
//! a zlib stream (RFC 1950: header, deflate data, Adler-32) as Go's
//! `compress/zlib` and Python's `zlib.compress` write and read.

use std::io::Write as _;

use flate2::Compression as Level;
use flate2::bufread::ZlibDecoder;
use flate2::write::ZlibEncoder;
use payload_converter::{BoxFuture, PayloadCodec, PayloadCodecError};
use payload_proto::temporal::api::common::v1::Payload;

use crate::compressed::{self, Compression, DEFAULT_MAX_DECODED_SIZE, read_bounded};
use crate::error::CodecError;

/// The encoding of zlib-compressed payloads (the Go SDK's `binary/zlib`).
pub const ENCODING_ZLIB: &str = "binary/zlib";

/// Default zlib compression level (zlib's own default, as Go and Python use).
pub const DEFAULT_ZLIB_LEVEL: u32 = 6;

/// Compresses payloads with zlib, by default only when the result is smaller
/// (like Go's `ZlibCodecOptions{AlwaysEncode: false}`), otherwise passing
/// them through unchanged; [`with_always_encode`](ZlibCodec::with_always_encode)
/// compresses every payload. Decoding passes through payloads that are not
/// `binary/zlib`, and refuses to decompress more than
/// [`max_decoded_size`](ZlibCodec::with_max_decoded_size) bytes
/// ([`CodecError::TooLarge`], kind `LimitExceeded`).
#[derive(Clone, Debug)]
pub struct ZlibCodec {
    level: u32,
    always_encode: bool,
    max_decoded_size: usize,
}

impl Default for ZlibCodec {
    fn default() -> Self {
        Self {
            level: DEFAULT_ZLIB_LEVEL,
            always_encode: false,
            max_decoded_size: DEFAULT_MAX_DECODED_SIZE,
        }
    }
}

impl ZlibCodec {
    /// A codec with the default settings: level 6, only when smaller, a
    /// limit of [`DEFAULT_MAX_DECODED_SIZE`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Compresses every payload, even when that makes it larger.
    #[must_use]
    pub fn with_always_encode(mut self, always_encode: bool) -> Self {
        self.always_encode = always_encode;
        self
    }

    /// Sets the compression level, 0 (store) to 9 (best).
    #[must_use]
    pub fn with_level(mut self, level: u32) -> Self {
        self.level = level.min(9);
        self
    }

    /// Refuses to decompress a payload to more than `max` bytes.
    #[must_use]
    pub fn with_max_decoded_size(mut self, max: usize) -> Self {
        self.max_decoded_size = max;
        self
    }
}

impl Compression for ZlibCodec {
    const ENCODING: &'static str = ENCODING_ZLIB;

    fn min_size(&self) -> usize {
        0
    }

    fn always_encode(&self) -> bool {
        self.always_encode
    }

    fn max_decoded_size(&self) -> usize {
        self.max_decoded_size
    }

    fn compress(&self, input: &[u8]) -> std::io::Result<Vec<u8>> {
        let out = Vec::with_capacity(input.len() / 2 + 64);
        let mut encoder = ZlibEncoder::new(out, Level::new(self.level));
        encoder.write_all(input)?;
        encoder.finish()
    }

    fn decompress(&self, data: &[u8], limit: usize) -> Result<Vec<u8>, CodecError> {
        let capacity = data.len().saturating_mul(4);
        read_bounded(ZlibDecoder::new(data), limit, capacity, ENCODING_ZLIB)
    }
}

impl PayloadCodec for ZlibCodec {
    fn name(&self) -> &str {
        "zlib"
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
