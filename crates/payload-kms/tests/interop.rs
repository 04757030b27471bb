//! Interop with the Temporal Proxy's envelope format as Python writes it
//! (`cryptography` AES-256-GCM, PyNaCl secretbox for the `testing://` KEK),
//! both ways.
//!
//! 1. Every case in `testdata/python/envelope.json` (written by
//!    `xtask/vectors/make_vectors.py`) decodes with our envelope codec to
//!    exactly the bytes of its `<case>.inner.bin`; a flipped ciphertext byte
//!    and a KEK the codec was not given are refused as the input's fault.
//! 2. `write_rust_vectors` writes our encodings into
//!    `$PAYLOADKIT_RUST_VECTORS_DIR/envelope/` for
//!    `python xtask/vectors/make_vectors.py --check-rust-envelope-dir DIR` to
//!    decode (run by `cargo xtask vectors --check-rust`). Without that
//!    variable it does nothing.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use payload_converter::{CodecErrorKind, PayloadCodec, PayloadExt};
use payload_kms::{EnvelopeBuilder, EnvelopeCodec, Kms, KmsError, KmsOptions};
use payload_proto::temporal::api::common::v1::Payload;
use prost::Message;
use serde::Deserialize;

#[derive(Deserialize)]
struct Manifest {
    active_kek: String,
    keks: Vec<ManifestKek>,
    data_keys: Vec<ManifestDataKey>,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct ManifestKek {
    name: String,
    /// `testing://<key>`, as configured.
    uri: String,
    /// `base64key://<key>`, as written on payloads.
    key_id: String,
}

#[derive(Deserialize)]
struct ManifestDataKey {
    name: String,
    kek: String,
    /// The `encryption-dek` text of every payload under this data key.
    encryption_dek: String,
}

#[derive(Deserialize)]
struct Case {
    case: String,
    kek: String,
    data_key: String,
    inner_encoding: String,
    inner_data_len: usize,
    files: Vec<String>,
}

impl Manifest {
    fn kek(&self, name: &str) -> &ManifestKek {
        self.keks
            .iter()
            .find(|k| k.name == name)
            .unwrap_or_else(|| panic!("no KEK `{name}` in envelope.json"))
    }

    fn active(&self) -> &ManifestKek {
        self.kek(&self.active_kek)
    }

    /// The KEKs other than the active one.
    fn others(&self) -> impl Iterator<Item = &ManifestKek> {
        self.keks.iter().filter(|k| k.name != self.active_kek)
    }

    fn data_key(&self, name: &str) -> &ManifestDataKey {
        self.data_keys
            .iter()
            .find(|d| d.name == name)
            .unwrap_or_else(|| panic!("no data key `{name}` in envelope.json"))
    }
}

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/python")
}

fn manifest() -> Manifest {
    let text = fs::read_to_string(testdata().join("envelope.json")).expect("envelope.json");
    serde_json::from_str(&text).expect("valid envelope.json")
}

fn read_payload(path: &Path) -> (Payload, Vec<u8>) {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let payload = Payload::decode(bytes.as_slice()).expect("a serialized Payload");
    (payload, bytes)
}

/// The outer payload of `case` and the serialized inner payload decoding
/// must give.
fn case_files(case: &Case) -> (Payload, Vec<u8>) {
    assert_eq!(
        case.files,
        [
            format!("{}.bin", case.case),
            format!("{}.inner.bin", case.case)
        ]
    );
    let (outer, _) = read_payload(&testdata().join(&case.files[0]));
    let (_, inner) = read_payload(&testdata().join(&case.files[1]));
    (outer, inner)
}

/// A codec that encrypts under `active` (a KEK URI) and may decrypt under
/// `decrypt_only`, on a KMS of its own (a cold cache).
fn envelope_codec(active: &str, decrypt_only: &[&str]) -> (Arc<Kms>, EnvelopeCodec) {
    let kms = Arc::new(Kms::new(KmsOptions::default()));
    let codec = decrypt_only
        .iter()
        .fold(EnvelopeBuilder::new(kms.clone(), active), |b, uri| {
            b.decrypt_only(*uri)
        })
        .build()
        .expect("a testing KEK needs no configuration");
    (kms, codec)
}

#[tokio::test]
async fn decodes_every_python_case_byte_for_byte() {
    let manifest = manifest();
    let others: Vec<&str> = manifest.others().map(|k| k.uri.as_str()).collect();
    let mut seen = Vec::new();
    for case in &manifest.cases {
        let (outer, want) = case_files(case);
        let kek = manifest.kek(&case.kek);
        // The proxy's wire format, as Python wrote it.
        assert_eq!(outer.metadata.len(), 3, "{}", case.case);
        assert_eq!(outer.encoding(), Some("binary/encrypted"), "{}", case.case);
        assert_eq!(
            outer.metadata_str("encryption-key-id"),
            Some(kek.key_id.as_str()),
            "{}",
            case.case
        );
        let data_key = manifest.data_key(&case.data_key);
        assert_eq!(data_key.kek, case.kek);
        assert_eq!(
            outer.metadata_str("encryption-dek"),
            Some(data_key.encryption_dek.as_str()),
            "{}",
            case.case
        );

        // Each case on a cold cache: one unwrap of its data key.
        let (kms, codec) = envelope_codec(&manifest.active().uri, &others);
        let decoded =
            test_support::decode_vector(&codec, outer, &want, (&case.case, &case.files[1])).await;
        assert_eq!(decoded.encoding(), Some(case.inner_encoding.as_str()));
        assert_eq!(decoded.data.len(), case.inner_data_len, "{}", case.case);
        assert_eq!((kms.stats().unwraps, kms.stats().wraps), (1, 0));
        seen.push(case.case.clone());
    }

    // Every committed vector is in the manifest, and the manifest is complete.
    seen.sort();
    assert_eq!(test_support::vector_cases(&testdata()), seen);
    assert_eq!(seen.len(), 8);
    // The cases cover what they claim: empty data, a large payload, and
    // two data keys under the active KEK.
    assert!(manifest.cases.iter().any(|c| c.inner_data_len == 0));
    assert!(
        manifest
            .cases
            .iter()
            .any(|c| c.inner_data_len >= 100 * 1024)
    );
    let mut active_keys: Vec<&str> = manifest
        .cases
        .iter()
        .filter(|c| c.kek == manifest.active_kek)
        .map(|c| c.data_key.as_str())
        .collect();
    active_keys.sort_unstable();
    active_keys.dedup();
    assert_eq!(active_keys.len(), 2);
}

#[tokio::test]
async fn one_python_batch_with_two_data_keys_costs_one_unwrap_per_key() {
    let manifest = manifest();
    let (outers, wants): (Vec<Payload>, Vec<Vec<u8>>) = manifest
        .cases
        .iter()
        .filter(|c| c.kek == manifest.active_kek)
        .map(case_files)
        .unzip();
    let (kms, codec) = envelope_codec(&manifest.active().uri, &[]);
    let decoded = codec
        .decode(outers.clone())
        .await
        .expect("the batch decodes");
    let decoded: Vec<Vec<u8>> = decoded.iter().map(Message::encode_to_vec).collect();
    assert_eq!(decoded, wants);
    assert_eq!(kms.stats().unwraps, 2, "{:?}", kms.stats());
    // Again: both data keys come from the cache.
    codec.decode(outers).await.expect("the batch decodes");
    assert_eq!(kms.stats().unwraps, 2, "{:?}", kms.stats());
}

#[tokio::test]
async fn rust_writes_the_key_id_python_writes() {
    let manifest = manifest();
    for kek in &manifest.keks {
        let (_, codec) = envelope_codec(&kek.uri, &[]);
        assert_eq!(codec.active_kek().uri().id(), kek.key_id);
        let plain = Payload::with_encoding("json/plain", &b"1"[..]);
        let sealed = codec.encode(vec![plain]).await.expect("encodes");
        assert_eq!(
            sealed[0].metadata_str("encryption-key-id"),
            Some(kek.key_id.as_str())
        );
    }
}

#[tokio::test]
async fn a_flipped_ciphertext_byte_is_the_inputs_fault() {
    let manifest = manifest();
    let (kms, codec) = envelope_codec(&manifest.active().uri, &[]);
    for case in manifest
        .cases
        .iter()
        .filter(|c| c.kek == manifest.active_kek)
    {
        let (good, _) = case_files(case);
        // The first ciphertext byte (or the tag's, for an empty plaintext),
        // and the tag's last byte.
        for at in [12, good.data.len() - 1] {
            let mut bad = good.clone();
            let mut data = bad.data.to_vec();
            data[at] ^= 0x01;
            bad.data = data.into();
            // In second place of a batch, after an intact payload.
            let err = codec
                .decode(vec![good.clone(), bad])
                .await
                .expect_err("a flipped byte must not decode");
            assert_eq!(
                err.kind(),
                CodecErrorKind::InvalidPayload,
                "{} byte {at}: {err}",
                case.case
            );
            assert!(err.kind().is_input_fault());
            assert_eq!(err.index(), Some(1), "{}: {err}", case.case);
        }
    }
    // The data keys unwrapped fine: only AES-GCM refused.
    assert_eq!(kms.stats().unwraps, 2);
}

#[tokio::test]
async fn a_payload_under_a_kek_the_codec_was_not_given_is_refused() {
    let manifest = manifest();
    let (kms, codec) = envelope_codec(&manifest.active().uri, &[]);
    let foreign: Vec<&Case> = manifest
        .cases
        .iter()
        .filter(|c| c.kek != manifest.active_kek)
        .collect();
    assert!(!foreign.is_empty());
    for case in foreign {
        let (outer, want) = case_files(case);
        let err = codec
            .decode(vec![outer.clone()])
            .await
            .expect_err("another KEK's payload must be refused");
        assert_eq!(err.kind(), CodecErrorKind::UnknownKey, "{err}");
        assert!(err.kind().is_input_fault());
        assert!(
            matches!(
                err.inner().downcast_ref::<KmsError>(),
                Some(KmsError::UnknownKek { .. })
            ),
            "{err}"
        );
        // The message names the KEK's scheme, never its key.
        let key_text = manifest
            .kek(&case.kek)
            .key_id
            .trim_start_matches("base64key://");
        let text = err.to_string();
        assert!(text.contains("base64key://<hidden>"), "{text}");
        assert!(!text.contains(&key_text[..12]), "{text}");
        // No KMS call was made for it.
        assert_eq!(kms.stats().unwraps, 0);

        // With that KEK allowed for decryption, it decodes.
        let (_, allowed) = envelope_codec(
            &manifest.active().uri,
            &[manifest.kek(&case.kek).uri.as_str()],
        );
        let decoded = allowed.decode(vec![outer]).await.expect("decodes");
        assert_eq!(decoded[0].encode_to_vec(), want);
    }
}

/// Payloads of the shapes of the Python cases (through our converter,
/// which the converter crate's golden tests hold to Python's bytes).
#[tokio::test]
async fn write_rust_vectors() {
    let Some(dir) = std::env::var_os("PAYLOADKIT_RUST_VECTORS_DIR") else {
        return;
    };
    // A folder of its own: payload-codecs' writer cleans the top folder.
    let dir = PathBuf::from(dir).join("envelope");
    test_support::fresh_vectors_dir(&dir);

    let manifest = manifest();
    let samples = test_support::sample_payloads().await;
    let inners: Vec<Payload> = samples.iter().map(|(_, p)| p.clone()).collect();
    // Two batches under the active KEK (two codecs: two data keys), one
    // under each other KEK.
    let mut batches = vec![("b1", manifest.active()), ("b2", manifest.active())];
    batches.extend(manifest.others().map(|k| ("b3", k)));
    let mut written = 0;
    for (batch, kek) in batches {
        let (kms, codec) = envelope_codec(&kek.uri, &[]);
        let outers = codec.encode(inners.clone()).await.expect("encodes");
        assert_eq!(kms.stats().wraps, 1, "one data key per batch");
        // Our own decoder agrees before Python is asked.
        let (_, reader) = envelope_codec(&kek.uri, &[]);
        let back = reader.decode(outers.clone()).await.expect("decodes");
        assert_eq!(back, inners, "{batch}");
        for ((name, inner), outer) in samples.iter().zip(&outers) {
            assert_eq!(
                outer.metadata_str("encryption-key-id"),
                Some(kek.key_id.as_str())
            );
            let stem = format!("rs_env_{batch}_{}_{name}", kek.name);
            test_support::write_vector(&dir, &stem, outer, inner);
            written += 1;
        }
    }
    assert_eq!(samples.len(), 8);
    assert_eq!(written, samples.len() * (2 + manifest.others().count()));
}
