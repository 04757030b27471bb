//! [`ZstdCodec`]: zstd compression of whole payloads, with a size threshold
//! and a bound on decompressed size.
//!
//! A compressed payload is
//! `Payload { metadata: {"encoding": "binary/zstd"}, data: zstd(serialized inner Payload) }`
//! (we write one zstd frame with the content size in its header and a
//! content checksum; any valid zstd data is accepted on decode).
//!
//! Each thread keeps one compression and one decompression context for
//! reuse: setting one up costs more than compressing a small payload. They
//! hold their tables and window buffers (bounded by the decoding limit)
//! until the thread ends.

use std::cell::RefCell;
use std::io;

use ::zstd::bulk::Compressor;
use ::zstd::stream::read::Decoder;
use ::zstd::zstd_safe::{CParameter, DCtx, DParameter, ResetDirective};
use payload_converter::{BoxFuture, Budget, PayloadCodec, PayloadCodecError};
use payload_proto::temporal::api::common::v1::Payload;

use crate::compressed::{self, Bounds, Compression, DEFAULT_MAX_DECODED_SIZE, Size, read_bounded};
use crate::error::CodecError;

/// The encoding of zstd-compressed payloads.
pub const ENCODING_ZSTD: &str = "binary/zstd";

/// Default zstd compression level (zstd's own default).
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;

/// Default threshold: serialized payloads smaller than 1 KiB are not
/// compressed (the gain is small and the frame overhead relatively large).
pub const DEFAULT_ZSTD_MIN_SIZE: usize = 1024;

thread_local! {
    /// This thread's compression context and the level it is set up for:
    /// creating a context (and its tables) costs more than compressing a
    /// small payload.
    static COMPRESSOR: RefCell<Option<(i32, Compressor<'static>)>> = const { RefCell::new(None) };
    /// This thread's decompression context.
    static DECOMPRESSOR: RefCell<Option<DCtx<'static>>> = const { RefCell::new(None) };
}

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

    fn compress(&self, input: &[u8]) -> io::Result<Vec<u8>> {
        COMPRESSOR.with(|cell| match cell.try_borrow_mut() {
            Ok(mut slot) => {
                let compressor = match &mut *slot {
                    Some((level, compressor)) if *level == self.level => compressor,
                    slot => &mut slot.insert((self.level, new_compressor(self.level)?)).1,
                };
                compressor.compress(input)
            }
            // Only if this thread is already compressing (it never is).
            Err(_) => new_compressor(self.level)?.compress(input),
        })
    }

    fn decompress(
        &self,
        data: &[u8],
        limit: usize,
        budget: &Budget,
    ) -> Result<Vec<u8>, CodecError> {
        let corrupt = |source| CodecError::Corrupt {
            encoding: ENCODING_ZSTD,
            source,
        };
        // A declared size (an attacker chooses it) is refused above the
        // limit, else allocated at once and checked while reading.
        let size = match ::zstd::zstd_safe::get_frame_content_size(data) {
            Ok(Some(n)) => Size::Declared(usize::try_from(n).unwrap_or(usize::MAX)),
            _ => Size::Guess(data.len().saturating_mul(4)),
        };
        let bounds = Bounds {
            limit,
            encoding: ENCODING_ZSTD,
            budget,
        };
        // A second pass (for long outputs of unknown size) gets a decoder of
        // its own.
        let reopen = || {
            let mut decoder = Decoder::with_buffer(data)?;
            decoder.window_log_max(window_log_max(limit))?;
            Ok(decoder)
        };
        DECOMPRESSOR.with(|cell| {
            let mut slot = cell.try_borrow_mut();
            let context = match slot.as_deref_mut() {
                Ok(Some(context)) => Some(context),
                Ok(slot) => DCtx::try_create().map(|context| slot.insert(context)),
                Err(_) => None,
            };
            match context {
                Some(context) => {
                    // Forget any frame a previous use left unfinished, then
                    // bound the decoder's window buffer, not only its output.
                    context
                        .reset(ResetDirective::SessionOnly)
                        .and_then(|_| {
                            context.set_parameter(DParameter::WindowLogMax(window_log_max(limit)))
                        })
                        .map_err(|code| corrupt(zstd_error(code)))?;
                    let decoder = Decoder::with_context(data, context);
                    read_bounded(decoder, reopen, size, &bounds)
                }
                // No context to reuse: a decoder of its own.
                None => read_bounded(reopen().map_err(corrupt)?, reopen, size, &bounds),
            }
        })
    }
}

/// A compression context for `level` that writes content checksums, so that
/// corruption is detected on decode.
fn new_compressor(level: i32) -> io::Result<Compressor<'static>> {
    let mut compressor = Compressor::new(level)?;
    compressor.set_parameter(CParameter::ChecksumFlag(true))?;
    Ok(compressor)
}

/// A zstd error code as an I/O error with zstd's message.
fn zstd_error(code: usize) -> io::Error {
    io::Error::other(::zstd::zstd_safe::get_error_name(code))
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

    compressed::compression_codec_methods!();
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::time::{Duration, Instant};

    use bytes::Bytes;
    use payload_converter::{CodecErrorKind, PayloadExt};
    use proptest::prelude::*;
    use prost::Message;

    use super::*;
    use crate::test_support::{batch, decode, encode};

    fn inner(err: &PayloadCodecError) -> &CodecError {
        err.inner().downcast_ref::<CodecError>().unwrap()
    }

    fn compressible(len: usize) -> Payload {
        Payload::with_encoding("json/plain", "abcdefgh".repeat(len / 8).into_bytes())
    }

    fn zstd_payload(data: Vec<u8>) -> Payload {
        Payload::with_encoding(ENCODING_ZSTD, data)
    }

    /// A serialized payload holding `mib` MiB of zeros, zstd-compressed in a
    /// stream (never all in memory), with or without the size in the header.
    fn bomb(mib: usize, declare_size: bool) -> Vec<u8> {
        let zeros = vec![0u8; 1024 * 1024];
        let total = mib * zeros.len();
        // The serialized Payload up to its data: metadata, then field 2's tag
        // and length.
        let mut prefix = Payload::with_encoding("binary/plain", Bytes::new()).encode_to_vec();
        prefix.push(0x12);
        prost::encoding::encode_varint(total as u64, &mut prefix);
        let mut encoder = ::zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
        if declare_size {
            encoder
                .set_pledged_src_size(Some((prefix.len() + total) as u64))
                .unwrap();
        }
        encoder.write_all(&prefix).unwrap();
        for _ in 0..mib {
            encoder.write_all(&zeros).unwrap();
        }
        encoder.finish().unwrap()
    }

    #[test]
    fn compresses_large_compressible_payloads() {
        let payload = compressible(64 * 1024);
        let out = encode(&ZstdCodec::new(), vec![payload.clone()]);
        assert_eq!(out[0].encoding(), Some(ENCODING_ZSTD));
        assert_eq!(out[0].metadata.len(), 1);
        assert!(out[0].encoded_len() < payload.encoded_len() / 10);
        assert_eq!(
            ::zstd::decode_all(&out[0].data[..]).unwrap(),
            payload.encode_to_vec()
        );
        assert_eq!(decode(&ZstdCodec::new(), out).unwrap(), [payload]);
    }

    #[test]
    fn skips_small_and_incompressible_payloads() {
        let small = compressible(DEFAULT_ZSTD_MIN_SIZE - 100);
        let mut noise = vec![0u8; 4096];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut noise).unwrap();
        let noisy = Payload::with_encoding("binary/plain", noise);
        let both = vec![small.clone(), noisy.clone()];
        assert_eq!(encode(&ZstdCodec::new(), both.clone()), both);
        // With no threshold the small one compresses, the noisy one still not.
        let out = encode(&ZstdCodec::new().with_min_size(0), both);
        assert_eq!(out[0].encoding(), Some(ENCODING_ZSTD));
        assert_eq!(out[1], noisy);
    }

    #[test]
    fn foreign_encodings_pass_through_decode() {
        let foreign = vec![
            Payload::with_encoding("binary/zlib", &b"\x78\x9cjunk"[..]),
            Payload::with_encoding("binary/encrypted", &b"x"[..]),
            Payload::default(),
        ];
        assert_eq!(decode(&ZstdCodec::new(), foreign.clone()).unwrap(), foreign);
    }

    #[test]
    fn corrupted_and_truncated_data_are_invalid_payload() {
        let good = encode(&ZstdCodec::new().with_level(19), vec![compressible(8192)]).remove(0);
        let len = good.data.len();
        let mut flipped = good.data.to_vec();
        flipped[len / 2] ^= 0xff;
        for data in [
            good.data[..len - 1].to_vec(),
            good.data[..len / 2].to_vec(),
            Vec::new(),
            b"not zstd at all".to_vec(),
            flipped,
        ]
        .into_iter()
        .enumerate()
        {
            let (case, data) = data;
            let err = decode(
                &ZstdCodec::new(),
                vec![Payload::default(), zstd_payload(data)],
            )
            .expect_err(&format!("case {case}"));
            assert_eq!(err.kind(), CodecErrorKind::InvalidPayload, "{err}");
            assert_eq!(err.index(), Some(1));
        }
    }

    #[test]
    fn decompressed_bytes_that_are_not_a_payload_are_invalid_payload() {
        let data = ::zstd::bulk::compress(b"\x0a\xff", 3).unwrap();
        let err = decode(&ZstdCodec::new(), vec![zstd_payload(data)]).unwrap_err();
        assert!(
            matches!(
                inner(&err),
                CodecError::InvalidInnerPayload {
                    encoding: ENCODING_ZSTD,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn bombs_are_limit_exceeded_quickly() {
        let limit = 1024 * 1024;
        let codec = ZstdCodec::new().with_max_decoded_size(limit);
        for declare_size in [false, true] {
            let data = bomb(100, declare_size);
            assert!(data.len() < 100_000, "{}", data.len());
            let start = Instant::now();
            let err = decode(&codec, vec![zstd_payload(data)]).unwrap_err();
            assert!(start.elapsed() < Duration::from_secs(2));
            assert_eq!(err.kind(), CodecErrorKind::LimitExceeded);
            assert!(matches!(inner(&err), CodecError::TooLarge { limit: l, .. } if *l == limit));
            assert_eq!(
                err.to_string(),
                "payload 0: the binary/zstd payload decompresses to more than 1048576 bytes, the \
                 configured maximum; raise the codec's maximum decoded size if the payload is \
                 legitimate"
            );
        }
    }

    #[test]
    fn a_declared_size_above_the_limit_is_refused_before_decompressing() {
        // Only the frame header survives: refused by its declared size alone.
        let header = bomb(2, true)[..16].to_vec();
        let codec = ZstdCodec::new().with_max_decoded_size(1024 * 1024);
        let err = decode(&codec, vec![zstd_payload(header)]).unwrap_err();
        assert!(matches!(inner(&err), CodecError::TooLarge { .. }), "{err}");
    }

    #[test]
    fn a_failed_decode_does_not_spoil_the_next_one_on_this_thread() {
        let good = encode(&ZstdCodec::new(), vec![compressible(8192)]);
        let small_limit = ZstdCodec::new().with_max_decoded_size(1024);
        let half = zstd_payload(good[0].data[..good[0].data.len() / 2].to_vec());
        for _ in 0..2 {
            // Stopped mid-frame by the limit, then by truncation.
            assert!(decode(&small_limit, good.clone()).is_err());
            assert!(decode(&ZstdCodec::new(), vec![half.clone()]).is_err());
            assert!(decode(&small_limit, vec![zstd_payload(bomb(4, false))]).is_err());
            assert_eq!(
                decode(&ZstdCodec::new(), good.clone()).unwrap(),
                [compressible(8192)]
            );
        }
        // Compression at different levels on the same thread.
        for level in [1, 19, 3] {
            let codec = ZstdCodec::new().with_level(level);
            let out = encode(&codec, vec![compressible(8192)]);
            assert_eq!(decode(&codec, out).unwrap(), [compressible(8192)]);
        }
    }

    #[test]
    fn output_exactly_at_the_limit_is_accepted() {
        let payload = compressible(4096);
        let size = payload.encoded_len();
        let encoded = encode(&ZstdCodec::new().with_min_size(0), vec![payload.clone()]);
        let at = ZstdCodec::new().with_max_decoded_size(size);
        assert_eq!(decode(&at, encoded.clone()).unwrap(), [payload]);
        let below = ZstdCodec::new().with_max_decoded_size(size - 1);
        assert_eq!(
            decode(&below, encoded).unwrap_err().kind(),
            CodecErrorKind::LimitExceeded
        );
    }

    #[test]
    fn window_limit_grows_with_the_output_limit() {
        assert_eq!(window_log_max(0), 23);
        assert_eq!(window_log_max(1024 * 1024), 23);
        assert_eq!(window_log_max(64 * 1024 * 1024), 26);
        assert_eq!(window_log_max(64 * 1024 * 1024 + 1), 27);
        assert_eq!(window_log_max(usize::MAX), 30);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn decode_inverts_encode(payloads in batch(), min_size in prop_oneof![Just(0usize), Just(1024)]) {
            let codec = ZstdCodec::new().with_min_size(min_size);
            let encoded = encode(&codec, payloads.clone());
            prop_assert_eq!(encoded.len(), payloads.len());
            for (e, p) in encoded.iter().zip(&payloads) {
                prop_assert!(e.encoded_len() <= p.encoded_len());
            }
            prop_assert_eq!(decode(&codec, encoded).unwrap(), payloads);
        }

        #[test]
        fn arbitrary_zstd_data_never_panics(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&ZstdCodec::new(), vec![zstd_payload(data.clone())]);
            // Also behind a valid frame magic number.
            let mut framed = vec![0x28, 0xb5, 0x2f, 0xfd];
            framed.extend(data);
            let _ = decode(&ZstdCodec::new(), vec![zstd_payload(framed)]);
        }
    }
}
