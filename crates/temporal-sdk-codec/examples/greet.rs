//! What the example worker and starter share: the connection flags, the
//! client with payloadkit's codec (the one line that matters is in
//! [`Connect::client`]), and the `RustGreet` workflow and its activity.

// The SDK's macros generate public items in this private module.
#![allow(unreachable_pub)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use payload_codecs::{ChainBuilder, Keyring, ZstdCodec};
use payload_converter::PayloadCodec;
use payload_storage::{ExternalStorage, StorageCodec, StorageSettings};
use temporalio_client::{Client, ClientOptions, Connection, ConnectionOptions, Url};
use temporalio_macros::{activities, workflow, workflow_methods};
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use temporalio_sdk::{ActivityOptions, WorkflowContext, WorkflowResult};

/// The task queue the example worker polls by default.
pub const TASK_QUEUE: &str = "payloadkit-rust";

/// Where the server is, which task queue the workflow runs on and which
/// keys encrypt.
#[derive(Debug, clap::Args)]
pub struct Connect {
    /// The Temporal frontend, `host:port`.
    #[arg(long, default_value = "127.0.0.1:7233")]
    pub address: String,
    /// The Temporal namespace.
    #[arg(long, default_value = "default")]
    pub namespace: String,
    /// The task queue the worker polls and the starter starts on.
    #[arg(long, default_value = TASK_QUEUE)]
    pub task_queue: String,
    /// The keyring file the Codec Server and `payloadctl` read
    /// (`docs/keyring.md`); `cargo run -p codec-server` creates the default.
    #[arg(long, default_value = ".payloadkit/dev-keyring.toml")]
    pub keyring: PathBuf,
    /// Compress each payload with zstd before encrypting it.
    #[arg(long)]
    pub zstd: bool,
    /// Offload large payloads to external storage and resolve references,
    /// as the other SDKs do: a TOML file with the Codec Server's `storage`
    /// keys (`docs/storage.md`).
    #[arg(long, value_name = "FILE")]
    pub storage: Option<PathBuf>,
}

/// The exit code of `program`'s run, with its error printed.
pub fn exit_code(program: &str, result: anyhow::Result<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{program}: error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

impl Connect {
    /// A client whose payloads go through zstd (with `--zstd`) and
    /// AES-256-GCM under the keyring's active key; workers built on it use
    /// the same codec.
    pub async fn client(&self) -> anyhow::Result<Client> {
        let keyring = Keyring::load(&self.keyring, &|name| std::env::var(name).ok())
            .with_context(|| format!("loading the keyring {}", self.keyring.display()))?;
        let mut chain = ChainBuilder::new();
        if self.zstd {
            chain = chain.compress_zstd(ZstdCodec::new());
        }
        let chain = chain.encrypt(Arc::new(keyring)).build();
        eprintln!("codec: {} (outermost first)", chain.name());
        let mut codec: Arc<dyn PayloadCodec> = Arc::new(chain);
        if let Some(path) = &self.storage {
            let storage = load_storage(path)?;
            eprintln!(
                "external storage: payloads of {} bytes or more are offloaded",
                storage.threshold()
            );
            codec = Arc::new(StorageCodec::new(codec, Arc::new(storage)));
        }

        // The one line that adds payloadkit's codec to the SDK:
        let options = ClientOptions::new(self.namespace.as_str())
            .data_converter(temporal_sdk_codec::data_converter(codec))
            .build();

        let url: Url = format!("http://{}", self.address)
            .parse()
            .with_context(|| format!("`{}` is not a host:port", self.address))?;
        let connection = Connection::connect(ConnectionOptions::new(url).build())
            .await
            .with_context(|| format!("connecting to Temporal at {}", self.address))?;
        Client::new(connection, options).context("creating the Temporal client")
    }
}

/// The external storage a `storage` TOML file describes (credentials from
/// the standard AWS or Google variables).
fn load_storage(path: &std::path::Path) -> anyhow::Result<ExternalStorage> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the storage file {}", path.display()))?;
    let settings: StorageSettings = toml::from_str(&text)
        .with_context(|| format!("{} is not a storage section", path.display()))?;
    let base = path
        .parent()
        .unwrap_or(std::path::Path::new("."))
        .to_path_buf();
    settings
        .build(&|name| std::env::var(name).ok(), &|p| base.join(p))
        .with_context(|| format!("{}", path.display()))
}

/// Greets through an activity: its input, the activity's input and result,
/// and its result are all payloads, so all are stored encrypted.
#[workflow]
#[derive(Default)]
pub struct RustGreet;

#[workflow_methods]
impl RustGreet {
    /// Runs [`Greetings::compose`] and returns what it returns.
    #[run]
    pub async fn run(ctx: &mut WorkflowContext<Self>, name: String) -> WorkflowResult<String> {
        let greeting = ctx
            .execute_activity(
                Greetings::compose,
                name,
                ActivityOptions::start_to_close_timeout(Duration::from_secs(30)),
            )
            .await?;
        Ok(greeting)
    }
}

/// The activity of [`RustGreet`].
pub struct Greetings;

#[activities]
impl Greetings {
    /// `Hello from Rust, <name>!`
    #[activity]
    pub async fn compose(_ctx: ActivityContext, name: String) -> Result<String, ActivityError> {
        Ok(format!("Hello from Rust, {name}!"))
    }
}
