//! [`KeyEncryptionKey`]: what a KMS does for envelope encryption (wrap and
//! unwrap a data key), and the two local KEKs: a keyring file's key and
//! gocloud's `base64key://` (NaCl secretbox), which the Temporal Proxy calls
//! `testing://`.

use std::fmt;
use std::sync::Arc;

use crypto_secretbox::aead::{Aead, KeyInit};
use crypto_secretbox::{Key, Nonce, XSalsa20Poly1305};
use payload_codecs::{Keyring, SecretKey};
use payload_converter::BoxFuture;
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use crate::error::KekError;

/// Wraps and unwraps data keys. Implementations talk to one key of one KMS;
/// retries, caching and counting are the caller's
/// ([`Kms`](crate::Kms)).
pub trait KeyEncryptionKey: Send + Sync + fmt::Debug {
    /// `key` encrypted by the KEK, as the KMS returns it (the bytes that go,
    /// base64-encoded, into `encryption-dek`).
    fn wrap<'a>(&'a self, key: &'a SecretKey) -> BoxFuture<'a, Result<Vec<u8>, KekError>>;
    /// The data key in `wrapped`; its length is checked by the caller.
    fn unwrap<'a>(
        &'a self,
        wrapped: &'a [u8],
    ) -> BoxFuture<'a, Result<Zeroizing<Vec<u8>>, KekError>>;
}

/// The associated data of data keys wrapped by a keyring key.
pub(crate) const KEYRING_KEK_AAD: &[u8] = b"payloadkit keyring KEK v1";

/// Length of a secretbox nonce (XSalsa20).
const SECRETBOX_NONCE: usize = 24;

/// gocloud's `base64key://` keeper: 24-byte random nonce ‖ secretbox (tag ‖
/// ciphertext). For tests and the proxy's `testing://` KEK.
pub(crate) struct SecretboxKek {
    cipher: XSalsa20Poly1305,
}

impl SecretboxKek {
    pub(crate) fn new(key: &SecretKey) -> Self {
        Self {
            cipher: XSalsa20Poly1305::new(&Key::from(*key.as_bytes())),
        }
    }

    fn seal(&self, plain: &[u8]) -> Result<Vec<u8>, KekError> {
        let mut nonce = [0u8; SECRETBOX_NONCE];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| KekError::Transient("the system random number generator failed".into()))?;
        let sealed = self
            .cipher
            .encrypt(&Nonce::from(nonce), plain)
            .map_err(|_| KekError::Refused("secretbox encryption failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    fn open(&self, wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>, KekError> {
        let refused =
            || KekError::Rejected("the wrapped key does not open under this base64key KEK".into());
        if wrapped.len() < SECRETBOX_NONCE {
            return Err(refused());
        }
        let (nonce, sealed) = wrapped.split_at(SECRETBOX_NONCE);
        let nonce: [u8; SECRETBOX_NONCE] = nonce.try_into().map_err(|_| refused())?;
        self.cipher
            .decrypt(&Nonce::from(nonce), sealed)
            .map(Zeroizing::new)
            .map_err(|_| refused())
    }
}

impl KeyEncryptionKey for SecretboxKek {
    fn wrap<'a>(&'a self, key: &'a SecretKey) -> BoxFuture<'a, Result<Vec<u8>, KekError>> {
        Box::pin(async move { self.seal(key.as_bytes()) })
    }

    fn unwrap<'a>(
        &'a self,
        wrapped: &'a [u8],
    ) -> BoxFuture<'a, Result<Zeroizing<Vec<u8>>, KekError>> {
        Box::pin(async move { self.open(wrapped) })
    }
}

impl fmt::Debug for SecretboxKek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretboxKek(<redacted>)")
    }
}

/// A key of a keyring file as the KEK: 12-byte nonce ‖ AES-256-GCM(data
/// key, associated data [`KEYRING_KEK_AAD`]) ‖ tag. For air-gapped use and
/// tests. The associated data keeps wrapped keys and payloads apart when one
/// keyring key serves both: a wrapped key never opens as a payload.
#[derive(Debug)]
pub(crate) struct KeyringKek {
    keyring: Arc<Keyring>,
    key_id: String,
}

impl KeyringKek {
    /// The KEK `key_id` of `keyring`; `None` if the keyring lacks it.
    pub(crate) fn new(keyring: Arc<Keyring>, key_id: &str) -> Option<Self> {
        keyring.contains(key_id).then(|| Self {
            keyring,
            key_id: key_id.to_owned(),
        })
    }

    fn key(&self) -> Result<&payload_codecs::DataKey, KekError> {
        self.keyring
            .data_key(&self.key_id)
            .ok_or_else(|| KekError::Refused(format!("no key `{}` in the keyring", self.key_id)))
    }
}

impl KeyEncryptionKey for KeyringKek {
    fn wrap<'a>(&'a self, key: &'a SecretKey) -> BoxFuture<'a, Result<Vec<u8>, KekError>> {
        Box::pin(async move {
            self.key()?
                .seal_bytes(key.as_bytes(), KEYRING_KEK_AAD)
                .map_err(|e| KekError::Refused(e.to_string()))
        })
    }

    fn unwrap<'a>(
        &'a self,
        wrapped: &'a [u8],
    ) -> BoxFuture<'a, Result<Zeroizing<Vec<u8>>, KekError>> {
        Box::pin(async move {
            self.key()?
                .open_bytes(wrapped, KEYRING_KEK_AAD)
                .map_err(|_| {
                    KekError::Rejected(format!(
                        "the wrapped key does not open under keyring key `{}`",
                        self.key_id
                    ))
                })
        })
    }
}

#[cfg(test)]
mod tests {
    use payload_codecs::KeyId;

    use super::*;

    fn block<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn secretbox_is_nonce_then_tag_then_ciphertext() {
        let kek = SecretboxKek::new(&SecretKey::from_bytes(&[9; 32]).unwrap());
        let dek = SecretKey::from_bytes(&[1; 32]).unwrap();
        let wrapped = block(kek.wrap(&dek)).unwrap();
        assert_eq!(wrapped.len(), 24 + 16 + 32);
        assert_eq!(&block(kek.unwrap(&wrapped)).unwrap()[..], &[1; 32]);
        let other = SecretboxKek::new(&SecretKey::from_bytes(&[8; 32]).unwrap());
        assert!(matches!(
            block(other.unwrap(&wrapped)),
            Err(KekError::Rejected(_))
        ));
        assert!(block(kek.unwrap(&wrapped[..10])).is_err());
        assert_eq!(format!("{kek:?}"), "SecretboxKek(<redacted>)");
    }

    #[test]
    fn a_keyring_key_wraps_and_only_it_unwraps() {
        let id = |s: &str| KeyId::new(s).unwrap();
        let ring = Arc::new(
            Keyring::new(
                id("kek-1"),
                [
                    (id("kek-1"), SecretKey::generate().unwrap()),
                    (id("kek-2"), SecretKey::generate().unwrap()),
                ],
            )
            .unwrap(),
        );
        let one = KeyringKek::new(ring.clone(), "kek-1").unwrap();
        let two = KeyringKek::new(ring.clone(), "kek-2").unwrap();
        assert!(KeyringKek::new(ring, "kek-3").is_none());
        let dek = SecretKey::generate().unwrap();
        let wrapped = block(one.wrap(&dek)).unwrap();
        assert_eq!(&block(one.unwrap(&wrapped)).unwrap()[..], dek.as_bytes());
        let err = block(two.unwrap(&wrapped)).unwrap_err().to_string();
        assert!(err.contains("kek-2"), "{err}");
    }
}
