//! What the compression codecs ([`ZstdCodec`](crate::ZstdCodec),
//! [`ZlibCodec`](crate::ZlibCodec)) share: building the outer payload only
//! when it is worth it, reading decompressed bytes under a size limit, and
//! the batch loops.

use std::io::Read;

use bytes::Bytes;
use payload_converter::PayloadCodecError;
use payload_converter::encoding::METADATA_ENCODING;
use payload_proto::temporal::api::common::v1::Payload;
use prost::Message;

use crate::aes_gcm::has_encoding;
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
    /// Decompresses `data`, reading at most `limit` + 1 bytes of output.
    fn decompress(&self, data: &[u8], limit: usize) -> Result<Vec<u8>, CodecError>;
}

/// Compresses one payload, or returns it unchanged when it is below the
/// size threshold or compressing does not make it smaller.
fn compress_one<C: Compression>(codec: &C, payload: Payload) -> Result<Payload, CodecError> {
    let inner = payload.encode_to_vec();
    if inner.len() < codec.min_size() {
        return Ok(payload);
    }
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
fn decompress_one<C: Compression>(codec: &C, payload: &Payload) -> Result<Payload, CodecError> {
    let limit = codec.max_decoded_size();
    let inner = codec.decompress(&payload.data, limit)?;
    if inner.len() > limit {
        return Err(CodecError::TooLarge {
            encoding: C::ENCODING,
            limit,
        });
    }
    Payload::decode(Bytes::from(inner)).map_err(|source| CodecError::InvalidInnerPayload {
        encoding: C::ENCODING,
        source,
    })
}

/// Reads all of `reader` but at most `limit` + 1 bytes (so a result longer
/// than `limit` means "too large"), starting with `capacity` reserved.
pub(crate) fn read_bounded(
    reader: impl Read,
    limit: usize,
    capacity: usize,
    encoding: &'static str,
) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(capacity.min(limit.saturating_add(1)));
    let max = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    reader
        .take(max)
        .read_to_end(&mut out)
        .map_err(|source| CodecError::Corrupt { encoding, source })?;
    Ok(out)
}

/// Encodes a batch.
pub(crate) fn encode_batch<C: Compression>(
    codec: &C,
    payloads: Vec<Payload>,
) -> Result<Vec<Payload>, PayloadCodecError> {
    payloads
        .into_iter()
        .enumerate()
        .map(|(i, p)| compress_one(codec, p).map_err(|e| PayloadCodecError::from(e).at_index(i)))
        .collect()
}

/// Decodes a batch: payloads of other encodings pass through.
pub(crate) fn decode_batch<C: Compression>(
    codec: &C,
    payloads: Vec<Payload>,
) -> Result<Vec<Payload>, PayloadCodecError> {
    payloads
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            if has_encoding(&p, C::ENCODING) {
                decompress_one(codec, &p).map_err(|e| PayloadCodecError::from(e).at_index(i))
            } else {
                Ok(p)
            }
        })
        .collect()
}
