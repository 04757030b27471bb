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

/// The `write_rust_vectors` tests of the `interop` test targets
/// (payload-codecs', and payload-kms' into `out/envelope/`), writing into
/// `out`. `--workspace` resolves features as `cargo test --workspace` does,
/// so after it nothing is compiled again (`-p` would build a second copy of
/// the crates under other features).
fn write_rust_vectors(out: &Path) -> anyhow::Result<()> {
    // Nothing of an earlier run may be checked in place of this one's.
    if out.exists() {
        std::fs::remove_dir_all(out)?;
    }
    project::run(
        project::cargo()
            .args([
                "test",
                "--workspace",
                "--locked",
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
    write_rust_vectors(&out)?;
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
