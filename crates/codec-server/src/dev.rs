//! The embedded development default: a keyring created on first run.
//!
//! The development keyring holds a fresh random key (active) and the
//! official samples' well-known test key (`test-key-id`), so payloads
//! written by the Go, Python and TypeScript encryption samples decode out of
//! the box. It is for local development only: the sample key is public.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use payload_codecs::{KeyId, KeyIdError, KeySource, KeyringError, KeyringFile, SecretKey};

/// Where `cargo run -p codec-server` keeps its development keyring, relative
/// to the working directory.
pub const DEV_KEYRING: &str = ".payloadkit/dev-keyring.toml";

/// The official samples' test key id and key.
pub const SAMPLE_KEY_ID: &str = "test-key-id";
const SAMPLE_KEY: &[u8; 32] = b"test-key-test-key-test-key-test!";

/// The development keyring path under `dir`.
pub fn dev_keyring_path(dir: &Path) -> PathBuf {
    dir.join(DEV_KEYRING)
}

/// The development keyring could not be created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DevKeyringError {
    /// Making or saving the keyring failed.
    #[error(transparent)]
    Keyring(#[from] KeyringError),
    /// A key id was refused.
    #[error(transparent)]
    KeyId(#[from] KeyIdError),
    /// The folder could not be created.
    #[error("cannot create {path}: {source}")]
    Folder {
        /// The folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Creates the development keyring at `path` unless it exists; returns
/// whether it was created.
pub fn ensure_dev_keyring(path: &Path) -> Result<bool, DevKeyringError> {
    if path.exists() {
        return Ok(false);
    }
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let mut file = KeyringFile::generate(KeyId::new(format!("dev-{stamp}"))?)?;
    if let Some(sample) = SecretKey::from_bytes(SAMPLE_KEY) {
        file.add_key(KeyId::new(SAMPLE_KEY_ID)?, KeySource::Base64(sample))?;
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| DevKeyringError::Folder {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    file.save_atomic(path)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dev_keyring_is_created_once_and_loads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dev_keyring_path(dir.path());
        assert!(ensure_dev_keyring(&path).unwrap());
        let first = std::fs::read(&path).unwrap();
        assert!(!ensure_dev_keyring(&path).unwrap());
        assert_eq!(
            std::fs::read(&path).unwrap(),
            first,
            "an existing keyring is never replaced"
        );
        let keyring = payload_codecs::Keyring::load(&path, &|_| None).unwrap();
        assert!(keyring.contains(SAMPLE_KEY_ID));
        assert!(keyring.active_id().as_str().starts_with("dev-"));
    }
}
