//! The storage stage around a real codec chain (AES-256-GCM with the
//! samples' key) on the filesystem driver: what is offloaded, what comes
//! back, and the references' forms.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use payload_codecs::{ChainBuilder, Keyring};
use payload_converter::{Budget, PayloadCodec};
use payload_proto::temporal::api::common::v1::Payload;
use payload_storage::reference::{REFERENCE_MARKER_KEY, is_reference};
use payload_storage::{
    DriverKind, Resolve, StorageCodec, StorageError, StorageReference, StorageSettings,
};
use proptest::prelude::*;

const THRESHOLD: usize = 1024;

fn stage(dir: &Path) -> StorageCodec {
    let keyring = Keyring::load(&test_support::write_sample_keyring(dir), &|_| None)
        .expect("the sample keyring loads");
    let chain = ChainBuilder::new().encrypt(Arc::new(keyring)).build();
    let mut settings = StorageSettings::new(DriverKind::Filesystem);
    settings.path = Some(dir.join("objects"));
    settings.threshold_bytes = THRESHOLD;
    let storage = settings
        .build(&|_| None, &|p| p.to_path_buf())
        .expect("a filesystem driver in a temporary folder builds");
    StorageCodec::new(Arc::new(chain), Arc::new(storage))
}

fn json(text: &str) -> Payload {
    Payload {
        metadata: [("encoding".to_owned(), Bytes::from_static(b"json/plain"))].into(),
        data: Bytes::copy_from_slice(text.as_bytes()),
        external_payloads: vec![],
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime starts")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn every_batch_round_trips_and_only_large_payloads_are_offloaded(
        batch in proptest::collection::vec(test_support::payload(4 * THRESHOLD), 0..4),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let codec = stage(dir.path());
        runtime().block_on(async {
            let encoded = codec.encode(batch.clone()).await.unwrap();
            prop_assert_eq!(encoded.len(), batch.len());
            for payload in &encoded {
                let reference = StorageReference::from_payload(payload).unwrap();
                match reference {
                    Some(r) => prop_assert!(r.size_bytes.unwrap() >= THRESHOLD as u64),
                    None => prop_assert!(payload.data.len() < THRESHOLD),
                }
            }
            let decoded = codec.decode(encoded.clone()).await.unwrap();
            prop_assert_eq!(&decoded, &batch);
            // Preserving leaves the references and decodes the rest.
            let preserved = codec
                .decode_with(encoded.clone(), &Budget::unlimited(), Resolve::Preserve)
                .await
                .unwrap();
            for ((kept, original), sent) in preserved.iter().zip(&batch).zip(&encoded) {
                if is_reference(sent) {
                    prop_assert_eq!(kept, sent);
                } else {
                    prop_assert_eq!(kept, original);
                }
            }
            Ok(())
        })?;
    }
}

#[tokio::test]
async fn download_takes_references_only() {
    let dir = tempfile::tempdir().unwrap();
    let codec = stage(dir.path());
    let large = json(&format!("\"{}\"", "y".repeat(4 * THRESHOLD)));
    let encoded = codec.encode(vec![large.clone(), json("1")]).await.unwrap();
    assert!(is_reference(&encoded[0]));
    assert!(!is_reference(&encoded[1]));
    let got = codec
        .decode_with(
            vec![encoded[0].clone()],
            &Budget::unlimited(),
            Resolve::Only,
        )
        .await
        .unwrap();
    assert_eq!(got, vec![large]);
    let err = codec
        .decode_with(encoded, &Budget::unlimited(), Resolve::Only)
        .await
        .unwrap_err();
    assert_eq!(err.index(), Some(1));
    assert!(matches!(
        err.inner().downcast_ref::<StorageError>(),
        Some(StorageError::NotAReference(1))
    ));
}

#[tokio::test]
async fn a_reference_that_went_through_the_codec_is_read() {
    // What Python 1.35 writes once it encodes references: the reference
    // through the client's codecs, with the marker and the size details.
    let dir = tempfile::tempdir().unwrap();
    let codec = stage(dir.path());
    let keyring = Keyring::load(&dir.path().join("keyring.toml"), &|_| None).unwrap();
    let chain = ChainBuilder::new().encrypt(Arc::new(keyring)).build();
    let large = json(&format!("\"{}\"", "z".repeat(4 * THRESHOLD)));
    let reference = codec.encode(vec![large.clone()]).await.unwrap().remove(0);
    let mut marked = chain
        .encode(vec![reference.clone()])
        .await
        .unwrap()
        .remove(0);
    marked
        .metadata
        .insert(REFERENCE_MARKER_KEY.to_owned(), Bytes::from_static(b"true"));
    marked.external_payloads = reference.external_payloads.clone();
    assert_eq!(
        codec.decode(vec![marked.clone()]).await.unwrap(),
        vec![large]
    );
    let preserved = codec
        .decode_with(vec![marked], &Budget::unlimited(), Resolve::Preserve)
        .await
        .unwrap();
    assert_eq!(preserved, vec![reference]);
}

#[tokio::test]
async fn a_reference_to_an_unknown_driver_or_a_deleted_object_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let codec = stage(dir.path());
    let large = json(&format!("\"{}\"", "w".repeat(4 * THRESHOLD)));
    let reference = codec.encode(vec![large]).await.unwrap().remove(0);
    let mut parsed = StorageReference::from_payload(&reference).unwrap().unwrap();
    parsed.driver_name = "aws.s3driver".to_owned();
    let err = codec.decode(vec![parsed.to_payload()]).await.unwrap_err();
    assert!(
        err.to_string().contains("aws.s3driver") && err.to_string().contains("payloadkit.fsdriver"),
        "{err}"
    );
    std::fs::remove_dir_all(dir.path().join("objects")).unwrap();
    let err = codec.decode(vec![reference]).await.unwrap_err();
    assert!(
        matches!(
            err.inner().downcast_ref::<StorageError>(),
            Some(StorageError::Missing { .. })
        ),
        "{err}"
    );
}
