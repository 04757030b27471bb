//! A production Temporal Codec Server.
//!
//! The Temporal CLI and Web UI send payloads they cannot read to
//! `POST …/decode` (and values to store to `POST …/encode`) as proto3 JSON
//! `{"payloads":[…]}`; this server runs them through the namespace's codec
//! chain (AES-256-GCM with a rotating keyring, zstd, zlib) and answers with
//! the same number of payloads in the same order.
//!
//! - [`router`]: the axum router (an API boundary: embed it in your own
//!   server), over an [`AppState`].
//! - [`serve`] / [`serve_on`]: bind, serve, reload keys on SIGHUP or when
//!   keyring files change, shut down gracefully.
//! - [`Config`]: TOML + environment + flags; [`Config::development`] is the
//!   embedded default that `cargo run -p codec-server` uses.
//!
//! # Examples
//!
//! ```no_run
//! # async fn run() -> Result<(), codec_server::ServeError> {
//! let config = codec_server::Config::load("codec-server.toml".as_ref())?;
//! codec_server::serve(config, async { tokio::signal::ctrl_c().await.ok(); }).await
//! # }
//! ```

mod access_log;
pub mod auth;
mod body;
mod codec_route;
pub mod config;
mod connection;
mod cors;
pub mod dev;
mod error;
mod limits;
mod metrics;
mod namespaces;
mod reload;
mod service;
mod shard;
mod state;
mod tls;

use std::future::Future;
use std::net::SocketAddr;

use axum::Router;
use tokio::net::TcpListener;

pub use crate::config::{Config, ConfigError, Overrides};
pub use crate::cors::InvalidCorsValue;
pub use crate::error::ApiError;
pub use crate::namespaces::{BuildError, build_namespaces};
pub use crate::service::CodecService;
pub use crate::state::{AppState, NamespacePolicy, NamespaceTable};
pub use crate::tls::TlsError;

/// The server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Keyrings or codecs could not be built.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// CORS settings are invalid.
    #[error(transparent)]
    Cors(#[from] InvalidCorsValue),
    /// Binding or serving failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The TLS certificate or key is unusable.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// Serving failed.
    #[error("server failed: {0}")]
    Io(#[from] std::io::Error),
}

/// An axum router that answers everything with the [`CodecService`] of
/// `state`: the same service `serve` runs, for embedding in a server of
/// your own (nest it, or merge it with your routes).
pub fn router(state: AppState) -> Router {
    Router::new().fallback_service(CodecService::new(state))
}

/// Validates `config`, loads its keyrings and builds the state.
pub fn build_state(config: &Config) -> Result<AppState, ServeError> {
    config.validate()?;
    let namespaces = build_namespaces(config)?;
    Ok(AppState::new(namespaces, config)?)
}

/// Everything `serve` would refuse at start-up, checked without binding:
/// the configuration, every keyring, the CORS values and the TLS files.
/// What `codec-server --check-config` runs.
pub fn check(config: &Config) -> Result<(), ServeError> {
    build_state(config)?;
    if let Some(tls) = &config.tls {
        let (cert, key) = tls::paths(tls, |p| config.resolve(p));
        tls::server_config(&cert, &key)?;
    }
    Ok(())
}

/// Serves on `config.server.listen` until `shutdown` completes.
pub async fn serve(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let addr = config.server.listen;
    let listener = bind(addr).map_err(|source| ServeError::Bind { addr, source })?;
    serve_on(listener, config, shutdown).await
}

/// Connections that may wait to be accepted: more than tokio's default of
/// 1024, so that a burst of connections (or of idle sockets an attacker
/// opens) does not have new clients' connection attempts dropped and
/// retried a second later. The system caps it (`net.core.somaxconn`).
const LISTEN_BACKLOG: u32 = 4096;

/// A listener on `addr` with [`LISTEN_BACKLOG`].
fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Serves on an already bound listener until `shutdown` completes, over TLS
/// when `config.tls` is set, reloading keyrings on SIGHUP and when their
/// files change (and certificates when theirs change). Then stops
/// accepting, reports not ready, and gives requests in flight
/// `server.shutdown_grace_secs` to finish before closing what is left.
pub async fn serve_on(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let state = build_state(&config)?;
    let tls = match &config.tls {
        Some(tls) => {
            let (cert, key) = tls::paths(tls, |p| config.resolve(p));
            Some(tls::Tls::new(cert, key)?)
        }
        None => None,
    };
    let server = config.server.clone();
    let scheme = if tls.is_some() { "https" } else { "http" };
    match listener.local_addr() {
        Ok(addr) => tracing::info!(endpoint = %format_args!("{scheme}://{addr}"), "listening"),
        Err(err) => tracing::warn!(%err, "listening on an address the system cannot tell"),
    }
    let reloader = reload::spawn(state.clone(), config);
    connection::serve(listener, state, &server, tls, shutdown).await;
    reloader.abort();
    Ok(())
}
