//! `cargo xtask histories`: real encrypted workflow histories for
//! `payloadctl`'s tests.
//!
//! Uses the pinned real tools in `target/conformance-venv` (created from
//! `xtask/conformance/requirements.txt` when missing or when the pins
//! change): `xtask/conformance/export_histories.py` starts
//! `temporal server start-dev` on free ports, runs workflows with the Python
//! SDK and the samples' encryption codec, and exports each history with
//! `temporal workflow show -o json` into the committed
//! `crates/payloadctl/testdata/histories/`, next to a `<name>.expected.json`
//! listing the values the workflow saw.

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use anyhow::Context;

use crate::project;

/// The venv with the pinned Temporal CLI and Python SDK; created, or
/// updated when the pins change (the stamp holds the requirements it was
/// made from).
fn venv() -> anyhow::Result<PathBuf> {
    let root = project::root();
    let venv = root.join("target/conformance-venv");
    let requirements = root.join("xtask/conformance/requirements.txt");
    let stamp = venv.join("requirements.stamp");
    let wanted = fs::read_to_string(&requirements)
        .with_context(|| format!("reading {}", requirements.display()))?;
    if fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
        project::run(Command::new("python3").args(["-m", "venv"]).arg(&venv)).context(
            "creating the conformance venv (is python3 with the venv module installed?)",
        )?;
        project::run(
            Command::new(venv.join("bin/python"))
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
        fs::write(&stamp, wanted)?;
    }
    Ok(venv)
}

pub(crate) fn generate() -> anyhow::Result<()> {
    let root = project::root();
    let venv = venv()?;
    project::run(
        Command::new(venv.join("bin/python"))
            .arg(root.join("xtask/conformance/export_histories.py"))
            .arg("--temporal")
            .arg(venv.join("bin/temporal"))
            .arg("--out")
            .arg(root.join("crates/payloadctl/testdata/histories")),
    )
}
