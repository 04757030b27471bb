//! [`GzipCodec`]: gzip compression as the samples-python `external_storage`
//! sample writes it.
//!
//! A compressed payload is
//! `Payload { metadata: {"encoding": "binary/gzip"}, data: gzip(serialized inner Payload) }`,
//! a gzip member (RFC 1952) as Python's `gzip.compress` writes and
//! `gzip.decompress` reads.

use crate::flate::{FlateCodec, Framing, Gzip};

/// The encoding of gzip-compressed payloads.
pub const ENCODING_GZIP: &str = Gzip::ENCODING;

/// Compresses payloads with gzip (level 6), like the sample every payload
/// by default; [`with_only_when_smaller`](FlateCodec::with_only_when_smaller)
/// passes through payloads that would not shrink. Decoding passes through
/// payloads that are not `binary/gzip` and refuses to decompress more than
/// [`with_max_decoded_size`](FlateCodec::with_max_decoded_size) bytes.
pub type GzipCodec = FlateCodec<Gzip>;

#[cfg(test)]
mod tests {
    use payload_converter::{CodecErrorKind, PayloadExt};
    use proptest::prelude::*;
    use prost::Message;

    use payload_proto::temporal::api::common::v1::Payload;

    use super::*;
    use crate::test_support::{batch, decode, encode};

    #[test]
    fn writes_a_gzip_member_of_the_whole_payload() {
        let payload = Payload::with_encoding("json/plain", "xyz".repeat(1000).into_bytes());
        let out = encode(&GzipCodec::new(), vec![payload.clone()]);
        assert_eq!(out[0].encoding(), Some(ENCODING_GZIP));
        // RFC 1952 magic and deflate method, as Python's gzip writes.
        assert_eq!(&out[0].data[..3], b"\x1f\x8b\x08");
        let mut plain = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(&out[0].data[..]),
            &mut plain,
        )
        .unwrap();
        assert_eq!(plain, payload.encode_to_vec());
        assert_eq!(decode(&GzipCodec::new(), out).unwrap(), [payload]);
    }

    #[test]
    fn bombs_and_garbage_are_refused() {
        let zeros = Payload::with_encoding("binary/plain", vec![0_u8; 4 << 20]);
        let bomb = encode(&GzipCodec::new(), vec![zeros]);
        assert!(bomb[0].data.len() < 10_000);
        let err = decode(&GzipCodec::new().with_max_decoded_size(1 << 20), bomb).unwrap_err();
        assert_eq!(err.kind(), CodecErrorKind::LimitExceeded);
        let garbage = Payload::with_encoding(ENCODING_GZIP, &b"\x1f\x8b\x08junk"[..]);
        let err = decode(&GzipCodec::new(), vec![garbage]).unwrap_err();
        assert_eq!(err.kind(), CodecErrorKind::InvalidPayload);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn decode_inverts_encode(payloads in batch(), smaller in any::<bool>()) {
            let codec = if smaller {
                GzipCodec::new().with_only_when_smaller()
            } else {
                GzipCodec::new()
            };
            let encoded = encode(&codec, payloads.clone());
            if !smaller {
                prop_assert!(encoded.iter().all(|p| p.encoding() == Some(ENCODING_GZIP)));
            }
            prop_assert_eq!(decode(&codec, encoded).unwrap(), payloads);
        }
    }
}
