//! Decompression bombs never cost their decompressed size in memory: a
//! payload of 100 MiB of zeros, compressed with zstd or zlib and decoded with
//! a 1 MiB limit, is refused (`LimitExceeded`) while the process's peak
//! resident memory grows by far less than 100 MiB.
//!
//! Its own test binary, with one test, so that no other test's allocations
//! move the peak. Linux only (it reads `/proc/self/status`).

#![cfg(target_os = "linux")]

use payload_codecs::{ENCODING_ZLIB, ENCODING_ZSTD, ZlibCodec, ZstdCodec};
use payload_converter::{CodecErrorKind, PayloadCodec, PayloadExt};
use payload_proto::temporal::api::common::v1::Payload;
use prost::Message;

const MIB: usize = 1024 * 1024;

/// Peak resident set size of this process so far, in bytes.
fn peak_rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM line");
    let kib: usize = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("VmHWM value in kB");
    kib * 1024
}

/// Writes a serialized payload holding `mib` MiB of zeros into `out`, a
/// compressing writer, chunk by chunk.
fn write_zeros_payload(out: &mut impl std::io::Write, mib: usize) {
    let mut prefix = Payload::with_encoding("binary/plain", bytes::Bytes::new()).encode_to_vec();
    prefix.push(0x12);
    prost::encoding::encode_varint((mib * MIB) as u64, &mut prefix);
    out.write_all(&prefix).expect("write");
    let zeros = vec![0u8; MIB];
    for _ in 0..mib {
        out.write_all(&zeros).expect("write");
    }
}

#[tokio::test]
async fn bombs_are_refused_without_allocating_their_size() {
    let mut zstd_encoder = zstd::stream::write::Encoder::new(Vec::new(), 1).expect("encoder");
    write_zeros_payload(&mut zstd_encoder, 100);
    let zstd_bomb = Payload::with_encoding(ENCODING_ZSTD, zstd_encoder.finish().expect("zstd"));
    let mut zlib_encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    write_zeros_payload(&mut zlib_encoder, 100);
    let zlib_bomb = Payload::with_encoding(ENCODING_ZLIB, zlib_encoder.finish().expect("zlib"));
    assert!(zstd_bomb.data.len() + zlib_bomb.data.len() < 200_000);

    let before = peak_rss();
    let zstd = ZstdCodec::new().with_max_decoded_size(MIB);
    let zlib = ZlibCodec::new().with_max_decoded_size(MIB);
    for (codec, bomb) in [
        (&zstd as &dyn PayloadCodec, zstd_bomb),
        (&zlib as &dyn PayloadCodec, zlib_bomb),
    ] {
        let err = codec
            .decode(vec![bomb])
            .await
            .expect_err("a bomb is refused");
        assert_eq!(err.kind(), CodecErrorKind::LimitExceeded, "{err}");
    }
    let growth = peak_rss().saturating_sub(before);
    assert!(
        growth < 16 * MIB,
        "peak memory grew by {} MiB decoding two 100 MiB bombs with a 1 MiB limit",
        growth / MIB
    );
}
