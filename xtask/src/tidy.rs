//! Tidy: tests over the whole source tree for the rules in STYLE.md and the
//! invariants of docs/architecture.md that no compiler checks. Run with
//! `cargo test -p xtask` (part of `cargo xtask ci`). Manifests, the lock
//! file and `cargo metadata` are read with real TOML and JSON parsers.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use crate::project;

/// Every file below `dir` (recursively) with one of `extensions`, skipping
/// build output and generated code.
fn files(dir: &Path, extensions: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                if !matches!(
                    name.as_str(),
                    "target" | "generated" | ".git" | "node_modules" | "testdata"
                ) {
                    stack.push(path);
                }
            } else if extensions.iter().any(|e| name.ends_with(e)) {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn rust_sources() -> Vec<PathBuf> {
    let root = project::root();
    let mut out = files(&root.join("crates"), &[".rs"]);
    out.extend(files(&root.join("xtask"), &[".rs"]));
    out
}

fn rel(path: &Path) -> String {
    path.strip_prefix(project::root())
        .unwrap_or(path)
        .display()
        .to_string()
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// A TOML file, parsed.
fn toml_file(path: &Path) -> toml::Table {
    read(path)
        .parse()
        .unwrap_or_else(|e| panic!("{} is not valid TOML: {e}", path.display()))
}

/// The workspace members (their folders), from the root manifest.
fn members() -> Vec<String> {
    let manifest = toml_file(&project::root().join("Cargo.toml"));
    manifest["workspace"]["members"]
        .as_array()
        .expect("the root Cargo.toml lists workspace.members")
        .iter()
        .filter_map(|m| m.as_str().map(str::to_owned))
        .collect()
}

/// A member's crate name: its folder's name (STYLE.md).
fn crate_name(member: &str) -> String {
    member.rsplit('/').next().unwrap_or(member).to_owned()
}

/// Library sources: everything under a member's `src/` except binaries.
fn is_library_source(path: &Path) -> bool {
    let text = path.to_string_lossy();
    let in_src = text.contains("/src/");
    let binary = text.ends_with("/main.rs")
        || text.contains("/src/bin/")
        || text.contains("/payloadctl/")
        || text.contains("/xtask/");
    in_src && !binary
}

#[test]
fn every_source_file_opens_with_module_docs() {
    let missing: Vec<String> = rust_sources()
        .into_iter()
        .filter(|p| !read(p).trim_start().starts_with("//!"))
        .map(|p| rel(&p))
        .collect();
    assert!(
        missing.is_empty(),
        "these files need a `//!` doc comment first: {missing:#?}"
    );
}

#[test]
fn todo_and_fixme_name_an_issue() {
    let mut bad = Vec::new();
    for path in rust_sources() {
        for (n, line) in read(&path).lines().enumerate() {
            for marker in ["TODO", "FIXME"] {
                if let Some(at) = line.find(marker) {
                    let rest = &line[at + marker.len()..];
                    // Only the marker followed by a colon or a parenthesis, not the bare word.
                    if (rest.starts_with(':') || rest.starts_with('(')) && !rest.starts_with("(#") {
                        bad.push(format!("{}:{}", rel(&path), n + 1));
                    }
                }
            }
        }
    }
    assert!(
        bad.is_empty(),
        "write TODO(#N)/FIXME(#N) with an issue number: {bad:#?}"
    );
}

#[test]
fn no_debug_leftovers_or_printing_in_libraries() {
    let mut bad = Vec::new();
    let dbg = ["dbg", "!("].concat();
    let prints = [
        ["print", "ln!("].concat(),
        ["eprint", "ln!("].concat(),
        ["anyhow", "::"].concat(),
    ];
    for path in rust_sources() {
        let text = read(&path);
        if text.contains(&dbg) {
            bad.push(format!("{}: dbg macro", rel(&path)));
        }
        if is_library_source(&path) {
            for p in &prints {
                if text.contains(p.as_str()) {
                    bad.push(format!("{}: `{p}` in a library", rel(&path)));
                }
            }
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

/// Every dependency table of a manifest (plain and per target), by name.
fn dependency_tables(manifest: &toml::Table) -> Vec<(String, &toml::Table)> {
    let kinds = ["dependencies", "dev-dependencies", "build-dependencies"];
    let mut out: Vec<(String, &toml::Table)> = kinds
        .iter()
        .filter_map(|k| Some(((*k).to_owned(), manifest.get(*k)?.as_table()?)))
        .collect();
    if let Some(targets) = manifest.get("target").and_then(toml::Value::as_table) {
        for (target, table) in targets {
            for kind in kinds {
                if let Some(deps) = table.get(kind).and_then(toml::Value::as_table) {
                    out.push((format!("target.{target}.{kind}"), deps));
                }
            }
        }
    }
    out
}

#[test]
fn member_manifests_use_workspace_versions_and_lints() {
    let mut bad = Vec::new();
    for member in members() {
        let manifest = toml_file(&project::root().join(&member).join("Cargo.toml"));
        let lints = manifest
            .get("lints")
            .and_then(|l| l.get("workspace"))
            .and_then(toml::Value::as_bool);
        if lints != Some(true) {
            bad.push(format!("{member}: missing `[lints] workspace = true`"));
        }
        for (section, deps) in dependency_tables(&manifest) {
            for (name, spec) in deps {
                let inherited = spec.get("workspace").and_then(toml::Value::as_bool) == Some(true);
                if !inherited {
                    bad.push(format!(
                        "{member}: `{name}` in [{section}]: use `{name}.workspace = true`"
                    ));
                }
            }
        }
        // Packages with a binary may use anyhow in `main.rs`; their library
        // sources are held to the no-anyhow rule by the source check above.
        let has_binary = project::root().join(&member).join("src/main.rs").exists();
        let uses_anyhow = manifest
            .get("dependencies")
            .and_then(|d| d.get("anyhow"))
            .is_some();
        if !has_binary && uses_anyhow {
            bad.push(format!("{member}: libraries use typed errors, not anyhow"));
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

#[test]
fn architecture_doc_maps_every_crate() {
    let doc = read(&project::root().join("docs/architecture.md"));
    let missing: Vec<String> = members()
        .into_iter()
        .filter_map(|m| {
            let name = crate_name(&m);
            (!doc.contains(&format!("### `{name}`"))).then_some(name)
        })
        .collect();
    assert!(
        missing.is_empty(),
        "docs/architecture.md needs a `### `name`` section for: {missing:?}"
    );
}

#[test]
fn relative_links_in_docs_resolve() {
    let root = project::root();
    let mut docs = files(&root.join("docs"), &[".md"]);
    docs.push(root.join("README.md"));
    docs.extend(files(&root.join("crates"), &["README.md"]));
    docs.extend(files(&root.join("proto"), &[".md"]));
    let mut broken = Vec::new();
    for doc in docs.into_iter().filter(|d| d.exists()) {
        let text = read(&doc);
        for target in markdown_links(&text) {
            if target.contains("://") || target.starts_with('#') || target.starts_with("mailto:") {
                continue;
            }
            let path = target.split('#').next().unwrap_or_default();
            let base = doc.parent().unwrap_or(&root);
            if !path.is_empty() && !base.join(path).exists() {
                broken.push(format!("{} -> {target}", rel(&doc)));
            }
        }
    }
    assert!(broken.is_empty(), "broken relative links: {broken:#?}");
}

/// Targets of inline markdown links `[text](target)`, outside code blocks.
fn markdown_links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_code = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            out.push(after[..end].trim().to_owned());
            rest = &after[end..];
        }
    }
    out
}

#[test]
fn markdown_link_finder_sees_links_and_skips_code() {
    let links = markdown_links("see [a](x.md) and [b](y.md#z)\n```\n[c](nope.md)\n```\n");
    assert_eq!(links, ["x.md", "y.md#z"]);
}

/// Each package's dependencies (normal, build and dev, any feature) as
/// `Cargo.lock` records them, by name.
fn lockfile_graph() -> BTreeMap<String, Vec<String>> {
    let lock = toml_file(&project::root().join("Cargo.lock"));
    let mut graph = BTreeMap::<String, Vec<String>>::new();
    for package in lock["package"]
        .as_array()
        .expect("Cargo.lock lists packages")
    {
        let Some(name) = package.get("name").and_then(toml::Value::as_str) else {
            continue;
        };
        let deps = package
            .get("dependencies")
            .and_then(toml::Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(toml::Value::as_str)
            // "name" or "name version" when several versions are locked.
            .filter_map(|dep| dep.split(' ').next())
            .map(str::to_owned);
        graph.entry(name.to_owned()).or_default().extend(deps);
    }
    graph
}

/// The official Temporal SDK (gRPC, its protos, the core) is a dependency
/// of `temporal-sdk-codec` only: the Codec Server, payloadctl and the
/// libraries never build it, and nothing depends on the adapter.
#[test]
fn sdk_stays_out_of_the_other_crates() {
    let graph = lockfile_graph();
    assert!(
        graph.contains_key("temporalio-sdk"),
        "Cargo.lock lists the SDK"
    );
    let heavy = |name: &str| {
        name.starts_with("temporalio") || name.starts_with("tonic") || name == "temporal-sdk-codec"
    };
    let mut bad = Vec::new();
    for member in members() {
        let name = crate_name(&member);
        if name == "temporal-sdk-codec" {
            continue;
        }
        let mut seen = std::collections::BTreeSet::new();
        let mut stack = vec![name.clone()];
        while let Some(next) = stack.pop() {
            for dep in graph.get(&next).into_iter().flatten() {
                if seen.insert(dep.clone()) {
                    stack.push(dep.clone());
                }
            }
        }
        bad.extend(
            seen.iter()
                .filter(|d| heavy(d))
                .map(|d| format!("{name} depends on {d}")),
        );
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

/// Our crates' dependencies on each other (normal and build, not dev), as
/// `cargo metadata` reports them.
fn crate_graph() -> BTreeMap<String, BTreeSet<String>> {
    let output = crate::project::cargo()
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(project::root())
        .output()
        .expect("running cargo metadata");
    assert!(output.status.success(), "cargo metadata failed");
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON");
    let packages = metadata["packages"].as_array().expect("packages");
    let ours: BTreeSet<String> = packages
        .iter()
        .filter_map(|p| p["name"].as_str().map(str::to_owned))
        .collect();
    packages
        .iter()
        .filter_map(|package| {
            let name = package["name"].as_str()?.to_owned();
            let deps = package["dependencies"]
                .as_array()?
                .iter()
                .filter(|d| d["kind"].is_null() || d["kind"] == "build")
                .filter_map(|d| d["name"].as_str())
                .filter(|d| ours.contains(*d))
                .map(str::to_owned)
                .collect();
            Some((name, deps))
        })
        .collect()
}

/// The table of docs/architecture.md under `## Crate dependencies`:
/// crate → the crates it depends on.
fn documented_graph() -> BTreeMap<String, BTreeSet<String>> {
    let doc = read(&project::root().join("docs/architecture.md"));
    let section = doc
        .split("## Crate dependencies")
        .nth(1)
        .expect("docs/architecture.md has a `## Crate dependencies` section");
    let ticked = |cell: &str| -> Vec<String> {
        cell.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect()
    };
    section
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').collect();
            let name = ticked(cells.get(1)?).into_iter().next()?;
            Some((name, ticked(cells.get(2)?).into_iter().collect()))
        })
        .collect()
}

/// The crate graph is what docs/architecture.md says it is, so every
/// dependency between our crates (and so its direction) is a documented
/// decision.
#[test]
fn crate_dependencies_match_the_architecture_doc() {
    let actual = crate_graph();
    let documented = documented_graph();
    assert!(actual.contains_key("codec-server") && actual.contains_key("payloadctl"));
    assert_eq!(
        actual, documented,
        "cargo metadata (left) and the `## Crate dependencies` table of \
         docs/architecture.md (right) disagree"
    );
}

/// Library sources that are code (not comments, not tests).
fn library_code_lines(path: &Path) -> Vec<(usize, String)> {
    if path.file_name().is_some_and(|n| n == "tests.rs")
        || path.to_string_lossy().contains("/tests/")
    {
        return Vec::new();
    }
    read(path)
        .lines()
        .enumerate()
        .take_while(|(_, line)| line.trim() != "#[cfg(test)]")
        .filter(|(_, line)| !line.trim_start().starts_with("//"))
        .map(|(n, line)| (n + 1, line.to_owned()))
        .collect()
}

/// Libraries never read environment variables: the binaries pass a lookup
/// in (`Keyring::load`, `codec_server::config::Environment`).
#[test]
fn libraries_read_no_environment() {
    let mut bad = Vec::new();
    for path in rust_sources().into_iter().filter(|p| is_library_source(p)) {
        for (n, line) in library_code_lines(&path) {
            if ["env::var(", "env::var_os(", "env::vars("]
                .iter()
                .any(|call| line.contains(call))
            {
                bad.push(format!("{}:{n}: {}", rel(&path), line.trim()));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "libraries must not read the environment: {bad:#?}"
    );
}

/// Source files stay small enough to read: at most this many lines
/// (generated code aside).
const MAX_LINES: usize = 600;

#[test]
fn no_source_file_is_too_long() {
    let long: Vec<String> = rust_sources()
        .into_iter()
        .filter_map(|path| {
            let lines = read(&path).lines().count();
            (lines > MAX_LINES).then(|| format!("{}: {lines} lines", rel(&path)))
        })
        .collect();
    assert!(
        long.is_empty(),
        "split these files by concern (at most {MAX_LINES} lines): {long:#?}"
    );
}
