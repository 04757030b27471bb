//! HTTPS with rustls: the Web UI only passes access tokens to an https
//! Codec Server.
//!
//! Each connection's handshake runs in its own task, within the header-read
//! timeout (a slow or stalled client cannot hold up other connections);
//! ALPN offers HTTP/2 and HTTP/1.1; the certificate and key files are
//! re-read when they change, so renewed certificates apply to new
//! connections without a restart.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::TlsConfig;

/// How often the certificate files are checked for changes.
const RELOAD_POLL: Duration = Duration::from_secs(2);

/// The certificate or key could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read or holds no usable PEM item.
    #[error("{what} {path}: {message}")]
    File {
        /// "certificate" or "private key".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// rustls refused the pair (for example the key does not match).
    #[error("certificate {cert} and key {key} do not form a valid TLS identity: {source}")]
    Identity {
        /// Certificate file.
        cert: PathBuf,
        /// Key file.
        key: PathBuf,
        /// Why.
        source: rustls::Error,
    },
}

/// Builds the rustls configuration from the PEM files.
pub(crate) fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|items| items.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::File {
            what: "certificate",
            path: cert.to_path_buf(),
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::File {
            what: "certificate",
            path: cert.to_path_buf(),
            message: "no PEM CERTIFICATE block found".to_owned(),
        });
    }
    let private_key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::File {
        what: "private key",
        path: key.to_path_buf(),
        message: format!(
            "{e} (expected a PEM PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block)"
        ),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, private_key))
        .map_err(|source| TlsError::Identity {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            source,
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The TLS side of the server: the current acceptor, replaced when the
/// certificate or key file changes (checked every two seconds by a task
/// that ends with this value).
pub(crate) struct Tls {
    current: Arc<ArcSwap<TlsAcceptor>>,
    reload: tokio::task::JoinHandle<()>,
}

impl Tls {
    /// Serves the certificate `cert` with its `key`, reloading them when
    /// they change.
    pub(crate) fn new(cert: PathBuf, key: PathBuf) -> Result<Self, TlsError> {
        let current = Arc::new(ArcSwap::from_pointee(TlsAcceptor::from(server_config(
            &cert, &key,
        )?)));
        let reload = tokio::spawn(reload_loop(current.clone(), cert, key));
        Ok(Self { current, reload })
    }

    /// The acceptor for a new connection.
    pub(crate) fn acceptor(&self) -> Arc<TlsAcceptor> {
        self.current.load_full()
    }
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tls")
    }
}

impl Drop for Tls {
    fn drop(&mut self) {
        self.reload.abort();
    }
}

async fn reload_loop(acceptor: Arc<ArcSwap<TlsAcceptor>>, cert: PathBuf, key: PathBuf) {
    let stamp = || [&cert, &key].map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    let mut last: [Option<SystemTime>; 2] = stamp();
    loop {
        tokio::time::sleep(RELOAD_POLL).await;
        let now = stamp();
        if now == last {
            continue;
        }
        last = now;
        match server_config(&cert, &key) {
            Ok(config) => {
                acceptor.store(Arc::new(TlsAcceptor::from(config)));
                tracing::info!(cert = %cert.display(), "reloaded TLS certificate");
            }
            Err(err) => {
                tracing::error!(%err, "TLS certificate reload failed; keeping the previous one")
            }
        }
    }
}

/// The certificate and key paths of `tls`, resolved by `resolve`.
pub(crate) fn paths(tls: &TlsConfig, resolve: impl Fn(&Path) -> PathBuf) -> (PathBuf, PathBuf) {
    (resolve(&tls.cert), resolve(&tls.key))
}
