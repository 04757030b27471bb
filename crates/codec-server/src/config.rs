//! Configuration: a TOML file, overridden by environment variables and
//! flags, validated once at load.
//!
//! With no file at all the server runs the embedded development default:
//! `127.0.0.1:8888`, a development keyring (created on first run) for every
//! namespace, CORS for the local dev Web UI, no auth.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use payload_kms::KmsSettings;
use payload_storage::StorageSettings;
use serde::Deserialize;

pub use payload_codecs::CodecName;

use crate::auth::JwtSettings;

/// The largest `server.max_body_bytes` accepted: 1 GiB.
pub const MAX_BODY_LIMIT: usize = 1 << 30;

/// The local dev server's Web UI origins (`temporal server start-dev`).
pub const DEV_UI_ORIGINS: [&str; 2] = ["http://localhost:8233", "http://127.0.0.1:8233"];

/// The whole configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Listening and limits.
    #[serde(default)]
    pub server: ServerConfig,
    /// Browser access.
    #[serde(default)]
    pub cors: CorsConfig,
    /// HTTPS; absent means plain HTTP.
    pub tls: Option<TlsConfig>,
    /// Envelope encryption with a KMS (docs/key-management.md): the default
    /// KEK, decrypt-only KEKs, how to reach the KMS, the data key cache.
    #[serde(default)]
    pub kms: Option<KmsSettings>,
    /// The codec and auth for namespaces without a section of their own;
    /// absent means such namespaces are refused.
    pub default: Option<NamespaceConfig>,
    /// Per-namespace codec and auth, by namespace name.
    #[serde(default)]
    pub namespaces: BTreeMap<String, NamespaceConfig>,
    /// Folder that relative paths resolve against (the config file's).
    #[serde(skip)]
    pub base_dir: PathBuf,
    /// Where keyrings' `env` keys are looked up. The library reads no
    /// environment itself: the `codec-server` binary passes the process's.
    #[serde(skip)]
    pub environment: Environment,
}

impl Config {
    /// Whether a namespace stores payloads in S3 or a KEK is in AWS KMS:
    /// then the binary reads the shared AWS profile for credentials.
    pub fn uses_aws(&self) -> bool {
        self.kms.as_ref().is_some_and(KmsSettings::uses_aws)
            || self
                .default
                .iter()
                .chain(self.namespaces.values())
                .any(|ns| {
                    ns.storage.as_ref().is_some_and(StorageSettings::uses_aws)
                        || ns
                            .kek
                            .iter()
                            .chain(&ns.decrypt_keks)
                            .any(|uri| payload_kms::is_aws_kek(uri))
                })
    }
}

/// A lookup of environment variables by name, passed in by the binary
/// (libraries never read the environment themselves).
#[derive(Clone, Default)]
pub struct Environment(Option<std::sync::Arc<Lookup>>);

/// A function from a variable's name to its value.
type Lookup = dyn Fn(&str) -> Option<String> + Send + Sync;

impl Environment {
    /// Variables looked up with `lookup`.
    pub fn from_fn(lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Self {
        Self(Some(std::sync::Arc::new(lookup)))
    }

    /// The value of `name`, if set (never, for the default: no variables).
    pub fn get(&self, name: &str) -> Option<String> {
        self.0.as_ref().and_then(|lookup| lookup(name))
    }
}

impl std::fmt::Debug for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Environment(passed in)"
        } else {
            "Environment(none)"
        })
    }
}

/// Listening address, request limits and connection limits
/// (docs/security.md says which attack each one stops).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Most bytes one request's payloads may take once decoded (decrypted
    /// and decompressed buffers together); default 4 × `max_body_bytes`.
    /// More is refused with `422 limit_exceeded` before it is allocated.
    pub max_decoded_bytes: Option<usize>,
    /// Most bytes of request bodies and decoded payloads held at once, all
    /// requests together; default `max_body_bytes + max_decoded_bytes`.
    /// Bodies wait for room (until the request times out); decoding that
    /// finds no room is refused with `503 overloaded`.
    pub max_in_flight_bytes: Option<usize>,
    /// Most payloads accepted in one request.
    pub max_payloads: usize,
    /// Longest a request may take, in seconds, from its headers to its
    /// answer: reading the body, waiting for a slot and the codec work.
    pub request_timeout_secs: u64,
    /// Most requests processed at once; more wait.
    pub concurrency_limit: usize,
    /// Longest a client may take to send a request's headers (and a TLS
    /// handshake), in seconds. An HTTP/1.1 connection kept alive is closed
    /// when its next request does not start within this time.
    pub header_read_timeout_secs: u64,
    /// An HTTP/2 connection with no request for this many seconds is
    /// closed.
    pub idle_timeout_secs: u64,
    /// Most connections open at once. A new connection beyond it closes the
    /// longest idle ones; if none is idle it waits briefly, then is closed.
    pub max_connections: usize,
    /// Most concurrent requests (streams) on one HTTP/2 connection.
    pub http2_max_concurrent_streams: u32,
    /// On SIGTERM or ctrl-c, how long requests in flight may take to
    /// finish, in seconds, before their connections are closed. Below
    /// Kubernetes' default grace period of 30 s.
    pub shutdown_grace_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8888)),
            max_body_bytes: 32 * 1024 * 1024,
            max_decoded_bytes: None,
            max_in_flight_bytes: None,
            max_payloads: 10_000,
            request_timeout_secs: 30,
            concurrency_limit: 256,
            header_read_timeout_secs: 10,
            idle_timeout_secs: 60,
            max_connections: 1024,
            http2_max_concurrent_streams: 100,
            shutdown_grace_secs: 20,
        }
    }
}

impl ServerConfig {
    /// `max_decoded_bytes`, or its default.
    pub fn decoded_limit(&self) -> usize {
        self.max_decoded_bytes
            .unwrap_or_else(|| self.max_body_bytes.saturating_mul(4))
    }

    /// `max_in_flight_bytes`, or its default.
    pub fn in_flight_limit(&self) -> usize {
        self.max_in_flight_bytes
            .unwrap_or_else(|| self.max_body_bytes.saturating_add(self.decoded_limit()))
    }
}

/// Which browser origins may call the server.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorsConfig {
    /// Exact origins (`scheme://host[:port]`), or `"*"` for any origin
    /// (not allowed together with credentials).
    pub allowed_origins: Vec<String>,
    /// Answer `Access-Control-Allow-Credentials: true` (the Web UI's
    /// "include cross-origin credentials").
    pub allow_credentials: bool,
    /// Request headers allowed beyond `content-type`, `x-namespace`,
    /// `authorization` and `authorization-extras`.
    pub extra_allowed_headers: Vec<String>,
}

impl Default for CorsConfig {
    fn default() -> Self {
        Self {
            allowed_origins: DEV_UI_ORIGINS.iter().map(|o| (*o).to_owned()).collect(),
            allow_credentials: false,
            extra_allowed_headers: Vec::new(),
        }
    }
}

/// Certificate and key files (PEM), reloaded when they change.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Certificate chain, PEM.
    pub cert: PathBuf,
    /// Private key, PEM.
    pub key: PathBuf,
}

/// How one namespace (or the default) is served.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamespaceConfig {
    /// The keyring file (needed when the chain encrypts).
    pub keyring: Option<PathBuf>,
    /// The codec chain, outermost layer first: `["encrypt", "zstd"]` means
    /// payloads are compressed, then encrypted. Decoding also passes through
    /// payloads none of these codecs owns.
    #[serde(default = "default_chain")]
    pub chain: Vec<CodecName>,
    /// Who may call.
    #[serde(default)]
    pub auth: AuthConfig,
    /// Refuse this namespace entirely.
    #[serde(default)]
    pub refuse: bool,
    /// External payload storage: `/decode` resolves references, `/download`
    /// serves them, `/encode` offloads large payloads
    /// (docs/storage.md).
    #[serde(default)]
    pub storage: Option<StorageSettings>,
    /// The KEK `encrypt` wraps data keys with (envelope encryption, the
    /// Temporal Proxy's format), instead of `[kms] kek`. With a KEK, the
    /// keyring (if any) only decrypts older keyring-format payloads.
    #[serde(default)]
    pub kek: Option<String>,
    /// KEKs this namespace only decrypts with (being retired), besides
    /// `[kms] decrypt_keks`.
    #[serde(default)]
    pub decrypt_keks: Vec<String>,
}

impl NamespaceConfig {
    /// A namespace that encrypts with the keyring file `keyring`
    /// (`chain = ["encrypt"]`) and lets in the callers `auth` allows.
    pub fn encrypting(keyring: PathBuf, auth: AuthConfig) -> Self {
        Self {
            keyring: Some(keyring),
            chain: default_chain(),
            auth,
            refuse: false,
            storage: None,
            kek: None,
            decrypt_keks: Vec::new(),
        }
    }

    /// A namespace refused entirely.
    pub fn refused() -> Self {
        Self {
            keyring: None,
            chain: Vec::new(),
            auth: AuthConfig::None,
            refuse: true,
            storage: None,
            kek: None,
            decrypt_keks: Vec::new(),
        }
    }

    /// The KEK policy of this section.
    pub fn kek_policy(&self) -> payload_kms::KekPolicy {
        payload_kms::KekPolicy {
            kek: self.kek.clone(),
            decrypt_keks: self.decrypt_keks.clone(),
        }
    }
}

fn default_chain() -> Vec<CodecName> {
    vec![CodecName::Encrypt]
}

/// Authentication of a namespace's callers.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(tag = "mode", rename_all = "lowercase", deny_unknown_fields)]
pub enum AuthConfig {
    /// No authentication.
    #[default]
    None,
    /// Static bearer tokens, as SHA-256 hex digests.
    Bearer {
        /// Tokens that may encode and decode.
        #[serde(default)]
        token_sha256: Vec<String>,
        /// Tokens that may only decode.
        #[serde(default)]
        read_only_token_sha256: Vec<String>,
    },
    /// JWT access tokens (`Authorization: Bearer <JWT>`) signed by a key of
    /// a JWKS, authorized by a `<namespace>:<read|write|admin>` claim; the
    /// keys of [`JwtSettings`].
    Jwt(JwtSettings),
}

/// Overrides from flags and environment variables, applied over the file.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct Overrides {
    /// Address to listen on, e.g. 0.0.0.0:8888.
    #[arg(long, env = "CODEC_SERVER_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Keyring file for the default namespace.
    #[arg(long, env = "CODEC_SERVER_KEYRING")]
    pub keyring: Option<PathBuf>,
    /// Allowed browser origin (repeatable; replaces the configured list).
    #[arg(
        long = "allow-origin",
        env = "CODEC_SERVER_ALLOW_ORIGINS",
        value_delimiter = ','
    )]
    pub allow_origins: Vec<String>,
    /// Answer CORS with credentials allowed.
    #[arg(long, env = "CODEC_SERVER_ALLOW_CREDENTIALS")]
    pub allow_credentials: bool,
    /// Largest request body in bytes.
    #[arg(long, env = "CODEC_SERVER_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
}

/// The configuration could not be loaded or is invalid.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema (the message has the line).
    #[error("config file {path} is invalid: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The TOML error, with line and column.
        message: String,
    },
    /// A value is out of range or inconsistent.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// The embedded development default; `dev_keyring` is used for every
    /// namespace.
    pub fn development(dev_keyring: PathBuf) -> Self {
        Self {
            server: ServerConfig::default(),
            cors: CorsConfig::default(),
            tls: None,
            kms: None,
            default: Some(NamespaceConfig::encrypting(dev_keyring, AuthConfig::None)),
            namespaces: BTreeMap::new(),
            base_dir: PathBuf::from("."),
            environment: Environment::default(),
        }
    }

    /// Parses TOML text; relative paths resolve against `base_dir`.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        config.base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(config)
    }

    /// Reads and parses a TOML file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text, path)
    }

    /// Applies flag and environment overrides.
    /// `--keyring` (a path relative to the working directory, so callers
    /// pass it absolute) replaces the `[default]` section's keyring; a file
    /// without a `[default]` section refuses it rather than opening every
    /// namespace without auth.
    pub fn apply(&mut self, overrides: &Overrides) -> Result<(), ConfigError> {
        if let Some(listen) = overrides.listen {
            self.server.listen = listen;
        }
        if let Some(max) = overrides.max_body_bytes {
            self.server.max_body_bytes = max;
        }
        if !overrides.allow_origins.is_empty() {
            self.cors
                .allowed_origins
                .clone_from(&overrides.allow_origins);
        }
        if overrides.allow_credentials {
            self.cors.allow_credentials = true;
        }
        if let Some(keyring) = &overrides.keyring {
            let Some(default) = self.default.as_mut() else {
                return Err(ConfigError::Invalid(
                    "--keyring / CODEC_SERVER_KEYRING sets the [default] section's keyring, but the config \
                     file has no [default] section; add one (with its auth) or set keyrings per namespace"
                        .to_owned(),
                ));
            };
            default.keyring = Some(keyring.clone());
        }
        Ok(())
    }

    /// Resolves `path` against the config file's folder.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base_dir.join(path)
        }
    }

    /// Checks values that the schema alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        let server = &self.server;
        if server.max_body_bytes < 1024 || server.max_body_bytes > MAX_BODY_LIMIT {
            return invalid(format!(
                "server.max_body_bytes must be between 1024 and {MAX_BODY_LIMIT} (1 GiB)"
            ));
        }
        if server.max_payloads == 0
            || server.concurrency_limit == 0
            || server.request_timeout_secs == 0
            || server.header_read_timeout_secs == 0
            || server.idle_timeout_secs == 0
            || server.max_connections == 0
            || server.http2_max_concurrent_streams == 0
        {
            return invalid(
                "server.max_payloads, concurrency_limit, request_timeout_secs, \
                 header_read_timeout_secs, idle_timeout_secs, max_connections and \
                 http2_max_concurrent_streams must be positive"
                    .into(),
            );
        }
        if server.decoded_limit() < 1024 {
            return invalid("server.max_decoded_bytes must be at least 1024".into());
        }
        if server.in_flight_limit() < server.max_body_bytes {
            return invalid(format!(
                "server.max_in_flight_bytes ({}) is below server.max_body_bytes ({}): a body \
                 of the largest size accepted could never be read; raise it or lower \
                 max_body_bytes",
                server.in_flight_limit(),
                server.max_body_bytes
            ));
        }
        for origin in &self.cors.allowed_origins {
            if origin == "*" {
                if self.cors.allow_credentials {
                    return invalid(
                        "cors.allowed_origins has \"*\" with allow_credentials: browsers refuse a wildcard \
                         origin with credentials; list the exact UI origins instead"
                            .into(),
                    );
                }
            } else if !(origin.starts_with("http://") || origin.starts_with("https://"))
                || origin.ends_with('/')
                || origin[origin.find("://").map_or(0, |i| i + 3)..].contains('/')
            {
                return invalid(format!(
                    "cors origin `{origin}` must be scheme://host[:port] with no path or trailing slash, \
                     e.g. http://localhost:8233"
                ));
            }
        }
        if let Some(kms) = &self.kms {
            kms.validate().or_else(|e| invalid(format!("[kms] {e}")))?;
        }
        let sections = self
            .default
            .iter()
            .map(|d| ("default".to_owned(), d))
            .chain(
                self.namespaces
                    .iter()
                    .map(|(n, c)| (format!("namespaces.{n}"), c)),
            );
        for (name, section) in sections {
            if section.refuse {
                continue;
            }
            let kek = section
                .kek
                .as_deref()
                .or(self.kms.as_ref().and_then(|k| k.kek.as_deref()));
            let encrypts = section.chain.contains(&CodecName::Encrypt);
            if encrypts && section.keyring.is_none() && kek.is_none() {
                return invalid(format!(
                    "[{name}] encrypts but names no `keyring` file and no `kek` (nor [kms] kek)"
                ));
            }
            if !encrypts && (section.kek.is_some() || !section.decrypt_keks.is_empty()) {
                return invalid(format!(
                    "[{name}] names KEKs but its chain does not encrypt; add \"encrypt\" to `chain`"
                ));
            }
            for uri in section.kek.iter().chain(&section.decrypt_keks) {
                if let Err(e) = payload_kms::KekUri::parse(uri) {
                    return invalid(format!("[{name}] {e}"));
                }
            }
            if let Some(storage) = &section.storage {
                storage
                    .validate()
                    .or_else(|e| invalid(format!("[{name}.storage] {e}")))?;
            }
            let mut seen = Vec::new();
            for codec in &section.chain {
                if seen.contains(codec) {
                    return invalid(format!("[{name}] chain lists `{codec}` twice"));
                }
                seen.push(*codec);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
