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

use std::process::Command;

use crate::project;

pub(crate) fn generate() -> anyhow::Result<()> {
    let root = project::root();
    let venv = project::venv("conformance-venv", "xtask/conformance/requirements.txt")?;
    project::run(
        Command::new(venv.join("bin/python"))
            .arg(root.join("xtask/conformance/export_histories.py"))
            .arg("--temporal")
            .arg(venv.join("bin/temporal"))
            .arg("--out")
            .arg(root.join("crates/payloadctl/testdata/histories")),
    )
}
