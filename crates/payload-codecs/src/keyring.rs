//! Keys for the AES-256-GCM codec: the runtime [`Keyring`] (many keys by
//! id, one active), the keyring file model [`KeyringFile`] that the server
//! and the CLI load, edit and save, and the [`KeyId`] and [`SecretKey`]
//! types.
//!
//! A [`Keyring`] is immutable and built once: every key is expanded into a
//! ready `ring` AEAD key at construction, so the codec does no per-payload
//! key setup. To reload or rotate, build a new keyring and a new
//! [`AesGcmCodec`](crate::AesGcmCodec) around its `Arc` and swap that in
//! (e.g. with `arc-swap`); the hot path takes no lock.
//!
//! Key bytes are zeroized on drop and never appear in `Debug` output or error
//! messages. (The expanded AES key schedule held by `ring` is not zeroized:
//! `ring` does not offer that.)

mod file;
mod key_id;
mod secret;

use std::fmt;
use std::path::Path;

use bytes::Bytes;

use crate::data_key::DataKey;
use crate::error::{KeyringError, KeyringErrorKind};

pub use file::{INTERRUPTED_AFTER, KeySource, KeyringFile};
pub use key_id::{KeyId, MAX_KEY_ID_LEN};
pub use secret::{KEY_LEN, SecretKey};
pub(crate) use secret::{SecretText, TextFormat};

/// A set of AES-256-GCM keys by id, one of them active.
///
/// The codec encrypts with the active key and decrypts with whichever key a
/// payload names. `Debug` shows the ids only.
///
/// ```
/// use payload_codecs::{KeyId, Keyring, SecretKey};
///
/// let old = KeyId::new("key-2026-10")?;
/// let new = KeyId::new("key-2026-11")?;
/// let keyring = Keyring::new(
///     new.clone(),
///     [(old, SecretKey::generate()?), (new, SecretKey::generate()?)],
/// )?;
/// assert_eq!(keyring.active_id().as_str(), "key-2026-11");
/// assert!(keyring.contains("key-2026-10"));
/// assert!(!format!("{keyring:?}").contains("SecretKey"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Keyring {
    /// Sorted by id (binary search on decode).
    keys: Vec<RingKey>,
    /// Index of the active key in `keys`.
    active: usize,
}

/// One key, ready for `ring`.
pub(crate) struct RingKey {
    pub(crate) id: KeyId,
    /// The id as metadata bytes, shared by every payload it encrypts.
    pub(crate) id_bytes: Bytes,
    pub(crate) aead: DataKey,
}

impl Keyring {
    /// A keyring of `keys` in which `active` encrypts.
    ///
    /// Fails on a duplicate id or when `active` is not among the keys.
    pub fn new(
        active: KeyId,
        keys: impl IntoIterator<Item = (KeyId, SecretKey)>,
    ) -> Result<Self, KeyringError> {
        let mut ring_keys: Vec<RingKey> = Vec::new();
        for (id, secret) in keys {
            if ring_keys.iter().any(|k| k.id == id) {
                return Err(KeyringErrorKind::DuplicateKeyId { key_id: id }.into());
            }
            ring_keys.push(RingKey::new(id, &secret));
        }
        ring_keys.sort_by(|a, b| a.id.cmp(&b.id));
        let active = ring_keys
            .iter()
            .position(|k| k.id == active)
            .ok_or(KeyringErrorKind::ActiveKeyMissing { key_id: active })?;
        Ok(Self {
            keys: ring_keys,
            active,
        })
    }

    /// A keyring of one key, which is active.
    pub fn single(id: KeyId, key: SecretKey) -> Self {
        Self {
            keys: vec![RingKey::new(id, &key)],
            active: 0,
        }
    }

    /// Loads a keyring file (see `docs/keyring.md`) and resolves every key,
    /// reading `env` keys through `env` (binaries pass
    /// `&|name| std::env::var(name).ok()`; this library never reads the
    /// environment itself).
    ///
    /// Errors name the file and, where possible, the line.
    pub fn load(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, KeyringError> {
        KeyringFile::load(path)?.to_keyring(env)
    }

    /// The id of the key that encrypts.
    pub fn active_id(&self) -> &KeyId {
        &self.active_key().id
    }

    /// All key ids, sorted.
    pub fn key_ids(&self) -> impl ExactSizeIterator<Item = &KeyId> + '_ {
        self.keys.iter().map(|k| &k.id)
    }

    /// Whether a key with this id is present.
    pub fn contains(&self, id: &str) -> bool {
        self.get(id).is_some()
    }

    /// How many keys there are (at least one).
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Always `false`: a keyring has an active key. (For API symmetry.)
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The active key's id and key, e.g. to wrap data keys with.
    pub fn active_data_key(&self) -> (&KeyId, &DataKey) {
        let key = self.active_key();
        (&key.id, &key.aead)
    }

    /// The key with id `id`, if the keyring holds it.
    pub fn data_key(&self, id: &str) -> Option<&DataKey> {
        self.get(id).map(|k| &k.aead)
    }

    pub(crate) fn active_key(&self) -> &RingKey {
        &self.keys[self.active]
    }

    pub(crate) fn get(&self, id: &str) -> Option<&RingKey> {
        self.keys
            .binary_search_by(|k| k.id.as_str().cmp(id))
            .ok()
            .map(|i| &self.keys[i])
    }
}

impl RingKey {
    fn new(id: KeyId, secret: &SecretKey) -> Self {
        Self {
            id_bytes: Bytes::copy_from_slice(id.as_str().as_bytes()),
            id,
            aead: DataKey::new(secret),
        }
    }
}

impl fmt::Debug for Keyring {
    /// Ids only: never key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("active", self.active_id())
            .field("keys", &self.key_ids().collect::<Vec<_>>())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use super::*;

    fn id(s: &str) -> KeyId {
        KeyId::new(s).unwrap()
    }

    fn key(byte: u8) -> SecretKey {
        SecretKey::from_bytes(&[byte; 32]).unwrap()
    }

    #[test]
    fn finds_keys_by_id_and_knows_the_active_one() {
        let ring = Keyring::new(
            id("b"),
            [(id("c"), key(3)), (id("a"), key(1)), (id("b"), key(2))],
        )
        .unwrap();
        assert_eq!(ring.active_id(), &id("b"));
        assert_eq!(ring.len(), 3);
        assert!(!ring.is_empty());
        assert_eq!(
            ring.key_ids().map(KeyId::as_str).collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
        for name in ["a", "b", "c"] {
            assert_eq!(ring.get(name).unwrap().id.as_str(), name);
        }
        assert!(!ring.contains("d"));
        assert_eq!(&ring.active_key().id_bytes[..], b"b");
    }

    #[test]
    fn duplicate_ids_are_refused() {
        let err = Keyring::new(id("a"), [(id("a"), key(1)), (id("a"), key(2))]).unwrap_err();
        assert!(
            matches!(err.kind(), KeyringErrorKind::DuplicateKeyId { key_id } if key_id.as_str() == "a")
        );
        assert_eq!(
            err.to_string(),
            "key id `a` appears more than once; key ids must be unique"
        );
    }

    #[test]
    fn active_key_must_be_present() {
        let err = Keyring::new(id("zz"), [(id("a"), key(1))]).unwrap_err();
        assert!(matches!(
            err.kind(),
            KeyringErrorKind::ActiveKeyMissing { .. }
        ));
        assert!(
            err.to_string()
                .starts_with("active key `zz` is not in the keyring"),
            "{err}"
        );
    }

    #[test]
    fn debug_shows_ids_but_no_key_bytes() {
        let secret = [0xabu8; 32];
        let ring = Keyring::single(id("k1"), SecretKey::from_bytes(&secret).unwrap());
        let debug = format!("{ring:?} {:?}", SecretKey::from_bytes(&secret).unwrap());
        assert_eq!(
            debug,
            r#"Keyring { active: "k1", keys: ["k1"] } SecretKey(<redacted>)"#
        );
        let b64 = base64::engine::general_purpose::STANDARD.encode(secret);
        assert!(!debug.contains(&hex::encode(secret)));
        assert!(!debug.contains(&b64));
        assert!(!debug.contains("171")); // 0xab in decimal, as derived Debug would show it
    }
}
