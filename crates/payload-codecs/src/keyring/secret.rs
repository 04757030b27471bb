//! [`SecretKey`]: 32 bytes of AES-256 key material, zeroized on drop and
//! never shown; and the crate's zeroizing text buffer for key material read
//! from files, TOML and environment variables.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::{KeyringError, KeyringErrorKind};

/// Length of an AES-256 key in bytes.
pub const KEY_LEN: usize = 32;

/// An AES-256 key: exactly 32 bytes.
///
/// The bytes live in one heap allocation (so moving the key does not copy
/// them) that is overwritten with zeros when the key is dropped. `Debug`
/// shows `SecretKey(<redacted>)`; no error of this crate contains key bytes.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SecretKey(Box<[u8; KEY_LEN]>);

impl SecretKey {
    /// A key from exactly 32 bytes; `None` for any other length.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != KEY_LEN {
            return None;
        }
        let mut key = Box::new([0u8; KEY_LEN]);
        key.copy_from_slice(bytes);
        Some(Self(key))
    }

    /// A new random key from the operating system's secure random number
    /// generator ([`ring::rand::SystemRandom`]).
    pub fn generate() -> Result<Self, KeyringError> {
        let mut key = Box::new([0u8; KEY_LEN]);
        SystemRandom::new()
            .fill(&mut key[..])
            .map_err(|_| KeyringError::new(KeyringErrorKind::Random))?;
        Ok(Self(key))
    }

    /// The key bytes. Handle with care: never log them.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// The key as standard base64 (with padding), for writing it where a
    /// keyring or a secret store will read it. Handle with care.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(&self.0[..]))
    }

    /// The key as lowercase hex. Handle with care.
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(&self.0[..]))
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// Text that may hold key material: zeroized on drop, redacted in `Debug`,
/// deserialized like a `String`.
#[derive(Default, Zeroize, ZeroizeOnDrop)]
pub(crate) struct SecretText(pub(crate) String);

impl fmt::Debug for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl<'de> serde::Deserialize<'de> for SecretText {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(SecretText)
    }
}

/// How key material text is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TextFormat {
    Base64,
    Hex,
}

impl TextFormat {
    pub(crate) fn name(self) -> &'static str {
        match self {
            TextFormat::Base64 => "base64",
            TextFormat::Hex => "hex",
        }
    }

    /// Decodes trimmed `text`; `None` if it is not valid in this format.
    /// The decoded bytes are zeroized on drop; their length is not checked.
    pub(crate) fn decode(self, text: &str) -> Option<Zeroizing<Vec<u8>>> {
        let text = text.trim();
        match self {
            TextFormat::Base64 => STANDARD.decode(text).ok().map(Zeroizing::new),
            TextFormat::Hex => hex::decode(text).ok().map(Zeroizing::new),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted_and_bytes_round_trip() {
        let key = SecretKey::from_bytes(&[7u8; 32]).unwrap();
        assert_eq!(format!("{key:?}"), "SecretKey(<redacted>)");
        assert_eq!(key.as_bytes(), &[7u8; 32]);
        assert_eq!(key.to_hex().as_str(), "07".repeat(32));
        assert_eq!(
            SecretKey::from_bytes(&STANDARD.decode(key.to_base64().as_bytes()).unwrap())
                .unwrap()
                .as_bytes(),
            key.as_bytes()
        );
        assert_eq!(format!("{:?}", SecretText("abc".into())), "<redacted>");
    }

    #[test]
    fn only_32_bytes_make_a_key() {
        assert!(SecretKey::from_bytes(&[0; 16]).is_none());
        assert!(SecretKey::from_bytes(&[0; 33]).is_none());
        assert!(SecretKey::from_bytes(&[]).is_none());
    }

    #[test]
    fn generated_keys_differ() {
        let a = SecretKey::generate().unwrap();
        let b = SecretKey::generate().unwrap();
        assert_ne!(a.as_bytes(), b.as_bytes());
    }
}
