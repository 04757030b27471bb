//! `cargo xtask ci`: the one command CI runs (`.ci/run` and GitHub Actions).
//!
//! Order: cheap checks first, so a formatting slip fails in seconds; the
//! conformance run against the real Temporal tools and the soak of the
//! release binary come last.

use crate::{codegen, project};

pub(crate) fn run() -> anyhow::Result<()> {
    project::ci_build();
    let cargo_cmd = |args: &[&str]| {
        let mut cmd = project::cargo();
        cmd.args(args);
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
    eprintln!(
        "xtask ci: all checks passed; target/ holds {:.1} GiB",
        bytes_under(&project::root().join("target")) as f64 / f64::from(1u32 << 30)
    );
    Ok(())
}

/// Bytes in the files under `dir` (disk use of the build, for CI machines
/// with small disks); unreadable entries count as empty.
fn bytes_under(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() => bytes_under(&entry.path()),
            Ok(kind) if kind.is_file() => entry.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}
