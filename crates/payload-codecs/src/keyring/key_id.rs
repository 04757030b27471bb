//! [`KeyId`]: the validated name of a key.

use std::borrow::Borrow;
use std::fmt;
use std::str::FromStr;

use crate::error::KeyIdError;

/// Longest key id accepted, in characters (bytes: ids are ASCII).
pub const MAX_KEY_ID_LEN: usize = 128;

/// The id of an encryption key: non-empty printable ASCII without spaces
/// (`!` to `~`), at most [`MAX_KEY_ID_LEN`] characters.
///
/// It is written into every encrypted payload's `encryption-key-id`
/// metadata, so it is not secret.
///
/// ```
/// use payload_codecs::KeyId;
///
/// let id: KeyId = "key-2026-11".parse()?;
/// assert_eq!(id.as_str(), "key-2026-11");
/// assert!(KeyId::new("has space").is_err());
/// assert!(KeyId::new("").is_err());
/// # Ok::<(), payload_codecs::KeyIdError>(())
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(String);

impl KeyId {
    /// Checks `id` and wraps it.
    pub fn new(id: impl Into<String>) -> Result<Self, KeyIdError> {
        let id = id.into();
        if id.is_empty() {
            return Err(KeyIdError::Empty);
        }
        if let Some(found) = id.chars().find(|c| !c.is_ascii_graphic()) {
            return Err(KeyIdError::InvalidChar { id, found });
        }
        if id.len() > MAX_KEY_ID_LEN {
            return Err(KeyIdError::TooLong { len: id.len() });
        }
        Ok(Self(id))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for KeyId {
    type Err = KeyIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<String> for KeyId {
    type Error = KeyIdError;

    fn try_from(id: String) -> Result<Self, Self::Error> {
        Self::new(id)
    }
}

impl TryFrom<&str> for KeyId {
    type Error = KeyIdError;

    fn try_from(id: &str) -> Result<Self, Self::Error> {
        Self::new(id)
    }
}

impl AsRef<str> for KeyId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for KeyId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl From<KeyId> for String {
    fn from(id: KeyId) -> Self {
        id.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_printable_ascii_up_to_128_chars() {
        for ok in [
            "a",
            "test-key-id",
            "key_2026.11/prod:v2",
            "~!#",
            &"k".repeat(128),
        ] {
            assert_eq!(KeyId::new(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn rejects_empty_long_spaces_and_non_ascii() {
        assert_eq!(KeyId::new(""), Err(KeyIdError::Empty));
        assert_eq!(
            KeyId::new("k".repeat(129)),
            Err(KeyIdError::TooLong { len: 129 })
        );
        for (bad, found) in [("a b", ' '), ("tab\tx", '\t'), ("clé", 'é'), ("x\n", '\n')] {
            let err = KeyId::new(bad).unwrap_err();
            assert_eq!(
                err,
                KeyIdError::InvalidChar {
                    id: bad.to_owned(),
                    found
                }
            );
            assert!(err.to_string().contains("printable ASCII"), "{err}");
        }
        assert!(KeyId::new("").unwrap_err().to_string().contains("empty"));
    }
}
