//! `cargo xtask vectors`: golden vectors made by the real Python SDK.
//!
//! Creates a venv in `target/vectors-venv` from the pinned
//! `xtask/vectors/requirements.txt` and runs `xtask/vectors/make_vectors.py`,
//! which writes the committed files under `crates/*/testdata/python/`.
//! `--check-rust` goes the other way: our codecs write payloads into
//! `target/rust-vectors/` and the Python script decodes them.

use std::path::PathBuf;
use std::process::Command;

use crate::project;

fn venv_python() -> anyhow::Result<PathBuf> {
    Ok(project::venv("vectors-venv", "xtask/vectors/requirements.txt")?.join("bin/python"))
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
