//! What the compression codecs ([`ZstdCodec`](crate::ZstdCodec),
//! [`ZlibCodec`](crate::ZlibCodec)) share: building the outer payload only
//! when it is worth it, reading decompressed bytes under a size limit and a
//! [`Budget`], and the batch loops.

use std::io::Read;

use bytes::Bytes;
use payload_converter::encoding::METADATA_ENCODING;
use payload_converter::{Budget, PayloadCodecError};
use payload_proto::temporal::api::common::v1::Payload;
use prost::Message;

use crate::error::CodecError;

/// Default maximum size of a decompressed payload: 64 MiB.
pub const DEFAULT_MAX_DECODED_SIZE: usize = 64 * 1024 * 1024;

/// One compression format.
pub(crate) trait Compression {
    /// The encoding this format owns, e.g. `binary/zstd`.
    const ENCODING: &'static str;
    /// Smallest serialized payload worth compressing.
    fn min_size(&self) -> usize;
    /// Whether to keep the compressed form even when it is not smaller.
    fn always_encode(&self) -> bool;
    /// The largest decompressed size accepted.
    fn max_decoded_size(&self) -> usize;
    /// Compresses `input`.
    fn compress(&self, input: &[u8]) -> std::io::Result<Vec<u8>>;
    /// Decompresses `data` with [`read_bounded`]: at most `limit` bytes of
    /// output, each buffer charged to `budget` before it is allocated.
    fn decompress(&self, data: &[u8], limit: usize, budget: &Budget)
    -> Result<Vec<u8>, CodecError>;
}

/// Compresses one payload, or returns it unchanged when it is below the
/// size threshold or compressing does not make it smaller.
fn compress_one<C: Compression>(
    codec: &C,
    payload: Payload,
    budget: &Budget,
) -> Result<Payload, CodecError> {
    let size = payload.encoded_len();
    if size < codec.min_size() {
        return Ok(payload);
    }
    // The serialized payload, and a compressed copy at most about as large.
    budget.charge(size.saturating_mul(2))?;
    let inner = payload.encode_to_vec();
    let compressed = codec
        .compress(&inner)
        .map_err(|source| CodecError::Compress {
            encoding: C::ENCODING,
            source,
        })?;
    let outer = Payload {
        metadata: [(
            METADATA_ENCODING.to_owned(),
            Bytes::from_static(C::ENCODING.as_bytes()),
        )]
        .into(),
        data: Bytes::from(compressed),
        external_payloads: Vec::new(),
    };
    if codec.always_encode() || outer.encoded_len() < inner.len() {
        Ok(outer)
    } else {
        Ok(payload)
    }
}

/// Decompresses one payload of the codec's encoding.
fn decompress_one<C: Compression>(
    codec: &C,
    payload: &Payload,
    budget: &Budget,
) -> Result<Payload, CodecError> {
    let limit = codec.max_decoded_size();
    let inner = codec.decompress(&payload.data, limit, budget)?;
    Payload::decode(Bytes::from(inner)).map_err(|source| CodecError::InvalidInnerPayload {
        encoding: C::ENCODING,
        source,
    })
}

/// Unknown-size output is read in one pass up to this size; beyond it, the
/// rest is counted first and the stream decoded again into a buffer of the
/// exact size, so that a large payload never exists twice while its buffer
/// grows (a reallocation copies the old buffer into the new one).
const ONE_PASS: usize = 1024 * 1024;
/// Bytes read at a time when counting or probing, on the stack.
const SCRATCH: usize = 16 * 1024;
/// Counted bytes are charged to the budget this many at a time.
const CHARGE_STEP: usize = 1024 * 1024;

/// How large a decompressed output is, as far as the format says.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Size {
    /// The format declares it (a zstd frame's content size): trusted only
    /// up to the limit, and checked while reading.
    Declared(usize),
    /// Unknown; a first buffer of this size is a good guess.
    Guess(usize),
}

/// The bounds of one decompression.
pub(crate) struct Bounds<'a> {
    /// The largest output accepted.
    pub(crate) limit: usize,
    /// The encoding, for errors.
    pub(crate) encoding: &'static str,
    /// What every buffer is charged to before it is allocated.
    pub(crate) budget: &'a Budget,
}

impl Bounds<'_> {
    fn corrupt(&self, source: std::io::Error) -> CodecError {
        CodecError::Corrupt {
            encoding: self.encoding,
            source,
        }
    }

    fn too_large(&self) -> CodecError {
        CodecError::TooLarge {
            encoding: self.encoding,
            limit: self.limit,
        }
    }
}

/// Reads all of `reader`: at most `bounds.limit` bytes (more is
/// [`CodecError::TooLarge`]), every buffer charged to the budget before it
/// is allocated, so a decompression bomb is refused by the budget or the
/// limit, not by the allocator.
///
/// A declared size is allocated at once and checked. An unknown size is
/// read into a growing buffer up to [`ONE_PASS`]; a longer output is counted
/// to its end (charging as it goes) and then decoded again, from
/// `reopen`, into a buffer of exactly its size.
pub(crate) fn read_bounded<R: Read, R2: Read>(
    mut reader: R,
    reopen: impl FnOnce() -> std::io::Result<R2>,
    size: Size,
    bounds: &Bounds<'_>,
) -> Result<Vec<u8>, CodecError> {
    let guess = match size {
        Size::Declared(declared) => {
            if declared > bounds.limit {
                return Err(bounds.too_large());
            }
            bounds.budget.charge(declared)?;
            let mut out = vec![0_u8; declared];
            fill(&mut reader, &mut out, bounds)?;
            ensure_ended(&mut reader, bounds)?;
            return Ok(out);
        }
        Size::Guess(guess) => guess,
    };
    let mut out = Vec::new();
    let head = ONE_PASS.min(bounds.limit.saturating_add(1));
    let (ended, mut charged) = read_growing(&mut reader, &mut out, guess.min(head), head, bounds)?;
    if ended {
        return if out.len() > bounds.limit {
            Err(bounds.too_large())
        } else {
            Ok(out)
        };
    }
    // Longer than one pass: count the rest, then decode again.
    let mut scratch = [0_u8; SCRATCH];
    let mut total = out.len();
    loop {
        let n = read_some(&mut reader, &mut scratch, bounds)?;
        if n == 0 {
            break;
        }
        total += n;
        if total > bounds.limit {
            return Err(bounds.too_large());
        }
        while total > charged {
            let step = CHARGE_STEP.min(bounds.limit - charged);
            bounds.budget.charge(step)?;
            charged += step;
        }
    }
    if total > bounds.limit {
        return Err(bounds.too_large());
    }
    let done = out.len();
    out.reserve_exact(total - done);
    out.resize(total, 0);
    let mut again = reopen().map_err(|e| bounds.corrupt(e))?;
    // The first bytes are the ones already read: skip them.
    let mut skipped = 0;
    while skipped < done {
        let want = (done - skipped).min(SCRATCH);
        fill(&mut again, &mut scratch[..want], bounds)?;
        skipped += want;
    }
    fill(&mut again, &mut out[done..], bounds)?;
    ensure_ended(&mut again, bounds)?;
    Ok(out)
}

/// Reads into `out` (empty) while it grows by doubling, from `first` bytes
/// up to `most`, each growth charged first; whether the stream ended, and
/// the bytes charged.
fn read_growing(
    reader: &mut impl Read,
    out: &mut Vec<u8>,
    first: usize,
    most: usize,
    bounds: &Bounds<'_>,
) -> Result<(bool, usize), CodecError> {
    let mut len = 0;
    let mut room = first.clamp(64.min(most), most);
    bounds.budget.charge(room)?;
    out.reserve_exact(room);
    out.resize(room, 0);
    loop {
        if len == out.len() {
            if len >= most {
                out.truncate(len);
                return Ok((false, room));
            }
            let grow = len.min(most - len).max(1);
            bounds.budget.charge(grow)?;
            room += grow;
            out.reserve_exact(grow);
            out.resize(room, 0);
        }
        match read_some(reader, &mut out[len..], bounds)? {
            0 => {
                out.truncate(len);
                return Ok((true, room));
            }
            n => len += n,
        }
    }
}

/// Fills `out` from `reader`; a stream that ends first is corrupt.
fn fill(reader: &mut impl Read, out: &mut [u8], bounds: &Bounds<'_>) -> Result<(), CodecError> {
    reader.read_exact(out).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            bounds.corrupt(std::io::Error::other(
                "the data ends before the size its frame declares",
            ))
        } else {
            bounds.corrupt(e)
        }
    })
}

/// Checks that `reader` has nothing more to give.
fn ensure_ended(reader: &mut impl Read, bounds: &Bounds<'_>) -> Result<(), CodecError> {
    match read_some(reader, &mut [0_u8; 1], bounds)? {
        0 => Ok(()),
        _ => Err(bounds.corrupt(std::io::Error::other(
            "the data goes on past the size its frame declares",
        ))),
    }
}

/// One read into `buf`, again when interrupted; 0 at the end.
fn read_some(
    reader: &mut impl Read,
    buf: &mut [u8],
    bounds: &Bounds<'_>,
) -> Result<usize, CodecError> {
    loop {
        match reader.read(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            other => return other.map_err(|e| bounds.corrupt(e)),
        }
    }
}

/// Encodes a batch.
pub(crate) fn encode_batch<C: Compression>(
    codec: &C,
    payloads: Vec<Payload>,
    budget: &Budget,
) -> Result<Vec<Payload>, PayloadCodecError> {
    crate::batch::encode_each(payloads, |p| compress_one(codec, p, budget))
}

/// Decodes a batch: payloads of other encodings pass through.
pub(crate) fn decode_batch<C: Compression>(
    codec: &C,
    payloads: Vec<Payload>,
    budget: &Budget,
) -> Result<Vec<Payload>, PayloadCodecError> {
    crate::batch::decode_matching(payloads, C::ENCODING, |p| decompress_one(codec, &p, budget))
}

/// The [`PayloadCodec`](payload_converter::PayloadCodec) methods of a
/// compression codec: the batch loops, without a budget or under the
/// caller's.
macro_rules! compression_codec_methods {
    () => {
        fn encode(
            &self,
            payloads: Vec<Payload>,
        ) -> BoxFuture<'_, Result<Vec<Payload>, PayloadCodecError>> {
            Box::pin(async move {
                crate::compressed::encode_batch(self, payloads, &Budget::unlimited())
            })
        }

        fn decode(
            &self,
            payloads: Vec<Payload>,
        ) -> BoxFuture<'_, Result<Vec<Payload>, PayloadCodecError>> {
            Box::pin(async move {
                crate::compressed::decode_batch(self, payloads, &Budget::unlimited())
            })
        }

        fn encode_within<'a>(
            &'a self,
            payloads: Vec<Payload>,
            budget: &'a Budget,
        ) -> BoxFuture<'a, Result<Vec<Payload>, PayloadCodecError>> {
            Box::pin(async move { crate::compressed::encode_batch(self, payloads, budget) })
        }

        fn decode_within<'a>(
            &'a self,
            payloads: Vec<Payload>,
            budget: &'a Budget,
        ) -> BoxFuture<'a, Result<Vec<Payload>, PayloadCodecError>> {
            Box::pin(async move { crate::compressed::decode_batch(self, payloads, budget) })
        }
    };
}
pub(crate) use compression_codec_methods;

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use payload_converter::{BudgetError, BytePool, CodecErrorKind, PayloadCodec, PayloadExt};
    use proptest::prelude::*;

    use super::*;
    use crate::chain::ChainBuilder;
    use crate::test_support::{
        batch, decode, decode_within, encode, keyring_ab, write_zeros_payload,
    };
    use crate::zlib::{ENCODING_ZLIB, ZlibCodec};
    use crate::zstd::{ENCODING_ZSTD, ZstdCodec};

    const MIB: usize = 1024 * 1024;

    /// `count` payloads of `encoding`, each `mib` MiB of zeros compressed.
    fn bombs(encoding: &str, mib: usize, count: usize) -> Vec<Payload> {
        let data = if encoding == ENCODING_ZSTD {
            let mut encoder = ::zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
            write_zeros_payload(&mut encoder, mib * MIB);
            encoder.finish().unwrap()
        } else {
            let mut encoder =
                flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
            write_zeros_payload(&mut encoder, mib * MIB);
            encoder.finish().unwrap()
        };
        let payload = Payload {
            metadata: [(
                METADATA_ENCODING.to_owned(),
                Bytes::from(encoding.to_owned()),
            )]
            .into(),
            data: Bytes::from(data),
            external_payloads: Vec::new(),
        };
        vec![payload; count]
    }

    fn budget_error(err: &PayloadCodecError) -> Option<BudgetError> {
        match err.inner().downcast_ref::<CodecError>() {
            Some(CodecError::Budget(e)) => Some(*e),
            _ => None,
        }
    }

    fn codecs() -> [(&'static str, Box<dyn PayloadCodec>); 2] {
        [
            (ENCODING_ZSTD, Box::new(ZstdCodec::new())),
            (ENCODING_ZLIB, Box::new(ZlibCodec::new())),
        ]
    }

    #[test]
    fn a_batch_of_small_bombs_is_refused_by_the_call_budget() {
        // Each payload is far below the codec's own limit (64 MiB); together
        // they ask for 64 MiB, twice the call's budget.
        for (encoding, codec) in codecs() {
            let payloads = bombs(encoding, 4, 16);
            let body: usize = payloads.iter().map(|p| p.data.len()).sum();
            assert!(body < 300 * 1024, "{encoding}: {body} bytes");
            let budget = Budget::new(32 * MIB);
            let err = decode_within(&*codec, payloads.clone(), &budget).unwrap_err();
            assert_eq!(err.kind(), CodecErrorKind::LimitExceeded, "{err}");
            assert_eq!(
                budget_error(&err),
                Some(BudgetError::Exceeded { limit: 32 * MIB })
            );
            assert!(budget.used() <= 32 * MIB);
            // Without a budget the same batch decodes.
            assert_eq!(decode(&*codec, payloads).unwrap().len(), 16);
        }
    }

    #[test]
    fn a_bomb_is_charged_before_it_is_allocated() {
        // One growth beyond the budget is refused before the buffer grows:
        // what was charged never exceeds the limit, whatever the bomb.
        for (encoding, codec) in codecs() {
            let budget = Budget::new(3 * MIB);
            let err = decode_within(&*codec, bombs(encoding, 50, 1), &budget).unwrap_err();
            assert_eq!(
                budget_error(&err),
                Some(BudgetError::Exceeded { limit: 3 * MIB }),
                "{encoding}: {err}"
            );
            assert!(budget.used() <= 3 * MIB, "{}", budget.used());
        }
    }

    #[test]
    fn an_empty_pool_is_busy_and_a_cancelled_call_stops() {
        for (encoding, codec) in codecs() {
            let pool = Arc::new(BytePool::new(MIB));
            let budget = Budget::new(64 * MIB).with_pool(pool.clone());
            let err = decode_within(&*codec, bombs(encoding, 2, 1), &budget).unwrap_err();
            assert_eq!(err.kind(), CodecErrorKind::Busy, "{err}");
            drop(budget);
            assert_eq!(pool.in_use(), 0, "a dropped budget gives its bytes back");

            let budget = Budget::unlimited();
            budget.cancel();
            let err = decode_within(&*codec, bombs(encoding, 1, 1), &budget).unwrap_err();
            assert_eq!(err.kind(), CodecErrorKind::Cancelled, "{err}");
        }
    }

    #[test]
    fn a_declared_size_within_the_limit_takes_one_buffer() {
        let plain = Payload::with_encoding("binary/plain", vec![7_u8; 3 * MIB]);
        let compressed = encode(&ZstdCodec::new(), vec![plain.clone()]);
        assert_eq!(compressed[0].encoding(), Some(ENCODING_ZSTD));
        let budget = Budget::new(64 * MIB);
        let out = decode_within(&ZstdCodec::new(), compressed, &budget).unwrap();
        assert_eq!(out, std::slice::from_ref(&plain));
        // The frame declares its size: one buffer of exactly that size.
        assert_eq!(budget.used(), plain.encoded_len());
    }

    #[test]
    fn a_long_output_of_unknown_size_is_decoded_into_one_buffer_of_its_size() {
        // zlib declares no size: 3 MiB is counted, then decoded again into a
        // buffer of exactly its size (no growing copy of a large buffer).
        let data: Vec<u8> = (0..3 * MIB).map(|i| (i % 251) as u8).collect();
        let plain = Payload::with_encoding("binary/plain", data);
        let compressed = encode(&ZlibCodec::new(), vec![plain.clone()]);
        assert_eq!(compressed[0].encoding(), Some(ENCODING_ZLIB));
        let budget = Budget::new(64 * MIB);
        let out = decode_within(&ZlibCodec::new(), compressed, &budget).unwrap();
        assert_eq!(out, std::slice::from_ref(&plain));
        let size = plain.encoded_len();
        assert!(
            budget.used() >= size && budget.used() <= size + 2 * MIB,
            "charged {} for {size}",
            budget.used()
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Under any budget a chain decodes exactly as without one, or
        /// fails with the budget's error having charged no more than its
        /// limit: never a partial or different result.
        #[test]
        fn a_budget_never_changes_what_is_decoded(
            payloads in batch(),
            limit in 0usize..300_000,
        ) {
            let chain = ChainBuilder::new()
                .compress_zlib(ZlibCodec::new())
                .compress_zstd(ZstdCodec::new().with_min_size(0))
                .encrypt(keyring_ab("a"))
                .build();
            let encoded = encode(&chain, payloads.clone());
            let budget = Budget::new(limit);
            match decode_within(&chain, encoded.clone(), &budget) {
                Ok(out) => prop_assert_eq!(out, payloads),
                Err(err) => {
                    prop_assert_eq!(err.kind(), CodecErrorKind::LimitExceeded);
                    prop_assert_eq!(budget_error(&err), Some(BudgetError::Exceeded { limit }));
                }
            }
            prop_assert!(budget.used() <= limit);
        }
    }
}
