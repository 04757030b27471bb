//! [`DataKey`]: one AES-256-GCM key ready to seal and open payloads in the
//! `binary/encrypted` data layout (12-byte nonce ‖ ciphertext ‖ 16-byte
//! tag, no associated data). The keyring codec and envelope encryption
//! (a data key wrapped by a KMS) share it, so both write the same bytes.

use std::fmt;

use bytes::{Bytes, BytesMut};
use payload_converter::Budget;
use payload_proto::temporal::api::common::v1::Payload;
use prost::Message;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use crate::aes_gcm::ENCODING_ENCRYPTED;
use crate::error::CodecError;
use crate::keyring::SecretKey;

/// Length of the AES-GCM authentication tag.
pub const TAG_LEN: usize = 16;

/// The nonce length of the `binary/encrypted` layout.
pub const NONCE_BYTES: usize = NONCE_LEN;

/// An AES-256-GCM key expanded for `ring`. `Debug` shows nothing of it.
pub struct DataKey {
    aead: LessSafeKey,
}

/// Opening sealed bytes failed: they were cut short, or authentication
/// failed (another key, or changed bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the sealed bytes were cut short or do not authenticate under this key")]
pub struct OpenError;

impl DataKey {
    /// The key for `secret`.
    pub fn new(secret: &SecretKey) -> Self {
        let unbound = UnboundKey::new(&AES_256_GCM, secret.as_bytes())
            .expect("invariant: a SecretKey always has the 32 bytes AES-256-GCM needs");
        Self {
            aead: LessSafeKey::new(unbound),
        }
    }

    /// `nonce` ‖ AES-256-GCM(`payload` serialized) ‖ tag, the buffer charged
    /// to `budget` first. `nonce` must be 12 fresh random bytes.
    pub fn seal_payload(
        &self,
        payload: &Payload,
        nonce: &[u8],
        budget: &Budget,
    ) -> Result<Vec<u8>, CodecError> {
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CodecError::Random)?;
        let inner_len = payload.encoded_len();
        budget.charge(NONCE_LEN + inner_len + TAG_LEN)?;
        let mut buf = Vec::with_capacity(NONCE_LEN + inner_len + TAG_LEN);
        buf.extend_from_slice(nonce.as_ref());
        // A Vec grows as needed, so this cannot run out of room.
        payload
            .encode(&mut buf)
            .map_err(|source| CodecError::Serialize { source })?;
        let tag = self
            .aead
            .seal_in_place_separate_tag(nonce, Aad::empty(), &mut buf[NONCE_LEN..])
            .map_err(|_| CodecError::Encrypt)?;
        buf.extend_from_slice(tag.as_ref());
        Ok(buf)
    }

    /// The payload sealed in `data` by [`seal_payload`](Self::seal_payload).
    ///
    /// When `data` is its buffer's only owner (as after JSON or protobuf
    /// decoding into a fresh buffer), it is decrypted in place; otherwise
    /// the ciphertext is copied once (charged to `budget`). Either way the
    /// inner payload's fields are slices of that one buffer. A failed
    /// authentication is `on_failure()`.
    pub fn open_payload(
        &self,
        data: Bytes,
        budget: &Budget,
        on_failure: impl FnOnce() -> CodecError,
    ) -> Result<Payload, CodecError> {
        let len = data.len();
        if len < NONCE_LEN + TAG_LEN {
            return Err(CodecError::Truncated { len });
        }
        let nonce = Nonce::try_assume_unique_for_key(&data[..NONCE_LEN])
            .map_err(|_| CodecError::Truncated { len })?;
        let (mut buf, start) = match data.try_into_mut() {
            Ok(owned) => (owned, NONCE_LEN),
            Err(shared) => {
                budget.charge(len - NONCE_LEN)?;
                (BytesMut::from(&shared[NONCE_LEN..]), 0)
            }
        };
        let plain_len = self
            .aead
            .open_in_place(nonce, Aad::empty(), &mut buf[start..])
            .map_err(|_| on_failure())?
            .len();
        let plain = buf.freeze().slice(start..start + plain_len);
        Payload::decode(plain).map_err(|source| CodecError::InvalidInnerPayload {
            encoding: ENCODING_ENCRYPTED,
            source,
        })
    }

    /// Random nonce ‖ AES-256-GCM(`plain`, associated data `aad`) ‖ tag:
    /// for small secrets (a data key wrapped by a keyring key). Give a
    /// non-empty `aad` naming the use, so that what is sealed here can never
    /// be opened as a payload (payloads have no associated data) and the
    /// other way round.
    pub fn seal_bytes(&self, plain: &[u8], aad: &[u8]) -> Result<Vec<u8>, CodecError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| CodecError::Random)?;
        let mut buf = Vec::with_capacity(NONCE_LEN + plain.len() + TAG_LEN);
        buf.extend_from_slice(&nonce);
        buf.extend_from_slice(plain);
        let tag = self
            .aead
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut buf[NONCE_LEN..],
            )
            .map_err(|_| CodecError::Encrypt)?;
        buf.extend_from_slice(tag.as_ref());
        Ok(buf)
    }

    /// The bytes sealed by [`seal_bytes`](Self::seal_bytes) with the same
    /// `aad`, zeroized when dropped.
    pub fn open_bytes(&self, sealed: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, OpenError> {
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return Err(OpenError);
        }
        let nonce =
            Nonce::try_assume_unique_for_key(&sealed[..NONCE_LEN]).map_err(|_| OpenError)?;
        let mut buf = Zeroizing::new(sealed[NONCE_LEN..].to_vec());
        let len = self
            .aead
            .open_in_place(nonce, Aad::from(aad), &mut buf[..])
            .map_err(|_| OpenError)?
            .len();
        buf.truncate(len);
        Ok(buf)
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> DataKey {
        DataKey::new(&SecretKey::from_bytes(&[byte; 32]).unwrap())
    }

    #[test]
    fn bytes_round_trip_and_fail_under_another_key() {
        let sealed = key(1).seal_bytes(b"a data key", b"use").unwrap();
        assert_eq!(sealed.len(), NONCE_LEN + 10 + TAG_LEN);
        assert_eq!(
            &key(1).open_bytes(&sealed, b"use").unwrap()[..],
            b"a data key"
        );
        assert_eq!(key(2).open_bytes(&sealed, b"use"), Err(OpenError));
        assert_eq!(key(1).open_bytes(&sealed, b"other use"), Err(OpenError));
        assert_eq!(key(1).open_bytes(&sealed[..20], b"use"), Err(OpenError));
        assert_ne!(
            key(1).seal_bytes(b"x", b"use").unwrap(),
            key(1).seal_bytes(b"x", b"use").unwrap()
        );
        // Sealed for a use, it is not a payload; a payload is not a wrapped key.
        let budget = Budget::unlimited();
        let as_payload = key(1).open_payload(Bytes::from(sealed), &budget, || CodecError::Encrypt);
        assert!(matches!(as_payload, Err(CodecError::Encrypt)));
        let payload = key(1)
            .seal_payload(&Payload::default(), &[3; 12], &budget)
            .unwrap();
        assert_eq!(key(1).open_bytes(&payload, b"use"), Err(OpenError));
        assert_eq!(format!("{:?}", key(1)), "DataKey(<redacted>)");
    }

    #[test]
    fn payloads_round_trip_and_name_the_failure() {
        let payload = Payload {
            data: Bytes::from_static(b"hello"),
            ..Payload::default()
        };
        let budget = Budget::unlimited();
        let sealed = key(1).seal_payload(&payload, &[7; 12], &budget).unwrap();
        assert_eq!(&sealed[..12], &[7; 12]);
        let opened = key(1)
            .open_payload(Bytes::from(sealed.clone()), &budget, || CodecError::Encrypt)
            .unwrap();
        assert_eq!(opened, payload);
        let err = key(2)
            .open_payload(Bytes::from(sealed), &budget, || CodecError::Random)
            .unwrap_err();
        assert!(matches!(err, CodecError::Random));
    }
}
