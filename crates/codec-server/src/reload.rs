//! Reloading keyrings without dropping requests: on SIGHUP, and when a
//! keyring file's modification time changes (checked every two seconds). A
//! reload that fails keeps the previous keys and logs why.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use tokio::task::JoinHandle;

use crate::config::Config;
use crate::namespaces::build_namespaces;
use crate::state::AppState;

const POLL: Duration = Duration::from_secs(2);

/// Starts the reload task.
pub(crate) fn spawn(state: AppState, config: Config) -> JoinHandle<()> {
    tokio::spawn(async move {
        let files = keyring_files(&config);
        let mut stamps = modified(&files);
        let mut hangup = hangup_signal();
        loop {
            let by_signal = tokio::select! {
                _ = tokio::time::sleep(POLL) => false,
                _ = recv(&mut hangup) => true,
            };
            let now = modified(&files);
            if !by_signal && now == stamps {
                continue;
            }
            stamps = now;
            match build_namespaces(&config) {
                Ok(table) => {
                    state.reload(table);
                    tracing::info!(by_signal, "reloaded keyrings");
                }
                Err(err) => {
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

fn modified(files: &[PathBuf]) -> Vec<Option<SystemTime>> {
    files
        .iter()
        .map(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok())
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
