//! [`KmsOptions`]: how a [`Kms`](crate::Kms) reaches its KMSs (Vault,
//! AWS, a keyring file) and the bounds of its data key cache.

use std::sync::Arc;
use std::time::Duration;

use payload_codecs::Keyring;

/// Unwrapped data keys kept, by default.
pub const DEFAULT_CACHE_SIZE: usize = 1000;
/// How long an unwrapped data key is kept, by default.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(3600);
/// Longest one KMS call may take, by default.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Tries of one KMS operation, by default (the first and two retries).
pub const DEFAULT_ATTEMPTS: usize = 3;

/// How to reach the KMSs, and the cache's bounds.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct KmsOptions {
    /// Data keys kept unwrapped.
    pub cache_size: usize,
    /// How long a data key stays unwrapped in the cache.
    pub cache_ttl: Duration,
    /// One KMS call's longest wait.
    pub call_timeout: Duration,
    /// Tries of a transient failure before giving up (at least 1).
    pub attempts: usize,
    /// The first retry's wait; each later one doubles (with jitter).
    pub first_backoff: Duration,
    /// The keyring that `keyring://` KEKs name.
    pub keyring: Option<Arc<Keyring>>,
    /// Vault/OpenBao.
    pub vault: Option<VaultAccess>,
    /// AWS KMS.
    pub aws: Option<AwsAccess>,
}

impl Default for KmsOptions {
    fn default() -> Self {
        Self {
            cache_size: DEFAULT_CACHE_SIZE,
            cache_ttl: DEFAULT_CACHE_TTL,
            call_timeout: DEFAULT_CALL_TIMEOUT,
            attempts: DEFAULT_ATTEMPTS,
            first_backoff: Duration::from_millis(100),
            keyring: None,
            vault: None,
            aws: None,
        }
    }
}

/// Where Vault is and the token to use.
#[derive(Clone)]
pub struct VaultAccess {
    /// `https://vault.example.com:8200`.
    pub address: String,
    /// The token (zeroized on drop, never shown).
    pub token: zeroize::Zeroizing<String>,
}

impl std::fmt::Debug for VaultAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultAccess")
            .field("address", &self.address)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// AWS credentials and where KMS is.
#[derive(Clone)]
pub struct AwsAccess {
    /// The region when a KEK URI names none.
    pub region: String,
    /// An emulator's URL (`http://127.0.0.1:5000`); else the region's
    /// public endpoint.
    pub endpoint: Option<String>,
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key (never shown).
    pub secret_access_key: zeroize::Zeroizing<String>,
    /// Session token, for temporary credentials.
    pub session_token: Option<zeroize::Zeroizing<String>>,
}

impl std::fmt::Debug for AwsAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsAccess")
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}
