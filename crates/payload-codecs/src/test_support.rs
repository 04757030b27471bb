//! Shared helpers for the unit tests: running codec futures, test keys and
//! proptest strategies for payloads.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use payload_converter::PayloadCodec;
use payload_proto::temporal::api::common::v1::Payload;
use proptest::prelude::*;

use crate::keyring::{KeyId, Keyring, SecretKey};

/// Runs a codec future to completion.
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime builds")
        .block_on(future)
}

pub(crate) fn encode(codec: &dyn PayloadCodec, payloads: Vec<Payload>) -> Vec<Payload> {
    block_on(codec.encode(payloads)).expect("encode succeeds")
}

pub(crate) fn decode(
    codec: &dyn PayloadCodec,
    payloads: Vec<Payload>,
) -> Result<Vec<Payload>, payload_converter::PayloadCodecError> {
    block_on(codec.decode(payloads))
}

pub(crate) fn id(s: &str) -> KeyId {
    KeyId::new(s).expect("valid test key id")
}

pub(crate) fn key(byte: u8) -> SecretKey {
    SecretKey::from_bytes(&[byte; 32]).expect("32 bytes")
}

/// A keyring of keys `a` (bytes 0x0a) and `b` (0x0b) with `active` active.
pub(crate) fn keyring_ab(active: &str) -> Arc<Keyring> {
    Arc::new(
        Keyring::new(id(active), [(id("a"), key(0x0a)), (id("b"), key(0x0b))])
            .expect("valid keyring"),
    )
}

/// A batch of 0 to 3 payloads.
pub(crate) fn batch() -> impl Strategy<Value = Vec<Payload>> {
    test_support::batch(65536)
}

/// Decodes under `budget`.
pub(crate) fn decode_within(
    codec: &dyn PayloadCodec,
    payloads: Vec<Payload>,
    budget: &payload_converter::Budget,
) -> Result<Vec<Payload>, payload_converter::PayloadCodecError> {
    block_on(codec.decode_within(payloads, budget))
}

/// A serialized `binary/plain` payload of `len` zero bytes, written into a
/// compressing writer a mebibyte at a time.
pub(crate) fn write_zeros_payload(out: &mut impl std::io::Write, len: usize) {
    use prost::Message as _;
    let mut prefix = Payload {
        metadata: [("encoding".to_owned(), Bytes::from_static(b"binary/plain"))].into(),
        ..Payload::default()
    }
    .encode_to_vec();
    prefix.push(0x12);
    prost::encoding::encode_varint(len as u64, &mut prefix);
    out.write_all(&prefix).expect("write to a Vec");
    let zeros = vec![0u8; 1024 * 1024];
    let mut left = len;
    while left > 0 {
        let n = left.min(zeros.len());
        out.write_all(&zeros[..n]).expect("write to a Vec");
        left -= n;
    }
}
