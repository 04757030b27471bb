//! Interop with the official Python SDK sample codecs, both ways.
//!
//! 1. Every case in `testdata/python/codecs.json` (written by the real Python
//!    SDK with `cryptography` and `zlib`) decodes with our codecs to exactly
//!    the bytes of its `<case>.inner.bin`.
//! 2. `write_rust_vectors` writes our encodings into
//!    `$PAYLOADKIT_RUST_VECTORS_DIR` for
//!    `python xtask/vectors/make_vectors.py --check-rust-dir DIR` to decode
//!    (run by `cargo xtask vectors --check-rust`). Without that variable it
//!    does nothing.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use payload_codecs::{ChainBuilder, KeyId, Keyring, SecretKey, ZlibCodec};
use payload_converter::{CodecChain, PayloadCodec, PayloadExt};
use payload_proto::temporal::api::common::v1::Payload;
use prost::Message;
use serde::Deserialize;

#[derive(Deserialize)]
struct Manifest {
    keys: Vec<ManifestKey>,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct ManifestKey {
    key_id: String,
    key_b64: String,
}

#[derive(Deserialize)]
struct Case {
    case: String,
    /// In encode order: "zlib", "encrypt".
    codec_chain: Vec<String>,
    key_id: Option<String>,
    files: Vec<String>,
}

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/python")
}

fn manifest() -> Manifest {
    let text = fs::read_to_string(testdata().join("codecs.json")).expect("codecs.json");
    serde_json::from_str(&text).expect("valid codecs.json")
}

/// The Python test keys, with `active` active.
fn python_keyring(manifest: &Manifest, active: &str) -> Arc<Keyring> {
    let keys = manifest.keys.iter().map(|k| {
        let bytes = STANDARD.decode(&k.key_b64).expect("base64 key");
        (
            KeyId::new(k.key_id.clone()).expect("valid id"),
            SecretKey::from_bytes(&bytes).expect("32-byte key"),
        )
    });
    Arc::new(Keyring::new(KeyId::new(active).expect("valid id"), keys).expect("valid keyring"))
}

/// A chain from step names in encode order, as in `codecs.json`.
fn chain(steps: &[String], keyring: &Arc<Keyring>, zlib: &ZlibCodec) -> CodecChain {
    steps
        .iter()
        .fold(ChainBuilder::new(), |builder, step| match step.as_str() {
            "zlib" => builder.compress_zlib(zlib.clone()),
            "encrypt" => builder.encrypt(Arc::clone(keyring)),
            other => panic!("unknown codec `{other}` in codecs.json"),
        })
        .build()
}

fn read_payload(path: &Path) -> (Payload, Vec<u8>) {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let payload = Payload::decode(bytes.as_slice()).expect("a serialized Payload");
    (payload, bytes)
}

#[tokio::test]
async fn decodes_every_python_case_byte_for_byte() {
    let manifest = manifest();
    let keyring = python_keyring(&manifest, "test-key-id");
    let mut seen = Vec::new();
    for case in &manifest.cases {
        assert_eq!(
            case.files,
            [
                format!("{}.bin", case.case),
                format!("{}.inner.bin", case.case)
            ]
        );
        let (outer, _) = read_payload(&testdata().join(&case.files[0]));
        let (_, want) = read_payload(&testdata().join(&case.files[1]));
        let outermost = match case.codec_chain.last().map(String::as_str) {
            Some("encrypt") => "binary/encrypted",
            _ => "binary/zlib",
        };
        assert_eq!(outer.encoding(), Some(outermost), "{}", case.case);
        if let Some(key_id) = &case.key_id {
            assert_eq!(
                outer.metadata_str("encryption-key-id"),
                Some(key_id.as_str())
            );
        }

        let chain = chain(&case.codec_chain, &keyring, &ZlibCodec::new());
        test_support::decode_vector(&chain, outer, &want, (&case.case, &case.files[1])).await;
        seen.push(case.case.clone());
    }
    // Every committed vector is in the manifest, and the manifest is complete.
    seen.sort();
    assert_eq!(test_support::vector_cases(&testdata()), seen);
    assert_eq!(seen.len(), 9);
}

#[tokio::test]
async fn decodes_python_payloads_with_a_keyring_file() {
    let manifest = manifest();
    let dir = std::env::temp_dir().join(format!("payload-codecs-interop-{}", std::process::id()));
    fs::create_dir_all(&dir).expect("temp dir");
    let mut toml = String::from("active = \"test-key-id\"\n");
    for key in &manifest.keys {
        toml.push_str(&format!(
            "\n[[keys]]\nid = \"{}\"\nbase64 = \"{}\"\n",
            key.key_id, key.key_b64
        ));
    }
    let path = dir.join("keyring.toml");
    fs::write(&path, toml).expect("write keyring");
    let keyring = Keyring::load(&path, &|_| None).expect("valid keyring file");
    fs::remove_dir_all(&dir).expect("clean up");

    let codec = payload_codecs::AesGcmCodec::new(Arc::new(keyring));
    for case in ["enc_string", "enc_old_key"] {
        let (outer, _) = read_payload(&testdata().join(format!("{case}.bin")));
        let (_, want) = read_payload(&testdata().join(format!("{case}.inner.bin")));
        let decoded = codec.decode(vec![outer]).await.expect("decodes");
        assert_eq!(decoded[0].encode_to_vec(), want, "{case}");
    }
}

/// Values in the shapes the Python SDK writes (through our converter, which
/// the converter crate's golden tests hold to Python's bytes).
#[tokio::test]
async fn write_rust_vectors() {
    let Some(dir) = std::env::var_os("PAYLOADKIT_RUST_VECTORS_DIR") else {
        return;
    };
    let dir = PathBuf::from(dir);
    test_support::fresh_vectors_dir(&dir);

    let manifest = manifest();
    let always_zlib = ZlibCodec::new().with_always_encode(true);
    let steps = |names: &[&str]| names.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let samples = test_support::sample_payloads().await;
    let mut written = 0;
    for (value, inner) in &samples {
        let mut cases = Vec::new();
        for key in &manifest.keys {
            let keyring = python_keyring(&manifest, &key.key_id);
            cases.push((
                format!("rs_enc_{value}_{}", key.key_id.replace('-', "_")),
                chain(&steps(&["encrypt"]), &keyring, &always_zlib),
            ));
        }
        let keyring = python_keyring(&manifest, "test-key-id");
        cases.push((
            format!("rs_zlib_{value}"),
            chain(&steps(&["zlib"]), &keyring, &always_zlib),
        ));
        cases.push((
            format!("rs_zlib_then_encrypt_{value}"),
            chain(&steps(&["zlib", "encrypt"]), &keyring, &always_zlib),
        ));
        for (name, chain) in cases {
            let outer = chain
                .encode(vec![inner.clone()])
                .await
                .expect("encodes")
                .remove(0);
            // Our own decoder agrees before Python is asked.
            let back = chain.decode(vec![outer.clone()]).await.expect("decodes");
            assert_eq!(back, std::slice::from_ref(inner), "{name}");
            test_support::write_vector(&dir, &name, &outer, inner);
            written += 1;
        }
    }
    // Eight samples, each under two keys, zlib, and zlib then encrypt.
    assert_eq!(written, 8 * 4);
}
