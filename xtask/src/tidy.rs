//! Tidy: tests over the whole source tree for the rules in STYLE.md that no
//! compiler checks. Run with `cargo test -p xtask` (part of `cargo xtask ci`).

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

/// The workspace members, from the root manifest.
fn members() -> Vec<String> {
    let manifest = read(&project::root().join("Cargo.toml"));
    let start = manifest
        .find("members = [")
        .expect("root Cargo.toml lists members");
    let end = start + manifest[start..].find(']').expect("members list is closed");
    manifest[start..end]
        .split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
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

#[test]
fn member_manifests_use_workspace_versions_and_lints() {
    let mut bad = Vec::new();
    for member in members() {
        let path = project::root().join(&member).join("Cargo.toml");
        let text = read(&path);
        if !text.contains("[lints]\nworkspace = true") {
            bad.push(format!("{member}: missing `[lints] workspace = true`"));
        }
        let mut section = String::new();
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('[') {
                section = line.to_owned();
                continue;
            }
            let is_dep_section = section.contains("dependencies");
            if is_dep_section
                && !line.is_empty()
                && !line.starts_with('#')
                && !line.contains("workspace = true")
            {
                bad.push(format!(
                    "{member}: `{line}` in {section}: use `name.workspace = true`"
                ));
            }
        }
        // Packages with a binary may use anyhow in `main.rs`; their library
        // sources are held to the no-anyhow rule by the source check above.
        let has_binary = project::root().join(&member).join("src/main.rs").exists();
        if !has_binary {
            let deps = text.split("[dev-dependencies]").next().unwrap_or_default();
            if deps.contains("anyhow") {
                bad.push(format!("{member}: libraries use typed errors, not anyhow"));
            }
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
            let name = m.rsplit('/').next().unwrap_or(&m).to_owned();
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
fn lockfile_graph() -> std::collections::BTreeMap<String, Vec<String>> {
    let lock = read(&project::root().join("Cargo.lock"));
    let mut graph = std::collections::BTreeMap::<String, Vec<String>>::new();
    for package in lock.split("[[package]]").skip(1) {
        let Some(name) = package
            .lines()
            .find_map(|l| l.strip_prefix("name = \""))
            .and_then(|l| l.strip_suffix('"'))
        else {
            continue;
        };
        let deps = package
            .split_once("dependencies = [")
            .map(|(_, rest)| rest.split(']').next().unwrap_or_default())
            .unwrap_or_default()
            .split('"')
            .skip(1)
            .step_by(2)
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
        let name = member.rsplit('/').next().unwrap_or(&member).to_owned();
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
