//! The envelope codec through its public API, with KEKs that count their
//! calls and can be switched off (a KMS outage).

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests: a failed unwrap is a failed test.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use payload_codecs::{AesGcmCodec, KeyId, Keyring, SecretKey};
use payload_converter::codec::CodecResult;
use payload_converter::{BoxFuture, CodecErrorKind, PayloadCodec, PayloadExt};
use payload_kms::{EnvelopeBuilder, EnvelopeCodec, KekError, KeyEncryptionKey, Kms, KmsOptions};
use payload_proto::temporal::api::common::v1::Payload;
use proptest::prelude::*;
use zeroize::Zeroizing;

/// A local KEK (XOR with a byte, then a marker) that counts its calls and
/// fails while `down`.
#[derive(Debug, Default)]
struct CountingKek {
    mask: u8,
    wraps: AtomicUsize,
    unwraps: AtomicUsize,
    /// Every call, failed ones too.
    calls: AtomicUsize,
    down: AtomicBool,
}

impl CountingKek {
    fn new(mask: u8) -> Arc<Self> {
        Arc::new(Self {
            mask,
            ..Self::default()
        })
    }
}

impl KeyEncryptionKey for CountingKek {
    fn wrap<'a>(&'a self, key: &'a SecretKey) -> BoxFuture<'a, Result<Vec<u8>, KekError>> {
        Box::pin(async move {
            self.calls.fetch_add(1, Ordering::SeqCst);
            // A KMS answers later: concurrent callers really overlap.
            tokio::time::sleep(Duration::from_millis(5)).await;
            if self.down.load(Ordering::SeqCst) {
                return Err(KekError::Transient("connection refused".into()));
            }
            self.wraps.fetch_add(1, Ordering::SeqCst);
            let mut out: Vec<u8> = key.as_bytes().iter().map(|b| b ^ self.mask).collect();
            out.push(self.mask);
            Ok(out)
        })
    }

    fn unwrap<'a>(
        &'a self,
        wrapped: &'a [u8],
    ) -> BoxFuture<'a, Result<Zeroizing<Vec<u8>>, KekError>> {
        Box::pin(async move {
            self.calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(5)).await;
            if self.down.load(Ordering::SeqCst) {
                return Err(KekError::Transient("connection refused".into()));
            }
            self.unwraps.fetch_add(1, Ordering::SeqCst);
            match wrapped.split_last() {
                Some((&mask, key)) if mask == self.mask => {
                    Ok(Zeroizing::new(key.iter().map(|b| b ^ mask).collect()))
                }
                _ => Err(KekError::Rejected("not wrapped by this KEK".into())),
            }
        })
    }
}

fn fast_kms() -> Arc<Kms> {
    let mut options = KmsOptions::default();
    options.first_backoff = Duration::from_millis(1);
    Arc::new(Kms::new(options))
}

/// A KMS hub of its own (its own cache) whose KEK `test://k` is `kek`.
fn kms_with(kek: &Arc<CountingKek>) -> Arc<Kms> {
    let kms = fast_kms();
    kms.register("test://k", kek.clone());
    kms
}

/// `sample(n)` as encoded by a writer of its own under `kek` (`test://k`).
fn written_under(kek: &Arc<CountingKek>, n: usize) -> Vec<Payload> {
    let writer = EnvelopeBuilder::new(kms_with(kek), "test://k")
        .build()
        .unwrap();
    block(writer.encode(sample(n))).unwrap()
}

fn block<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime")
        .block_on(f)
}

fn sample(n: usize) -> Vec<Payload> {
    (0..n)
        .map(|i| Payload::with_encoding("json/plain", format!("{{\"n\":{i}}}").into_bytes()))
        .collect()
}

#[test]
fn the_wire_format_is_the_proxys() {
    let kms = fast_kms();
    let kek = CountingKek::new(0x5a);
    kms.register("test://kek-a", kek.clone());
    let codec = EnvelopeBuilder::new(kms.clone(), "test://kek-a")
        .build()
        .unwrap();
    let out = block(codec.encode(sample(1))).unwrap();
    let p = &out[0];
    assert_eq!(p.metadata.len(), 3);
    assert_eq!(p.encoding(), Some("binary/encrypted"));
    assert_eq!(p.metadata_str("encryption-key-id"), Some("test://kek-a"));
    // encryption-dek: standard base64 of exactly what the KEK returned.
    let wrapped = STANDARD
        .decode(p.metadata_str("encryption-dek").unwrap())
        .unwrap();
    let dek: Vec<u8> = wrapped[..32].iter().map(|b| b ^ 0x5a).collect();
    // data: nonce ‖ AES-256-GCM(serialized payload) ‖ tag, no AAD.
    let key = ring::aead::LessSafeKey::new(
        ring::aead::UnboundKey::new(&ring::aead::AES_256_GCM, &dek).unwrap(),
    );
    let nonce = ring::aead::Nonce::try_assume_unique_for_key(&p.data[..12]).unwrap();
    let mut buf = p.data[12..].to_vec();
    let plain = key
        .open_in_place(nonce, ring::aead::Aad::empty(), &mut buf)
        .unwrap();
    assert_eq!(plain, prost::Message::encode_to_vec(&sample(1)[0]));
}

#[test]
fn one_data_key_serves_many_payloads_and_a_cold_cache_costs_one_call_per_key() {
    let writer_kms = fast_kms();
    let kek = CountingKek::new(1);
    writer_kms.register("test://k", kek.clone());
    let writer = EnvelopeBuilder::new(writer_kms.clone(), "test://k")
        .data_key_ttl(Duration::from_millis(300), Duration::from_millis(100))
        .build()
        .unwrap();
    let mut written = block(writer.encode(sample(40))).unwrap();
    written.extend(block(writer.encode(sample(40))).unwrap());
    assert_eq!(
        kek.wraps.load(Ordering::SeqCst),
        1,
        "the data key is reused"
    );
    std::thread::sleep(Duration::from_millis(250));
    written.extend(block(writer.encode(sample(40))).unwrap());
    assert_eq!(
        kek.wraps.load(Ordering::SeqCst),
        2,
        "renewed before its end"
    );
    // The writer decodes its own payloads without a call.
    block(writer.decode(written.clone())).unwrap();
    assert_eq!(kek.unwraps.load(Ordering::SeqCst), 0);

    // A reader with a cold cache: 120 payloads, 2 data keys, 2 calls.
    let reader_kms = kms_with(&kek);
    let reader = EnvelopeBuilder::new(reader_kms.clone(), "test://k")
        .build()
        .unwrap();
    let decoded = block(reader.decode(written.clone())).unwrap();
    assert_eq!(decoded.len(), 120);
    assert_eq!(decoded[..40], sample(40)[..]);
    assert_eq!(kek.unwraps.load(Ordering::SeqCst), 2);
    block(reader.decode(written)).unwrap();
    assert_eq!(
        kek.unwraps.load(Ordering::SeqCst),
        2,
        "warm cache: no calls"
    );
    let stats = reader_kms.stats();
    assert_eq!((stats.unwraps, stats.cache_misses), (2, 2));
    assert_eq!(stats.cache_hits, 2);
}

#[test]
fn concurrent_requests_for_one_data_key_share_one_call() {
    let kek = CountingKek::new(2);
    let written = written_under(&kek, 4);
    let (_, results) = decode_at_once(&kek, &written, 16);
    for result in results {
        assert_eq!(result.unwrap(), sample(4));
    }
    assert_eq!(kek.unwraps.load(Ordering::SeqCst), 1);
}

#[test]
fn decrypt_only_keks_decode_and_new_payloads_use_the_active_one() {
    let kms = fast_kms();
    kms.register("test://old", CountingKek::new(3));
    kms.register("test://new", CountingKek::new(4));
    let old = EnvelopeBuilder::new(kms.clone(), "test://old")
        .build()
        .unwrap();
    let written = block(old.encode(sample(2))).unwrap();
    let rotated = EnvelopeBuilder::new(kms.clone(), "test://new")
        .decrypt_only("test://old")
        .build()
        .unwrap();
    assert_eq!(block(rotated.decode(written.clone())).unwrap(), sample(2));
    let fresh = block(rotated.encode(sample(1))).unwrap();
    assert_eq!(
        fresh[0].metadata_str("encryption-key-id"),
        Some("test://new")
    );

    // A namespace that does not list the old KEK refuses its payloads.
    let strict = EnvelopeBuilder::new(kms, "test://new").build().unwrap();
    let err = block(strict.decode(written)).unwrap_err();
    assert_eq!(err.kind(), CodecErrorKind::UnknownKey);
    assert_eq!(err.index(), Some(0));
    assert!(err.to_string().contains("decrypt_keks"), "{err}");
}

#[test]
fn keyring_and_envelope_payloads_decode_from_one_chain() {
    let keyring = Arc::new(Keyring::single(
        KeyId::new("ring-1").unwrap(),
        SecretKey::generate().unwrap(),
    ));
    let kms = fast_kms();
    kms.register("test://k", CountingKek::new(5));
    let envelope = EnvelopeBuilder::new(kms.clone(), "test://k")
        .keyring(AesGcmCodec::new(keyring.clone()))
        .build()
        .unwrap();
    let mut mixed = block(AesGcmCodec::new(keyring).encode(sample(2))).unwrap();
    mixed.extend(block(envelope.encode(sample(2))).unwrap());
    mixed.push(sample(1).remove(0));
    let mut expected = sample(2);
    expected.extend(sample(2));
    expected.extend(sample(1));
    assert_eq!(block(envelope.decode(mixed.clone())).unwrap(), expected);

    // Without a keyring, the keyring payload is refused by name.
    let bare = EnvelopeBuilder::new(kms, "test://k").build().unwrap();
    let err = block(bare.decode(mixed)).unwrap_err();
    assert_eq!(err.kind(), CodecErrorKind::UnknownKey);
    assert!(err.to_string().contains("ring-1"), "{err}");
}

#[test]
fn an_outage_is_unavailable_while_cached_keys_keep_working_and_recovery_follows() {
    let kek = CountingKek::new(6);
    let kms = kms_with(&kek);
    let codec = EnvelopeBuilder::new(kms.clone(), "test://k")
        .data_key_ttl(Duration::from_millis(600), Duration::from_millis(200))
        .build()
        .unwrap();
    let before = block(codec.encode(sample(3))).unwrap();
    let made = std::time::Instant::now();
    let sleep_until = |ms: u64| {
        let at = made + Duration::from_millis(ms);
        std::thread::sleep(at.saturating_duration_since(std::time::Instant::now()));
    };
    // A payload of another writer: its data key is not cached here.
    let other_kms = kms_with(&kek);
    let foreign = block(
        EnvelopeBuilder::new(other_kms, "test://k")
            .build()
            .unwrap()
            .encode(sample(1)),
    )
    .unwrap();

    kek.down.store(true, Ordering::SeqCst);
    assert_eq!(block(codec.decode(before.clone())).unwrap(), sample(3));
    let err = block(codec.decode(foreign.clone())).unwrap_err();
    assert_eq!(err.kind(), CodecErrorKind::Unavailable);
    assert!(err.to_string().contains("unavailable (unwrap)"), "{err}");
    // Encoding goes on with the current data key until it ends ...
    sleep_until(450);
    block(codec.encode(sample(1))).unwrap();
    // ... and then fails clearly.
    sleep_until(650);
    let err = block(codec.encode(sample(1))).unwrap_err();
    assert_eq!(err.kind(), CodecErrorKind::Unavailable);
    assert!(kms.stats().failures >= 3, "{:?}", kms.stats());

    kek.down.store(false, Ordering::SeqCst);
    assert_eq!(block(codec.decode(foreign)).unwrap(), sample(1));
    block(codec.encode(sample(1))).unwrap();
}

#[test]
fn tampered_payloads_and_keys_are_input_errors() {
    let kms = fast_kms();
    kms.register("test://k", CountingKek::new(7));
    let codec = EnvelopeBuilder::new(kms, "test://k").build().unwrap();
    let good = block(codec.encode(sample(1))).unwrap().remove(0);

    let mut flipped = good.clone();
    let mut data = flipped.data.to_vec();
    data[20] ^= 1;
    flipped.data = data.into();
    let err = block(codec.decode(vec![flipped])).unwrap_err();
    assert_eq!(err.kind(), CodecErrorKind::InvalidPayload, "{err}");

    for dek in [&b"%%%"[..], b"", b"AAAA"] {
        let mut bad = good.clone();
        bad.metadata
            .insert("encryption-dek".into(), bytes::Bytes::copy_from_slice(dek));
        let err = block(codec.decode(vec![bad])).unwrap_err();
        assert!(err.kind().is_input_fault(), "{dek:?}: {err}");
    }
    let mut short = good;
    short.data = short.data.slice(..10);
    assert!(
        block(codec.decode(vec![short]))
            .unwrap_err()
            .kind()
            .is_input_fault()
    );
}

#[test]
fn keys_never_show_in_debug_or_errors() {
    let secret = base64::engine::general_purpose::URL_SAFE.encode([0x42; 32]);
    let uri = format!("testing://{secret}");
    let kms = fast_kms();
    let codec = EnvelopeBuilder::new(kms.clone(), uri.as_str())
        .build()
        .unwrap();
    let out = block(codec.encode(sample(1))).unwrap();
    // The proxy writes testing:// KEKs as base64key://.
    assert_eq!(
        out[0].metadata_str("encryption-key-id"),
        Some(format!("base64key://{secret}").as_str())
    );
    let other = EnvelopeBuilder::new(
        kms.clone(),
        "testing://AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    )
    .build()
    .unwrap();
    let err = block(other.decode(out)).unwrap_err().to_string();
    for shown in [format!("{codec:?}"), format!("{kms:?}"), err] {
        assert!(!shown.contains(&secret[..12]), "{shown}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn envelope_round_trips(payloads in test_support::batch(2048)) {
        let kms = fast_kms();
        kms.register("test://k", CountingKek::new(8));
        let codec = EnvelopeBuilder::new(kms, "test://k").build().unwrap();
        let encoded = block(codec.encode(payloads.clone())).unwrap();
        prop_assert_eq!(encoded.len(), payloads.len());
        prop_assert!(encoded.iter().all(|p| p.encoding() == Some("binary/encrypted")));
        prop_assert_eq!(block(codec.decode(encoded)).unwrap(), payloads);
    }
}

#[test]
fn more_data_keys_than_a_codec_keeps_recent_still_cost_one_call_each() {
    let kek = CountingKek::new(9);
    let mut written = Vec::new();
    for _ in 0..20 {
        let kms = kms_with(&kek);
        let writer = EnvelopeBuilder::new(kms, "test://k").build().unwrap();
        written.extend(block(writer.encode(sample(2))).unwrap());
    }
    let reader_kms = kms_with(&kek);
    let reader = EnvelopeBuilder::new(reader_kms.clone(), "test://k")
        .build()
        .unwrap();
    for _ in 0..3 {
        let decoded = block(reader.decode(written.clone())).unwrap();
        assert_eq!(decoded.len(), 40);
        assert_eq!(decoded[38..], sample(2)[..]);
    }
    assert_eq!(kek.unwraps.load(Ordering::SeqCst), 20);
    let stats = reader_kms.stats();
    assert_eq!(stats.cache_misses, 20);
    assert_eq!(stats.cache_hits, 40, "{stats:?}");
}

fn multi_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap()
}

/// `n` decodes of `written` at once on four threads, by one reader with a
/// KMS of its own (a cold cache) under `kek`; the reader and the results.
fn decode_at_once(
    kek: &Arc<CountingKek>,
    written: &[Payload],
    n: usize,
) -> (Arc<EnvelopeCodec>, Vec<CodecResult>) {
    let reader = Arc::new(
        EnvelopeBuilder::new(kms_with(kek), "test://k")
            .build()
            .unwrap(),
    );
    let results = multi_thread().block_on(async {
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let reader = reader.clone();
                let written = written.to_vec();
                tokio::spawn(async move { reader.decode(written).await })
            })
            .collect();
        let mut results = Vec::with_capacity(n);
        for task in tasks {
            results.push(task.await.unwrap());
        }
        results
    });
    (reader, results)
}

#[test]
fn a_failed_unwrap_is_shared_by_its_waiters_not_retried_by_each() {
    let kek = CountingKek::new(10);
    let written = written_under(&kek, 1);
    kek.down.store(true, Ordering::SeqCst);
    let before = kek.calls.load(Ordering::SeqCst);
    let (reader, results) = decode_at_once(&kek, &written, 8);
    for result in results {
        let err = result.unwrap_err();
        assert_eq!(err.kind(), CodecErrorKind::Unavailable, "{err}");
    }
    // One caller's three tries, not eight callers' 24.
    assert_eq!(kek.calls.load(Ordering::SeqCst) - before, 3);
    kek.down.store(false, Ordering::SeqCst);
    assert_eq!(block(reader.decode(written)).unwrap(), sample(1));
}

#[test]
fn unwrapped_keys_expire_after_the_cache_ttl() {
    let kek = CountingKek::new(11);
    let written = written_under(&kek, 2);
    let mut options = KmsOptions::default();
    options.cache_ttl = Duration::from_millis(150);
    let reader_kms = Arc::new(Kms::new(options));
    reader_kms.register("test://k", kek.clone());
    let reader = EnvelopeBuilder::new(reader_kms, "test://k")
        .build()
        .unwrap();
    block(reader.decode(written.clone())).unwrap();
    block(reader.decode(written.clone())).unwrap();
    assert_eq!(kek.unwraps.load(Ordering::SeqCst), 1);
    std::thread::sleep(Duration::from_millis(200));
    block(reader.decode(written)).unwrap();
    assert_eq!(
        kek.unwraps.load(Ordering::SeqCst),
        2,
        "expired keys are unwrapped again"
    );
}

#[test]
fn during_an_outage_one_encoder_tries_to_renew_and_the_others_go_on() {
    let kek = CountingKek::new(12);
    let kms = kms_with(&kek);
    let codec = Arc::new(
        EnvelopeBuilder::new(kms, "test://k")
            .data_key_ttl(Duration::from_secs(30), Duration::from_millis(29_900))
            .build()
            .unwrap(),
    );
    block(codec.encode(sample(1))).unwrap();
    std::thread::sleep(Duration::from_millis(150));
    // Due for renewal, the KMS down: encoders keep the current key.
    kek.down.store(true, Ordering::SeqCst);
    let before = kek.calls.load(Ordering::SeqCst);
    multi_thread().block_on(async {
        let tasks: Vec<_> = (0..6)
            .map(|_| {
                let codec = codec.clone();
                tokio::spawn(async move { codec.encode(sample(1)).await })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
    });
    // At most one renewal's three tries; after it failed, nobody retried.
    assert!(kek.calls.load(Ordering::SeqCst) - before <= 3);
    let again = kek.calls.load(Ordering::SeqCst);
    block(codec.encode(sample(1))).unwrap();
    assert_eq!(
        kek.calls.load(Ordering::SeqCst),
        again,
        "backs off after a failure"
    );
}

#[test]
fn oversized_wrapped_keys_and_too_many_data_keys_are_refused_before_any_kms_call() {
    let kek = CountingKek::new(13);
    let kms = kms_with(&kek);
    let codec = EnvelopeBuilder::new(kms, "test://k").build().unwrap();
    let good = block(codec.encode(sample(1))).unwrap().remove(0);
    let with_dek = |dek: String| {
        let mut p = good.clone();
        p.metadata
            .insert("encryption-dek".into(), dek.into_bytes().into());
        p
    };
    let before = kek.calls.load(Ordering::SeqCst);
    let err = block(codec.decode(vec![with_dek("A".repeat(9000))])).unwrap_err();
    assert_eq!(err.kind(), CodecErrorKind::InvalidPayload, "{err}");
    let many: Vec<_> = (0..300)
        .map(|i| with_dek(STANDARD.encode(format!("key-{i}"))))
        .collect();
    let err = block(codec.decode(many)).unwrap_err();
    assert_eq!(err.kind(), CodecErrorKind::LimitExceeded, "{err}");
    assert_eq!(err.index(), Some(payload_kms::MAX_DATA_KEYS_PER_BATCH));
    assert_eq!(kek.calls.load(Ordering::SeqCst), before);
}
