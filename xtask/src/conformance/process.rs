//! The processes of a conformance run: children killed when dropped,
//! commands with a time limit, free ports, and the browser.

use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::project;

/// A child process killed when dropped.
pub(super) struct Running {
    pub(super) name: &'static str,
    pub(super) child: Child,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(super) fn spawn(name: &'static str, cmd: &mut Command, log: &Path) -> anyhow::Result<Running> {
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

pub(super) fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub(super) fn wait_for_port(port: u16, what: &Running, timeout: Duration) -> anyhow::Result<()> {
    poll_port(port, what.name, timeout, || Ok(None))
}

/// Like [`wait_for_port`], but fails at once (with the exit status) when
/// the process ends before it listens.
pub(super) fn wait_for_listener(
    port: u16,
    what: &mut Running,
    timeout: Duration,
) -> anyhow::Result<()> {
    let name = what.name;
    poll_port(port, name, timeout, || what.child.try_wait())
}

/// Waits until something listens on `port`, failing when `exited` says
/// the process ended first or `timeout` passes.
fn poll_port(
    port: u16,
    name: &str,
    timeout: Duration,
    mut exited: impl FnMut() -> std::io::Result<Option<std::process::ExitStatus>>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    while Instant::now() < deadline {
        if let Some(status) = exited()? {
            bail!("{name} exited with {status} before listening on port {port}");
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bail!("{name} did not listen on port {port} within {timeout:?}")
}

/// The browser: `$CHROMIUM` if set, else Debian's `/usr/bin/chromium`,
/// installed with apt-get when missing and running as root (as on CI here).
pub(super) fn chromium() -> anyhow::Result<PathBuf> {
    debian_binary("CHROMIUM", "/usr/bin/chromium", "chromium")
}

/// The WebDriver for Selenium: `$CHROMEDRIVER` if set, else Debian's
/// `/usr/bin/chromedriver` (package `chromium-driver`, the same version as
/// its `chromium`), installed like [`chromium`].
pub(super) fn chromedriver() -> anyhow::Result<PathBuf> {
    debian_binary("CHROMEDRIVER", "/usr/bin/chromedriver", "chromium-driver")
}

/// `$variable` if set (it must exist), else `path`, installed from Debian's
/// `package` with apt-get when missing.
fn debian_binary(variable: &str, path: &str, package: &str) -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os(variable).map(PathBuf::from) {
        if path.exists() {
            return Ok(path);
        }
        bail!("{variable}={} does not exist", path.display());
    }
    let path = PathBuf::from(path);
    if path.exists() {
        return Ok(path);
    }
    let instead = format!("run as root, install `{package}`, or set {variable} to its binary");
    eprintln!("conformance: installing Debian's {package}");
    project::run(Command::new("apt-get").args(["update", "-q"]))
        .with_context(|| format!("apt-get update failed: {instead}"))?;
    project::run(
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends", package])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
    .with_context(|| format!("installing {package} with apt-get failed: {instead}"))?;
    Ok(path)
}

pub(super) fn output(cmd: &mut Command) -> anyhow::Result<Output> {
    cmd.stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {:?}", cmd.get_program()))
}

pub(super) fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `cmd` with its output in `log`, killing it after `timeout`;
/// returns whether it succeeded and what it printed.
pub(super) fn output_within(
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

/// A fresh folder `name-<pid>` under `parent`.
pub(super) fn tempdir_in(parent: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let dir = parent.join(format!("{name}-{}", std::process::id()));
    if dir.exists() {
        fs::remove_dir_all(&dir)?;
    }
    fs::create_dir_all(&dir)?;
    Ok(dir)
}
