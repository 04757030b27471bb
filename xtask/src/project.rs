//! Paths and process helpers shared by the tasks.

use std::path::{Path, PathBuf};
use std::process::Command;

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, bail};

/// Set by `cargo xtask ci`: the cargo runs it starts keep no incremental
/// state (gigabytes on a fresh clone that no later build reads).
static CI_BUILD: AtomicBool = AtomicBool::new(false);

/// From now on, [`cargo`] commands build without incremental state.
pub(crate) fn ci_build() {
    CI_BUILD.store(true, Ordering::Relaxed);
}

/// A `cargo` command (the one running xtask, else `cargo` on the path) in the
/// workspace root.
pub(crate) fn cargo() -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root());
    if CI_BUILD.load(Ordering::Relaxed) {
        cmd.env("CARGO_INCREMENTAL", "0");
    }
    cmd
}

/// The workspace root (the folder holding the root `Cargo.toml`).
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

/// Runs `cmd`, echoing it first, and fails with its exit status.
pub(crate) fn run(cmd: &mut Command) -> anyhow::Result<()> {
    eprintln!("$ {}", describe(cmd));
    let status = cmd
        .status()
        .with_context(|| format!("could not start `{}`", describe(cmd)))?;
    if !status.success() {
        bail!("`{}` failed with {status}", describe(cmd));
    }
    Ok(())
}

fn describe(cmd: &Command) -> String {
    let mut out = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        out.push(' ');
        out.push_str(&arg.to_string_lossy());
    }
    out
}

/// A Python venv at `target/<name>` with the pinned packages of
/// `requirements` (relative to the root), created or updated when the pins
/// change; returns its folder.
pub(crate) fn venv(name: &str, requirements: &str) -> anyhow::Result<PathBuf> {
    let root = root();
    let venv = root.join("target").join(name);
    let requirements = root.join(requirements);
    let stamp = venv.join("requirements.stamp");
    let wanted = std::fs::read_to_string(&requirements)
        .with_context(|| format!("reading {}", requirements.display()))?;
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv))
            .context("creating a Python venv (needs python3 with the venv module)")?;
        run(Command::new(venv.join("bin/python"))
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(&requirements))?;
        std::fs::write(&stamp, wanted)?;
    }
    Ok(venv)
}
