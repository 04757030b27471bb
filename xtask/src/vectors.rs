//! `cargo xtask vectors`: golden vectors made by the real Python SDK.
//!
//! Creates a venv in `target/vectors-venv` from the pinned
//! `xtask/vectors/requirements.txt` and runs `xtask/vectors/make_vectors.py`,
//! which writes the committed files under `crates/*/testdata/python/`.
//! `--check-rust` goes the other way: our codecs write payloads into
//! `target/rust-vectors/` (the envelope codec of `payload-kms` into its
//! `envelope/` folder) and the Python script decodes them.

use std::path::{Path, PathBuf};
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

/// The `write_rust_vectors` test of `package`'s `interop` test target,
/// writing into `out`.
fn write_rust_vectors(root: &Path, package: &str, out: &Path) -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    project::run(
        Command::new(cargo)
            .current_dir(root)
            .args([
                "test",
                "-p",
                package,
                "--test",
                "interop",
                "--",
                "write_rust_vectors",
            ])
            .env("PAYLOADKIT_RUST_VECTORS_DIR", out),
    )
}

pub(crate) fn check_rust() -> anyhow::Result<()> {
    let root = project::root();
    let out = rust_out_dir();
    write_rust_vectors(&root, "payload-codecs", &out)?;
    // Writes into `out/envelope/`.
    write_rust_vectors(&root, "payload-kms", &out)?;
    let python = venv_python()?;
    project::run(
        Command::new(python)
            .arg(root.join("xtask/vectors/make_vectors.py"))
            .arg("--check-rust-dir")
            .arg(&out)
            .arg("--check-rust-envelope-dir")
            .arg(out.join("envelope")),
    )
}
