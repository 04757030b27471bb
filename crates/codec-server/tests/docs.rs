//! The user documentation cannot rot: every curl example in
//! `docs/http-api.md` runs against a real server with the real `curl`, the
//! example configuration loads and builds, and every flag and environment
//! variable of `codec-server --help` is documented.
//!
//! Convention for `docs/http-api.md`: each fenced ```` ```sh ```` block holds
//! examples only. A line starting with `$ ` is a command (a line ending in
//! `\` continues it on the next line, as in the shell); the lines up to the
//! next command or the end of the block are its exact stdout, compared after
//! dropping trailing newlines. `127.0.0.1:8888` stands for the test server's
//! address.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use codec_server::config::{AuthConfig, NamespaceConfig};

use crate::util::*;

/// The address the examples are written for.
const DOC_ADDR: &str = "127.0.0.1:8888";
/// The token whose SHA-256 the `payments` example section holds.
const DOC_TOKEN: &str = "s3cret-token";

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo_file(path)).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// One command of a `sh` block and its expected stdout.
#[derive(Debug, PartialEq)]
struct Example {
    /// 1-based line of the `$ ` line in the document.
    line: usize,
    command: String,
    expected: Vec<String>,
}

/// The examples of every ```` ```sh ```` block; a block that does not start
/// with a `$ ` command is an error, so no example goes silently untested.
fn examples(markdown: &str) -> Result<Vec<Example>, String> {
    let mut out: Vec<Example> = Vec::new();
    let mut lines = markdown.lines().enumerate().peekable();
    let mut in_sh = false;
    let mut in_other = false;
    while let Some((index, line)) = lines.next() {
        let fence = line.trim_start().strip_prefix("```");
        match fence {
            Some(info) if !in_sh && !in_other => {
                if info.trim() == "sh" {
                    in_sh = true;
                    match lines.peek() {
                        Some((_, next)) if next.starts_with("$ ") => {}
                        _ => {
                            return Err(format!(
                                "line {}: a ```sh block must start with a `$ ` command",
                                index + 1
                            ));
                        }
                    }
                } else {
                    in_other = true;
                }
                continue;
            }
            Some(_) => {
                in_sh = false;
                in_other = false;
                continue;
            }
            None => {}
        }
        if !in_sh {
            continue;
        }
        if let Some(command) = line.strip_prefix("$ ") {
            let mut command = command.to_owned();
            while command.ends_with('\\') {
                match lines.next() {
                    Some((_, next)) => {
                        command.push('\n');
                        command.push_str(next);
                    }
                    None => return Err(format!("line {}: unfinished command", index + 1)),
                }
            }
            out.push(Example {
                line: index + 1,
                command,
                expected: Vec::new(),
            });
        } else if let Some(example) = out.last_mut() {
            example.expected.push(line.to_owned());
        }
    }
    if in_sh || in_other {
        return Err("the document ends inside a code block".to_owned());
    }
    Ok(out)
}

/// Runs `command` with `sh -c`; the mismatch, if any, as a report.
fn check(example: &Example, addr: &str) -> Result<(), String> {
    let command = example.command.replace(DOC_ADDR, addr);
    let output = Command::new("sh")
        .arg("-c")
        .arg(&command)
        .output()
        .map_err(|e| format!("cannot run sh: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let actual = stdout.trim_end_matches('\n');
    let expected = example.expected.join("\n").replace(DOC_ADDR, addr);
    let expected = expected.trim_end_matches('\n');
    if actual == expected {
        Ok(())
    } else {
        Err(format!(
            "docs/http-api.md:{}: `{}`\n--- expected\n{expected}\n--- actual ({})\n{actual}\n--- stderr\n{}",
            example.line,
            example.command,
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// Fails clearly when `curl` is missing: the examples must really run.
fn require_curl() {
    match Command::new("curl").arg("--version").output() {
        Ok(out) if out.status.success() => {}
        other => panic!(
            "the docs/http-api.md examples run the real `curl`, which is not usable here ({other:?}); \
             install curl 7.84 or newer (e.g. `apt-get install curl`)"
        ),
    }
}

/// A server as the examples expect it: the development default with the
/// samples' key, plus the bearer-protected `payments` namespace.
async fn doc_server() -> TestServer {
    spawn_with(|config, _| {
        let keyring = config
            .default
            .as_ref()
            .and_then(|d| d.keyring.clone())
            .expect("the development default has a keyring");
        let auth = AuthConfig::Bearer {
            token_sha256: vec![codec_server::auth::hash_token(DOC_TOKEN)],
            read_only_token_sha256: Vec::new(),
        };
        config.namespaces.insert(
            "payments".to_owned(),
            NamespaceConfig::encrypting(keyring, auth),
        );
    })
    .await
}

async fn run_examples(examples: Vec<Example>, addr: String) -> Vec<String> {
    let work = tokio::task::spawn_blocking(move || {
        examples
            .iter()
            .filter_map(|example| check(example, &addr).err())
            .collect::<Vec<_>>()
    });
    tokio::time::timeout(Duration::from_secs(120), work)
        .await
        .expect("the curl examples finish within two minutes")
        .unwrap()
}

#[tokio::test]
async fn every_curl_example_in_the_http_api_doc_gives_the_documented_output() {
    require_curl();
    let doc = read("docs/http-api.md");
    let examples = examples(&doc).unwrap();
    assert!(
        examples.len() >= 6,
        "expected at least 6 examples, found {}",
        examples.len()
    );
    assert!(
        doc.contains(&codec_server::auth::hash_token(DOC_TOKEN)),
        "the doc's payments section must hold the hash of {DOC_TOKEN}"
    );
    let server = doc_server().await;
    let failures = run_examples(examples, server.addr.to_string()).await;
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[tokio::test]
async fn a_wrong_example_is_reported() {
    require_curl();
    let server = doc_server().await;
    let wrong = Example {
        line: 1,
        command: "curl -s http://127.0.0.1:8888/healthz".to_owned(),
        expected: vec![r#"{"status":"fine"}"#.to_owned()],
    };
    let failures = run_examples(vec![wrong], server.addr.to_string()).await;
    assert_eq!(failures.len(), 1);
    assert!(
        failures[0].contains(r#"{"status":"ok"}"#),
        "{}",
        failures[0]
    );
}

#[test]
fn example_blocks_are_parsed_by_the_convention() {
    let doc = "text\n```sh\n$ echo a \\\n  b\na b\n$ true\n```\n```toml\n$ not = 1\n```\n";
    assert_eq!(
        examples(doc).unwrap(),
        [
            Example {
                line: 3,
                command: "echo a \\\n  b".to_owned(),
                expected: vec!["a b".to_owned()],
            },
            Example {
                line: 6,
                command: "true".to_owned(),
                expected: Vec::new(),
            },
        ]
    );
    assert!(examples("```sh\necho no prompt\n```\n").is_err());
    assert!(examples("```sh\n$ echo open\n").is_err());
}

/// `deploy/codec-server.example.toml`, loaded as the server loads it.
fn example_config() -> codec_server::Config {
    let path = repo_file("deploy/codec-server.example.toml");
    let config = codec_server::Config::load(&path).unwrap();
    config.validate().unwrap();
    config
}

/// Builds the state of `config` (token hashes, JWT settings, codec chains)
/// with a real keyring in place of the ones a deployment mounts.
fn build_with_test_keyring(mut config: codec_server::Config) {
    let dir = tempfile::tempdir().unwrap();
    let keyring = write_keyring(dir.path());
    let sections = config
        .default
        .iter_mut()
        .chain(config.namespaces.values_mut());
    for section in sections.filter(|s| s.keyring.is_some()) {
        section.keyring = Some(keyring.clone());
    }
    codec_server::build_state(&config).unwrap();
}

#[test]
fn the_example_config_is_valid_and_builds() {
    build_with_test_keyring(example_config());
}

/// The `config.toml: |` block of the Kubernetes ConfigMap, dedented.
fn kubernetes_config(manifest: &str) -> String {
    let mut lines = manifest
        .lines()
        .skip_while(|l| l.trim() != "config.toml: |");
    lines
        .next()
        .expect("the manifest has a `config.toml: |` block");
    let indent = "    ";
    let mut out = String::new();
    for line in lines.take_while(|l| l.is_empty() || l.starts_with(indent)) {
        out.push_str(line.strip_prefix(indent).unwrap_or(line));
        out.push('\n');
    }
    out
}

#[test]
fn the_kubernetes_config_is_valid_and_builds() {
    let manifest = read("deploy/kubernetes/codec-server.yaml");
    let text = kubernetes_config(&manifest);
    assert!(text.contains("[default]"), "{text}");
    let config =
        codec_server::Config::from_toml(&text, Path::new("/etc/codec-server/config.toml")).unwrap();
    config.validate().unwrap();
    assert_eq!(config.server.listen.to_string(), "0.0.0.0:8888");
    build_with_test_keyring(config);
}

#[test]
fn the_configuration_doc_shows_the_example_file_verbatim() {
    let example = read("deploy/codec-server.example.toml");
    let doc = read("docs/configuration.md");
    assert!(
        doc.contains(&format!("```toml\n{example}```")),
        "docs/configuration.md must embed deploy/codec-server.example.toml unchanged in a ```toml block"
    );
}

#[test]
fn every_flag_and_environment_variable_is_documented() {
    let help = Command::new(env!("CARGO_BIN_EXE_codec-server"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    let doc = read("docs/configuration.md");
    let words: Vec<&str> = help
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .filter(|w| (w.starts_with("--") && w.len() > 2) || w.starts_with("CODEC_SERVER_"))
        .collect();
    assert!(words.contains(&"--check-config") && words.contains(&"CODEC_SERVER_LISTEN"));
    let missing: Vec<&&str> = words
        .iter()
        .filter(|w| !doc.contains(&format!("`{w}")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/configuration.md does not mention {missing:?}"
    );
}
