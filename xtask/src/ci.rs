//! `cargo xtask ci`: the one command CI runs (`.ci/run` and GitHub Actions).
//!
//! Order: cheap checks first, so a formatting slip fails in seconds; the
//! conformance run against the real Temporal tools and the soak of the
//! release binary come last.

use std::process::Command;

use crate::{codegen, project};

pub(crate) fn run() -> anyhow::Result<()> {
    let root = project::root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let cargo_cmd = |args: &[&str]| {
        let mut cmd = Command::new(&cargo);
        cmd.current_dir(&root).args(args);
        cmd
    };
    project::run(&mut cargo_cmd(&["fmt", "--all", "--", "--check"]))?;
    codegen::run(codegen::Mode::Check)?;
    project::run(&mut cargo_cmd(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--locked",
        "--",
        "-D",
        "warnings",
    ]))?;
    project::run(&mut cargo_cmd(&["test", "--workspace", "--locked"]))?;
    // Every public item's docs build, links resolve.
    project::run(
        cargo_cmd(&["doc", "--no-deps", "--workspace", "--locked"])
            .env("RUSTDOCFLAGS", "-D warnings"),
    )?;
    // The real Python stack decodes what our codecs write.
    crate::vectors::check_rust()?;
    // The real Temporal CLI, dev server, Web UI and Python SDK.
    crate::conformance::run(crate::conformance::Stages::All)?;
    // Last (it builds the release binary): hostile clients, with bounds on
    // memory and time.
    crate::soak::run(&[])?;
    eprintln!("xtask ci: all checks passed");
    Ok(())
}
