//! Codec throughput for 1 KiB, 64 KiB and 2 MiB payloads: encode and decode
//! of the AES-256-GCM, zstd and zlib codecs, with raw `ring` AES-256-GCM
//! (`seal_in_place_separate_tag` / `open_in_place` on a buffer of the same
//! size) as the reference for the encryption codec's overhead. Decode inputs
//! own their data, as payloads parsed from a request do; `decode-shared`
//! measures the AES codec on data shared with the caller (one extra copy).
//!
//! Run with `cargo bench -p payload-codecs --bench codecs`; it takes a few
//! minutes on two cores.

// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use payload_codecs::{AesGcmCodec, KeyId, Keyring, SecretKey, ZlibCodec, ZstdCodec};
use payload_converter::{PayloadCodec, PayloadExt};
use payload_proto::temporal::api::common::v1::Payload;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};

const SIZES: [(usize, &str); 3] = [
    (1024, "1KiB"),
    (64 * 1024, "64KiB"),
    (2 * 1024 * 1024, "2MiB"),
];
const KEY: [u8; 32] = *b"test-key-test-key-test-key-test!";

/// Polls a codec future, which completes at once (the work is inline).
fn ready<T>(future: impl Future<Output = T>) -> T {
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(value) => value,
        Poll::Pending => unreachable!("codec futures complete on first poll"),
    }
}

/// JSON-like text of `size` bytes: compressible, but not trivially.
fn json_data(size: usize) -> Vec<u8> {
    let mut out = String::with_capacity(size + 128);
    let mut state = 0x2545_f491_u32;
    let mut i = 0u32;
    while out.len() < size {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        out.push_str(&format!(
            r#"{{"id":{i},"name":"item-{i}","tags":["x","y"],"value":{state}}},"#
        ));
        i += 1;
    }
    out.truncate(size);
    out.into_bytes()
}

/// Deep copies of `payloads`, each owning its data.
fn owned(payloads: &[Payload]) -> Vec<Payload> {
    payloads
        .iter()
        .map(|p| Payload {
            data: p.data.to_vec().into(),
            ..p.clone()
        })
        .collect()
}

fn bench_size(c: &mut Criterion, size: usize, label: &str) {
    let mut group = c.benchmark_group(label);
    group.throughput(Throughput::Bytes(size as u64));
    let batch = if size >= 1024 * 1024 {
        BatchSize::LargeInput
    } else {
        BatchSize::SmallInput
    };
    let payload = Payload::with_encoding("json/plain", json_data(size));
    let keyring = Arc::new(Keyring::single(
        KeyId::new("bench").expect("valid id"),
        SecretKey::from_bytes(&KEY).expect("32 bytes"),
    ));

    let aes = AesGcmCodec::new(keyring);
    let zstd = ZstdCodec::new();
    let zlib = ZlibCodec::new();
    let codecs: [(&str, &dyn PayloadCodec); 3] =
        [("aes-gcm", &aes), ("zstd", &zstd), ("zlib", &zlib)];
    for (name, codec) in codecs {
        group.bench_function(format!("{name}/encode"), |b| {
            b.iter(|| ready(codec.encode(vec![payload.clone()])).expect("encodes"));
        });
        let encoded = ready(codec.encode(vec![payload.clone()])).expect("encodes");
        // As a server gets them: each payload owns its freshly decoded data
        // (made outside the timing, like the ring/open input).
        group.bench_function(format!("{name}/decode"), |b| {
            b.iter_batched(
                || owned(&encoded),
                |input| ready(codec.decode(input)).expect("decodes"),
                batch,
            );
        });
        // Data shared with the caller (the AES codec then copies the
        // ciphertext once).
        if name == "aes-gcm" {
            group.bench_function(format!("{name}/decode-shared"), |b| {
                b.iter(|| ready(codec.decode(encoded.clone())).expect("decodes"));
            });
        }
    }

    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &KEY).expect("key"));
    let nonce = || Nonce::assume_unique_for_key([7; 12]);
    let mut buffer = payload.data.to_vec();
    group.bench_function("ring/seal", |b| {
        b.iter(|| {
            key.seal_in_place_separate_tag(nonce(), Aad::empty(), &mut buffer)
                .expect("seals")
        });
    });
    let mut sealed = payload.data.to_vec();
    let tag = key
        .seal_in_place_separate_tag(nonce(), Aad::empty(), &mut sealed)
        .expect("seals");
    sealed.extend_from_slice(tag.as_ref());
    group.bench_function("ring/open", |b| {
        b.iter_batched_ref(
            || sealed.clone(),
            |buf| {
                key.open_in_place(nonce(), Aad::empty(), buf)
                    .expect("opens")
                    .len()
            },
            batch,
        );
    });
    group.finish();
}

fn codecs(c: &mut Criterion) {
    for (size, label) in SIZES {
        bench_size(c, size, label);
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500))
        .sample_size(20);
    targets = codecs
}
criterion_main!(benches);
