//! [`ZlibCodec`]: zlib compression compatible with the Go SDK's
//! `converter.NewZlibCodec`.
//!
//! A compressed payload is
//! `Payload { metadata: {"encoding": "binary/zlib"}, data: zlib(serialized inner Payload) }`,
//! a zlib stream (RFC 1950: header, deflate data, Adler-32) as Go's
//! `compress/zlib` and Python's `zlib.compress` write and read.

use crate::flate::{FlateCodec, Framing, Zlib};

/// The encoding of zlib-compressed payloads (the Go SDK's `binary/zlib`).
pub const ENCODING_ZLIB: &str = Zlib::ENCODING;

/// Default zlib compression level (zlib's own default, as Go and Python use).
pub const DEFAULT_ZLIB_LEVEL: u32 = crate::flate::DEFAULT_FLATE_LEVEL;

/// Compresses payloads with zlib, by default only when the result is smaller
/// (like Go's `ZlibCodecOptions{AlwaysEncode: false}`), otherwise passing
/// them through unchanged; [`with_always_encode`](FlateCodec::with_always_encode)
/// compresses every payload. Decoding passes through payloads that are not
/// `binary/zlib`, and refuses to decompress more than
/// [`with_max_decoded_size`](FlateCodec::with_max_decoded_size) bytes.
pub type ZlibCodec = FlateCodec<Zlib>;

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use bytes::Bytes;
    use payload_converter::{CodecErrorKind, PayloadExt};
    use proptest::prelude::*;
    use prost::Message;

    use std::io::Write as _;

    use flate2::Compression as Level;
    use flate2::write::ZlibEncoder;
    use payload_converter::PayloadCodecError;
    use payload_proto::temporal::api::common::v1::Payload;

    use crate::compressed::Compression as _;
    use crate::error::CodecError;

    use super::*;
    use crate::test_support::{batch, decode, encode};

    fn inner(err: &PayloadCodecError) -> &CodecError {
        err.inner().downcast_ref::<CodecError>().unwrap()
    }

    fn compressible(len: usize) -> Payload {
        Payload::with_encoding("json/plain", "abc".repeat(len / 3).into_bytes())
    }

    fn zlib_payload(data: Vec<u8>) -> Payload {
        Payload::with_encoding(ENCODING_ZLIB, data)
    }

    /// A serialized payload holding `mib` MiB of zeros, zlib-compressed in
    /// a stream (never all in memory).
    fn bomb(mib: usize) -> Vec<u8> {
        let zeros = vec![0u8; 1024 * 1024];
        let mut prefix = Payload::with_encoding("binary/plain", Bytes::new()).encode_to_vec();
        prefix.push(0x12);
        prost::encoding::encode_varint((mib * zeros.len()) as u64, &mut prefix);
        let mut encoder = ZlibEncoder::new(Vec::new(), Level::best());
        encoder.write_all(&prefix).unwrap();
        for _ in 0..mib {
            encoder.write_all(&zeros).unwrap();
        }
        encoder.finish().unwrap()
    }

    #[test]
    fn writes_a_zlib_stream_of_the_whole_payload_like_go() {
        let payload = compressible(3000);
        let out = encode(&ZlibCodec::new(), vec![payload.clone()]);
        assert_eq!(out[0].encoding(), Some(ENCODING_ZLIB));
        assert_eq!(out[0].metadata.len(), 1);
        // RFC 1950 header: deflate, 32 KiB window, default level.
        assert_eq!(&out[0].data[..2], b"\x78\x9c");
        let mut plain = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::ZlibDecoder::new(&out[0].data[..]),
            &mut plain,
        )
        .unwrap();
        assert_eq!(plain, payload.encode_to_vec());
        assert_eq!(decode(&ZlibCodec::new(), out).unwrap(), [payload]);
    }

    #[test]
    fn only_when_smaller_unless_always_encode() {
        let small = Payload::with_encoding("json/plain", &br#""hi""#[..]);
        let unchanged = encode(&ZlibCodec::new(), vec![small.clone()]);
        assert_eq!(unchanged, std::slice::from_ref(&small));
        let always = ZlibCodec::new().with_always_encode(true);
        let out = encode(&always, vec![small.clone(), Payload::default()]);
        assert!(out.iter().all(|p| p.encoding() == Some(ENCODING_ZLIB)));
        assert!(out[0].encoded_len() > small.encoded_len());
        assert_eq!(
            decode(&ZlibCodec::new(), out).unwrap(),
            [small, Payload::default()]
        );
    }

    #[test]
    fn foreign_encodings_pass_through_decode() {
        let foreign = vec![
            Payload::with_encoding("binary/zstd", &b"\x28\xb5\x2f\xfdjunk"[..]),
            Payload::with_encoding("json/plain", &b"1"[..]),
            Payload::default(),
        ];
        assert_eq!(decode(&ZlibCodec::new(), foreign.clone()).unwrap(), foreign);
    }

    #[test]
    fn corrupted_and_truncated_data_are_invalid_payload() {
        let good = encode(&ZlibCodec::new(), vec![compressible(8192)]).remove(0);
        let len = good.data.len();
        let mut flipped = good.data.to_vec();
        flipped[len / 2] ^= 0x10;
        let mut bad_checksum = good.data.to_vec();
        bad_checksum[len - 1] ^= 0x01;
        for (case, data) in [
            good.data[..len - 1].to_vec(),
            good.data[..len / 2].to_vec(),
            good.data[..1].to_vec(),
            Vec::new(),
            b"not zlib at all".to_vec(),
            flipped,
            bad_checksum,
        ]
        .into_iter()
        .enumerate()
        {
            let err = decode(
                &ZlibCodec::new(),
                vec![Payload::default(), zlib_payload(data)],
            )
            .expect_err(&format!("case {case}"));
            assert_eq!(
                err.kind(),
                CodecErrorKind::InvalidPayload,
                "case {case}: {err}"
            );
            assert_eq!(err.index(), Some(1));
        }
    }

    #[test]
    fn decompressed_bytes_that_are_not_a_payload_are_invalid_payload() {
        let data = ZlibCodec::new().compress(b"\x0a\xff").unwrap();
        let err = decode(&ZlibCodec::new(), vec![zlib_payload(data)]).unwrap_err();
        assert!(
            matches!(
                inner(&err),
                CodecError::InvalidInnerPayload {
                    encoding: ENCODING_ZLIB,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn bombs_are_limit_exceeded_quickly() {
        let limit = 1024 * 1024;
        let data = bomb(100);
        assert!(data.len() < 200_000, "{}", data.len());
        let start = Instant::now();
        let err = decode(
            &ZlibCodec::new().with_max_decoded_size(limit),
            vec![zlib_payload(data)],
        )
        .unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(2));
        assert_eq!(err.kind(), CodecErrorKind::LimitExceeded);
        assert_eq!(
            err.to_string(),
            "payload 0: the binary/zlib payload decompresses to more than 1048576 bytes, the \
             configured maximum; raise the codec's maximum decoded size if the payload is \
             legitimate"
        );
    }

    #[test]
    fn output_exactly_at_the_limit_is_accepted() {
        let payload = compressible(4096);
        let size = payload.encoded_len();
        let encoded = encode(&ZlibCodec::new(), vec![payload.clone()]);
        let at = ZlibCodec::new().with_max_decoded_size(size);
        assert_eq!(decode(&at, encoded.clone()).unwrap(), [payload]);
        let below = ZlibCodec::new().with_max_decoded_size(size - 1);
        assert_eq!(
            decode(&below, encoded).unwrap_err().kind(),
            CodecErrorKind::LimitExceeded
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn decode_inverts_encode(payloads in batch(), always in any::<bool>()) {
            let codec = ZlibCodec::new().with_always_encode(always);
            let encoded = encode(&codec, payloads.clone());
            prop_assert_eq!(encoded.len(), payloads.len());
            if !always {
                for (e, p) in encoded.iter().zip(&payloads) {
                    prop_assert!(e.encoded_len() <= p.encoded_len());
                }
            }
            prop_assert_eq!(decode(&codec, encoded).unwrap(), payloads);
        }

        #[test]
        fn arbitrary_zlib_data_never_panics(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&ZlibCodec::new(), vec![zlib_payload(data.clone())]);
            // Also behind a valid zlib header.
            let mut framed = vec![0x78, 0x9c];
            framed.extend(data);
            let _ = decode(&ZlibCodec::new(), vec![zlib_payload(framed)]);
        }
    }
}
