//! [`Stack`]: what the checks run against (the real `temporal` CLI and dev
//! server, Python and Rust SDK programs, our Codec Servers, Chromium), with
//! the commands they use.

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use anyhow::{Context, bail};

use super::process::{
    Running, free_port, output, output_within, spawn, tempdir_in, text, wait_for_listener,
};

/// How Chromium runs here, headless, for `--dump-dom`/`--screenshot` and
/// for Selenium: no background connections (the closed network refuses
/// them, many at a time).
const CHROMIUM_FLAGS: [&str; 8] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

/// Debian's Chromium and its WebDriver.
pub(super) struct Browser {
    pub(super) chromium: PathBuf,
    pub(super) chromedriver: PathBuf,
}

/// Everything a check needs.
pub(super) struct Stack {
    pub(super) temporal: PathBuf,
    pub(super) python: PathBuf,
    pub(super) workflows: PathBuf,
    pub(super) address: String,
    pub(super) codec_url: String,
    pub(super) secured_url: String,
    pub(super) ui_url: String,
    /// The browser (full and storage runs).
    pub(super) browser: Option<Browser>,
    /// The port of the storage stage's moto S3 server, which the open Codec
    /// Server (the Web UI's) reads references from.
    pub(super) moto_port: u16,
    pub(super) artifacts: PathBuf,
    /// The keyring file our Codec Server reads, shared by the Rust SDK
    /// examples.
    pub(super) keyring: PathBuf,
    /// `target/debug/examples/{worker,starter}` of `temporal-sdk-codec`.
    pub(super) rust_examples: PathBuf,
    /// Whether this run built the examples (a full run; the storage stage
    /// alone does not, and skips the checks that need them).
    pub(super) rust_built: bool,
    /// Our `codec-server` binary (the storage stage starts one more).
    pub(super) codec_bin: PathBuf,
}

impl Stack {
    pub(super) fn temporal(&self, args: &[&str]) -> anyhow::Result<Output> {
        output(
            Command::new(&self.temporal)
                .args(args)
                .args(["--address", &self.address]),
        )
    }

    pub(super) fn show(
        &self,
        id: &str,
        codec: Option<&str>,
        extra: &[&str],
    ) -> anyhow::Result<String> {
        let mut args = vec!["workflow", "show", "-w", id];
        if let Some(url) = codec {
            args.extend(["--codec-endpoint", url]);
        }
        args.extend(extra);
        Ok(text(&self.temporal(&args)?))
    }

    pub(super) fn python_run(
        &self,
        id: &str,
        workflow: &str,
        args: &str,
        extra: &[&str],
    ) -> anyhow::Result<String> {
        let out = output(
            Command::new(&self.python)
                .arg(&self.workflows)
                .args([
                    "run",
                    "--address",
                    &self.address,
                    "--workflow-id",
                    id,
                    "--workflow",
                    workflow,
                    "--args",
                    args,
                ])
                .args(extra),
        )?;
        let shown = text(&out);
        if !(out.status.success() || (workflow == "fail" && out.status.code() == Some(3))) {
            bail!("python workflow {id} failed: {shown}");
        }
        Ok(shown.trim().to_owned())
    }

    /// A Python worker (`workflows.py worker`, the samples' codec) polling
    /// for `seconds`, logging into `log` of the artifacts.
    pub(super) fn python_worker(&self, seconds: &str, log: &str) -> anyhow::Result<Running> {
        spawn(
            "python worker",
            Command::new(&self.python).arg(&self.workflows).args([
                "worker",
                "--address",
                &self.address,
                "--seconds",
                seconds,
            ]),
            &self.artifacts.join(log),
        )
    }

    /// Another codec-server: `body` after its `[server] listen` on a free
    /// port, in `<name>.toml` beside the keyring (so `keyring.toml` resolves),
    /// moto's AWS keys (`test`/`test`) in its environment, its log in
    /// `codec-server-<name>.log` (`what` names the process in errors); its
    /// port, once it listens.
    pub(super) fn start_codec(
        &self,
        (name, what): (&str, &'static str),
        body: &str,
    ) -> anyhow::Result<(Running, u16)> {
        let port = free_port()?;
        let dir = self.keyring.parent().context("the keyring has no folder")?;
        let config = dir.join(format!("{name}.toml"));
        fs::write(
            &config,
            format!("[server]\nlisten = \"127.0.0.1:{port}\"\n\n{body}"),
        )?;
        let log = self.artifacts.join(format!("codec-server-{name}.log"));
        let mut running = spawn(
            what,
            Command::new(&self.codec_bin)
                .arg("--config")
                .arg(&config)
                .env("AWS_ACCESS_KEY_ID", "test")
                .env("AWS_SECRET_ACCESS_KEY", "test"),
            &log,
        )?;
        wait_for_listener(port, &mut running, Duration::from_secs(60)).with_context(|| {
            let shown = fs::read_to_string(&log).unwrap_or_default();
            format!("config {}; its log: {shown}", config.display())
        })?;
        Ok((running, port))
    }

    /// An example binary of `temporal-sdk-codec` with the stack's address
    /// and keyring, and moto's credentials (`test`/`test`) for `--storage`.
    pub(super) fn rust_example(&self, name: &str) -> Command {
        let mut cmd = Command::new(self.rust_examples.join(name));
        cmd.args(["--address", &self.address, "--keyring"])
            .arg(&self.keyring)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test");
        cmd
    }

    /// The Rust SDK starter: starts `workflow_type` on `queue`, waits, and
    /// returns what it printed (`result: "…"`).
    pub(super) fn rust_start(
        &self,
        id: &str,
        workflow_type: &str,
        queue: &str,
        input: &str,
        extra: &[&str],
    ) -> anyhow::Result<String> {
        let mut cmd = self.rust_example("starter");
        cmd.args([
            "--workflow-id",
            id,
            "--workflow-type",
            workflow_type,
            "--task-queue",
            queue,
            "--input",
            input,
            "--timeout",
            "60",
        ])
        .args(extra);
        self.finished(
            &mut cmd,
            &format!("rust-starter-{id}.log"),
            &format!("rust starter for {id}"),
        )
    }

    /// `workflows.py start`: the Python client starts a workflow another
    /// worker runs and prints its result as JSON.
    pub(super) fn python_start(
        &self,
        id: &str,
        workflow_type: &str,
        queue: &str,
        args: &str,
        extra: &[&str],
    ) -> anyhow::Result<String> {
        let mut cmd = Command::new(&self.python);
        cmd.arg(&self.workflows)
            .args([
                "start",
                "--address",
                &self.address,
                "--workflow-id",
                id,
                "--workflow-type",
                workflow_type,
                "--task-queue",
                queue,
                "--args",
                args,
            ])
            .args(extra);
        self.finished(
            &mut cmd,
            &format!("python-start-{id}.log"),
            &format!("python start of {id}"),
        )
    }

    /// Runs `cmd` (at most 3 minutes, its output also in the artifacts'
    /// `log`): what it printed, trimmed; an error naming `what` if it failed.
    fn finished(&self, cmd: &mut Command, log: &str, what: &str) -> anyhow::Result<String> {
        let log = self.artifacts.join(log);
        let (ok, shown) = output_within(cmd, Duration::from_secs(180), &log)?;
        if !ok {
            bail!("{what} failed: {shown}");
        }
        Ok(shown.trim().to_owned())
    }

    pub(super) fn browser_dom(&self, id: &str, screenshot: bool) -> anyhow::Result<String> {
        let url = format!("{}/namespaces/default/workflows/{id}", self.ui_url);
        let browser = self
            .browser
            .as_ref()
            .context("this stage runs no browser")?;
        let profile = tempdir_in(&self.artifacts, "chrome")?;
        let mut cmd = Command::new(&browser.chromium);
        cmd.args(["--virtual-time-budget=20000", "--window-size=1400,1000"])
            .args(CHROMIUM_FLAGS)
            .arg(format!("--user-data-dir={}", profile.display()));
        if screenshot {
            cmd.arg(format!(
                "--screenshot={}",
                self.artifacts.join(format!("{id}.png")).display()
            ));
        } else {
            cmd.arg("--dump-dom");
        }
        let out = output(cmd.arg(&url))?;
        let _ = fs::remove_dir_all(&profile);
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The Web UI's page of workflow `id` in Chromium driven by Selenium
    /// (`webui.py download`): a payload shown as a reference, a click on
    /// its download button, the saved file holding every `expect`;
    /// screenshots in `webui-<id>/`. What the script saw.
    pub(super) fn web_ui_download(&self, id: &str, expect: &[&str]) -> anyhow::Result<String> {
        let browser = self
            .browser
            .as_ref()
            .context("this stage runs no browser")?;
        let out = self.artifacts.join(format!("webui-{id}"));
        let mut cmd = Command::new(&self.python);
        cmd.arg(self.workflows.with_file_name("webui.py"))
            .arg("download")
            .arg("--url")
            .arg(format!("{}/namespaces/default/workflows/{id}", self.ui_url))
            .arg("--out")
            .arg(&out)
            .arg("--chromium")
            .arg(&browser.chromium)
            .arg("--chromedriver")
            .arg(&browser.chromedriver);
        for flag in CHROMIUM_FLAGS {
            cmd.arg(format!("--browser-flag={flag}"));
        }
        for text in expect {
            // One argument: a text may begin with `-`.
            cmd.arg(format!("--expect={text}"));
        }
        let what = format!("webui.py download (screenshots in {})", out.display());
        let shown = self.finished(&mut cmd, &format!("webui-{id}.log"), &what)?;
        Ok(format!("{shown}; screenshots in {}", out.display()))
    }
}
