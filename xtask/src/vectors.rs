//! `cargo xtask vectors`: golden vectors made by the real Python SDK.
//!
//! Creates a venv in `target/vectors-venv` from the pinned
//! `xtask/vectors/requirements.txt` and runs `xtask/vectors/make_vectors.py`,
//! which writes the committed files under `crates/*/testdata/python/`.
//! `--check-rust` goes the other way: our codecs write payloads into
//! `target/rust-vectors/` and the Python script decodes them.

use std::path::PathBuf;
use std::process::Command;

use anyhow::Context;

use crate::project;

fn venv_python() -> anyhow::Result<PathBuf> {
    let root = project::root();
    let venv = root.join("target/vectors-venv");
    let python = venv.join("bin/python");
    let requirements = root.join("xtask/vectors/requirements.txt");
    let stamp = venv.join("requirements.stamp");
    let wanted = std::fs::read_to_string(&requirements)
        .with_context(|| format!("reading {}", requirements.display()))?;
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
        project::run(Command::new("python3").args(["-m", "venv"]).arg(&venv))
            .context("creating the vectors venv (is python3 with the venv module installed?)")?;
        project::run(
            Command::new(&python)
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "-r",
                ])
                .arg(&requirements),
        )?;
        std::fs::write(&stamp, wanted)?;
    }
    Ok(python)
}

pub(crate) fn generate() -> anyhow::Result<()> {
    let root = project::root();
    let python = venv_python()?;
    project::run(
        Command::new(python)
            .arg(root.join("xtask/vectors/make_vectors.py"))
            .arg("--out-root")
            .arg(&root),
    )
}

/// Directory our codecs write interop payloads into for Python to decode.
pub(crate) fn rust_out_dir() -> PathBuf {
    project::root().join("target/rust-vectors")
}

pub(crate) fn check_rust() -> anyhow::Result<()> {
    let root = project::root();
    let out = rust_out_dir();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    project::run(
        Command::new(cargo)
            .current_dir(&root)
            .args([
                "test",
                "-p",
                "payload-codecs",
                "--test",
                "interop",
                "--",
                "write_rust_vectors",
            ])
            .env("PAYLOADKIT_RUST_VECTORS_DIR", &out),
    )?;
    let python = venv_python()?;
    project::run(
        Command::new(python)
            .arg(root.join("xtask/vectors/make_vectors.py"))
            .arg("--check-rust-dir")
            .arg(&out),
    )
}
