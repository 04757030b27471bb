//! [`FlateCodec`]: deflate-based compression in a framing of its own:
//! [`Zlib`] (RFC 1950, the Go SDK's `binary/zlib`) or [`Gzip`] (RFC 1952,
//! the Python external storage sample's `binary/gzip`). One codec type, so
//! the two differ only in their framing and defaults.

use std::fmt;
use std::io::{Read, Write};
use std::marker::PhantomData;

use flate2::Compression as Level;
use payload_converter::{BoxFuture, Budget, PayloadCodec, PayloadCodecError};
use payload_proto::temporal::api::common::v1::Payload;

use crate::compressed::{self, Bounds, Compression, DEFAULT_MAX_DECODED_SIZE, Size, read_bounded};
use crate::error::CodecError;

/// A deflate framing: its encoding, its defaults, its encoder and decoder.
pub trait Framing: Send + Sync + 'static {
    /// The payload encoding, e.g. `binary/zlib`.
    const ENCODING: &'static str;
    /// The codec's name in chains and errors.
    const NAME: &'static str;
    /// Whether a payload that would not shrink is compressed anyway, by
    /// default.
    const ALWAYS_ENCODE: bool;
    /// The encoder writing into `out`.
    type Encoder: Write;
    /// The decoder reading `data`.
    type Decoder<'a>: Read;

    /// A new encoder at `level`.
    fn encoder(out: Vec<u8>, level: Level) -> Self::Encoder;
    /// The encoder's output, once all input is written.
    fn finish(encoder: Self::Encoder) -> std::io::Result<Vec<u8>>;
    /// A new decoder of `data`.
    fn decoder(data: &[u8]) -> Self::Decoder<'_>;
}

/// The zlib framing (RFC 1950: header, deflate data, Adler-32) as Go's
/// `compress/zlib` and Python's `zlib.compress` write and read. Compresses
/// only when smaller by default, like Go's
/// `ZlibCodecOptions{AlwaysEncode: false}`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Zlib;

/// The gzip framing (an RFC 1952 member) as Python's `gzip.compress` writes
/// and `gzip.decompress` reads. Compresses every payload by default, like
/// the sample.
#[derive(Clone, Copy, Debug, Default)]
pub struct Gzip;

impl Framing for Zlib {
    const ENCODING: &'static str = "binary/zlib";
    const NAME: &'static str = "zlib";
    const ALWAYS_ENCODE: bool = false;
    type Encoder = flate2::write::ZlibEncoder<Vec<u8>>;
    type Decoder<'a> = flate2::bufread::ZlibDecoder<&'a [u8]>;

    fn encoder(out: Vec<u8>, level: Level) -> Self::Encoder {
        flate2::write::ZlibEncoder::new(out, level)
    }

    fn finish(encoder: Self::Encoder) -> std::io::Result<Vec<u8>> {
        encoder.finish()
    }

    fn decoder(data: &[u8]) -> Self::Decoder<'_> {
        flate2::bufread::ZlibDecoder::new(data)
    }
}

impl Framing for Gzip {
    const ENCODING: &'static str = "binary/gzip";
    const NAME: &'static str = "gzip";
    const ALWAYS_ENCODE: bool = true;
    type Encoder = flate2::write::GzEncoder<Vec<u8>>;
    type Decoder<'a> = flate2::bufread::GzDecoder<&'a [u8]>;

    fn encoder(out: Vec<u8>, level: Level) -> Self::Encoder {
        flate2::write::GzEncoder::new(out, level)
    }

    fn finish(encoder: Self::Encoder) -> std::io::Result<Vec<u8>> {
        encoder.finish()
    }

    fn decoder(data: &[u8]) -> Self::Decoder<'_> {
        flate2::bufread::GzDecoder::new(data)
    }
}

/// Default deflate level (zlib's own default, as Go and Python use).
pub const DEFAULT_FLATE_LEVEL: u32 = 6;

/// Compresses payloads with deflate in framing `F`; decoding passes through
/// payloads of other encodings and refuses to decompress more than
/// [`with_max_decoded_size`](FlateCodec::with_max_decoded_size) bytes
/// ([`CodecError::TooLarge`], kind `LimitExceeded`).
pub struct FlateCodec<F> {
    level: u32,
    always_encode: bool,
    max_decoded_size: usize,
    framing: PhantomData<fn() -> F>,
}

impl<F: Framing> Default for FlateCodec<F> {
    fn default() -> Self {
        Self {
            level: DEFAULT_FLATE_LEVEL,
            always_encode: F::ALWAYS_ENCODE,
            max_decoded_size: DEFAULT_MAX_DECODED_SIZE,
            framing: PhantomData,
        }
    }
}

impl<F> Clone for FlateCodec<F> {
    fn clone(&self) -> Self {
        Self {
            level: self.level,
            always_encode: self.always_encode,
            max_decoded_size: self.max_decoded_size,
            framing: PhantomData,
        }
    }
}

impl<F: Framing> fmt::Debug for FlateCodec<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlateCodec")
            .field("encoding", &F::ENCODING)
            .field("level", &self.level)
            .field("always_encode", &self.always_encode)
            .field("max_decoded_size", &self.max_decoded_size)
            .finish()
    }
}

impl<F: Framing> FlateCodec<F> {
    /// A codec with the framing's defaults: level 6, a limit of
    /// [`DEFAULT_MAX_DECODED_SIZE`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether to compress every payload, even when that makes it larger.
    #[must_use]
    pub fn with_always_encode(mut self, always_encode: bool) -> Self {
        self.always_encode = always_encode;
        self
    }

    /// Compresses only payloads that get smaller.
    #[must_use]
    pub fn with_only_when_smaller(self) -> Self {
        self.with_always_encode(false)
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

impl<F: Framing> Compression for FlateCodec<F> {
    const ENCODING: &'static str = F::ENCODING;

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
        let mut encoder = F::encoder(out, Level::new(self.level));
        encoder.write_all(input)?;
        F::finish(encoder)
    }

    fn decompress(
        &self,
        data: &[u8],
        limit: usize,
        budget: &Budget,
    ) -> Result<Vec<u8>, CodecError> {
        read_bounded(
            F::decoder(data),
            || Ok(F::decoder(data)),
            Size::Guess(data.len().saturating_mul(4)),
            &Bounds {
                limit,
                encoding: F::ENCODING,
                budget,
            },
        )
    }
}

impl<F: Framing> PayloadCodec for FlateCodec<F> {
    fn name(&self) -> &str {
        F::NAME
    }

    compressed::compression_codec_methods!();
}
