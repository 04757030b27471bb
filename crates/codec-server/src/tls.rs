//! HTTPS with rustls: the Web UI only passes access tokens to an https
//! Codec Server.
//!
//! [`TlsListener`] plugs into `axum::serve`. TLS handshakes run in their own
//! tasks (a slow or stalled client cannot hold up other connections), ALPN
//! offers HTTP/2 and HTTP/1.1, and the certificate and key files are
//! re-read when they change, so renewed certificates apply to new
//! connections without a restart.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::config::TlsConfig;

/// Longest a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
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

/// A listener that yields TLS connections for `axum::serve`.
#[derive(Debug)]
pub struct TlsListener {
    incoming: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local_addr: SocketAddr,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl TlsListener {
    /// Serves TLS on `listener` with the files in `tls` (resolved by
    /// `resolve`), reloading them when they change.
    pub(crate) fn new(
        listener: TcpListener,
        cert: PathBuf,
        key: PathBuf,
    ) -> Result<Self, TlsError> {
        let acceptor = Arc::new(ArcSwap::from_pointee(TlsAcceptor::from(server_config(
            &cert, &key,
        )?)));
        let local_addr = listener.local_addr().map_err(|e| TlsError::File {
            what: "certificate",
            path: cert.clone(),
            message: format!("listener has no address: {e}"),
        })?;
        let (sender, incoming) = mpsc::channel(256);
        let accept = tokio::spawn(accept_loop(listener, acceptor.clone(), sender));
        let reload = tokio::spawn(reload_loop(acceptor, cert, key));
        Ok(Self {
            incoming,
            local_addr,
            tasks: vec![accept, reload],
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: Arc<ArcSwap<TlsAcceptor>>,
    sender: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of file descriptors and the like: back off, keep serving.
                tracing::warn!(%err, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.load_full();
        let sender = sender.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => {
                    let _ = sender.send((stream, peer)).await;
                }
                Ok(Err(err)) => tracing::debug!(%peer, %err, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
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

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.incoming.recv().await {
            Some(connection) => connection,
            // The accept task only ends when aborted on drop.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}

/// The certificate and key paths of `tls`, resolved by `resolve`.
pub(crate) fn paths(tls: &TlsConfig, resolve: impl Fn(&Path) -> PathBuf) -> (PathBuf, PathBuf) {
    (resolve(&tls.cert), resolve(&tls.key))
}
