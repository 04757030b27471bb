//! Reloading keyrings without dropping requests: on SIGHUP, and when a
//! keyring file's contents change (compared every two seconds, so edits
//! within one second of each other on a file system with coarse
//! modification times are seen too). A reload that fails keeps the previous
//! keys and logs why. Each reload is counted in
//! `codec_server_keyring_reloads_total{result="ok"|"failed"}`.

use std::path::PathBuf;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::config::Config;
use crate::namespaces::build_namespaces;
use crate::state::AppState;

const POLL: Duration = Duration::from_secs(2);

/// Starts the reload task.
pub(crate) fn spawn(state: AppState, config: Config) -> JoinHandle<()> {
    tokio::spawn(async move {
        let files = keyring_files(&config);
        let mut stamps = fingerprints(&files);
        let mut hangup = hangup_signal();
        let ok =
            state
                .metrics()
                .labelled_counter("codec_server_keyring_reloads_total", "result", "ok");
        let failed = state.metrics().labelled_counter(
            "codec_server_keyring_reloads_total",
            "result",
            "failed",
        );
        loop {
            let by_signal = tokio::select! {
                _ = tokio::time::sleep(POLL) => false,
                _ = recv(&mut hangup) => true,
            };
            let now = fingerprints(&files);
            if !by_signal && now == stamps {
                continue;
            }
            stamps = now;
            match build_namespaces(&config) {
                Ok(table) => {
                    state.reload(table);
                    ok.increment(1);
                    tracing::info!(by_signal, "reloaded keyrings");
                }
                Err(err) => {
                    failed.increment(1);
                    tracing::error!(%err, "keyring reload failed; keeping the previous keys")
                }
            }
        }
    })
}

fn keyring_files(config: &Config) -> Vec<PathBuf> {
    config
        .default
        .iter()
        .chain(config.namespaces.values())
        .filter_map(|n| n.keyring.as_deref())
        .map(|p| config.resolve(p))
        .collect()
}

/// What each file holds now (a digest of its bytes; `None` when it cannot
/// be read): keyring files are small.
fn fingerprints(files: &[PathBuf]) -> Vec<Option<Vec<u8>>> {
    files
        .iter()
        .map(|f| {
            std::fs::read(f).ok().map(|bytes| {
                ring::digest::digest(&ring::digest::SHA256, &bytes)
                    .as_ref()
                    .to_vec()
            })
        })
        .collect()
}

#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = Option<()>;

#[cfg(unix)]
fn hangup_signal() -> Hangup {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
}

#[cfg(not(unix))]
fn hangup_signal() -> Hangup {
    None
}

async fn recv(hangup: &mut Hangup) {
    #[cfg(unix)]
    if let Some(signal) = hangup {
        signal.recv().await;
        return;
    }
    let _ = hangup;
    std::future::pending::<()>().await;
}
