//! The batch loops of the codecs: one payload at a time, and an error names
//! the payload of the batch that failed.

use payload_converter::PayloadCodecError;
use payload_converter::codec::CodecResult;
use payload_proto::temporal::api::common::v1::Payload;

use crate::CodecError;
use crate::aes_gcm::has_encoding;

/// Encodes each payload with `encode`.
pub(crate) fn encode_each<T>(
    payloads: impl IntoIterator<Item = T>,
    mut encode: impl FnMut(T) -> Result<Payload, CodecError>,
) -> CodecResult {
    payloads
        .into_iter()
        .enumerate()
        .map(|(i, p)| encode(p).map_err(|e| PayloadCodecError::from(e).at_index(i)))
        .collect()
}

/// Decodes the payloads whose `encoding` metadata is `encoding` with
/// `decode`; the others pass through unchanged.
pub(crate) fn decode_matching(
    payloads: Vec<Payload>,
    encoding: &str,
    mut decode: impl FnMut(Payload) -> Result<Payload, CodecError>,
) -> CodecResult {
    encode_each(payloads, |p| {
        if has_encoding(&p, encoding) {
            decode(p)
        } else {
            Ok(p)
        }
    })
}
