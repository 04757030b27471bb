//! `codec-server`: serve Temporal payload codecs to the CLI and Web UI.
//!
//! With no `--config`, runs the embedded development default (see
//! `codec_server::dev`).

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use codec_server::{Config, Overrides, dev};

/// jemalloc with one arena and large buffers returned at once (see
/// `.cargo/config.toml`): under a load of 2 MiB requests glibc's per-thread
/// arenas kept about three times the memory in use.
#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// A production Temporal Codec Server: decodes and encodes payloads for the
/// Temporal CLI and Web UI with AES-256-GCM keyrings, zstd and zlib.
#[derive(Debug, Parser)]
#[command(version, after_long_help = EXAMPLES)]
struct Args {
    /// TOML configuration file (default: the embedded development setup).
    #[arg(long, short, env = "CODEC_SERVER_CONFIG")]
    config: Option<PathBuf>,
    /// Validate the configuration and keyrings, then exit.
    #[arg(long)]
    check_config: bool,
    /// Log filter, e.g. `info`, `debug`, `codec_server=debug`.
    #[arg(long, env = "CODEC_SERVER_LOG", default_value = "info")]
    log: String,
    #[command(flatten)]
    overrides: Overrides,
}

const EXAMPLES: &str = "Examples:
  codec-server                                  # dev server on 127.0.0.1:8888
  codec-server --config /etc/codec-server.toml --check-config
  CODEC_SERVER_LISTEN=0.0.0.0:8888 codec-server --config codec-server.toml";

fn main() -> ExitCode {
    let args = Args::parse();
    let filter = match tracing_subscriber::EnvFilter::try_new(&args.log) {
        Ok(filter) => filter,
        Err(err) => {
            eprintln!(
                "codec-server: error: --log `{}` is not a valid log filter ({err}); \
                 try `info` or `codec_server=debug`",
                args.log
            );
            return ExitCode::from(2);
        }
    };
    let ansi = std::io::stderr().is_terminal();
    // Lines go to stderr from a thread of their own: a request never waits
    // for the terminal or the journal.
    let (writer, written) = tracing_appender::non_blocking(std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        // Colours only for a person at a terminal, not in files or journals.
        .with_ansi(ansi)
        .init();
    let result = run(args);
    // Every line logged is written before the process says anything else.
    drop(written);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!(
                "codec-server: error: {}",
                payload_converter::error_text(err.as_ref())
            );
            ExitCode::from(2)
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let development = args.config.is_none();
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => {
            let cwd = std::env::current_dir().context("reading the working directory")?;
            let keyring = dev::dev_keyring_path(&cwd);
            if dev::ensure_dev_keyring(&keyring).context("creating the development keyring")? {
                eprintln!(
                    "codec-server: created a development keyring at {}",
                    keyring.display()
                );
            }
            Config::development(keyring)
        }
    };
    // Keyrings and AWS clients read variables through this lookup only;
    // with S3 or AWS KMS in use, a shared AWS profile answers for the
    // credentials the environment lacks.
    let mut environment: payload_storage::aws_profile::Lookup =
        std::sync::Arc::new(|name: &str| std::env::var(name).ok());
    if config.uses_aws() {
        environment = payload_storage::AwsProfile::lookup(environment)
            .context("reading the AWS profile (the config uses S3 storage or an awskms:// KEK)")?;
    }
    config.environment = codec_server::config::Environment::from_fn(move |name| environment(name));
    let mut overrides = args.overrides;
    // Flag and environment paths are relative to the working directory.
    if let Some(keyring) = overrides.keyring.take() {
        let cwd = std::env::current_dir().context("reading the working directory")?;
        overrides.keyring = Some(cwd.join(keyring));
    }
    config.apply(&overrides)?;
    // Loads every keyring and the TLS files, so --check-config proves they are usable.
    codec_server::check(&config)?;
    if args.check_config {
        println!("configuration is valid");
        return Ok(());
    }
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let endpoint = format!("{scheme}://{}", config.server.listen);
    if development {
        eprintln!(
            "codec-server: development mode (no --config): any namespace, no auth, CORS for the local Web UI.\n\
             Use it with:\n  \
             temporal server start-dev --ui-codec-endpoint {endpoint}\n  \
             temporal workflow show -w <workflow-id> --codec-endpoint {endpoint}\n\
             Failed requests are logged; to log every request: --log info,codec_server::access=debug"
        );
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(codec_server::serve(config, shutdown_signal()))?;
    tracing::info!("stopped");
    Ok(())
}

/// Completes on ctrl-c or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
