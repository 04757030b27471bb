//! The server is stateless: two `codec-server` processes started from the
//! same configuration and keyring decode each other's output, so replicas
//! behind a load balancer need no affinity.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hyper::{Method, StatusCode};
use payload_converter::PayloadExt;

use crate::util::*;

/// A `codec-server` process, killed when dropped.
struct Process {
    child: Child,
    addr: SocketAddr,
    log: std::path::PathBuf,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Starts the built binary with `--config config` on a port of the
/// system's choosing (`--listen 127.0.0.1:0`); [`wait_ready`] learns it.
fn start(config: &Path, name: &str) -> Process {
    let log = config.with_file_name(format!("{name}.log"));
    let mut command = Command::new(env!("CARGO_BIN_EXE_codec-server"));
    // The test's own environment must not reconfigure the servers.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("CODEC_SERVER_") {
            command.env_remove(key);
        }
    }
    let child = command
        .arg("--config")
        .arg(config)
        .args(["--listen", "127.0.0.1:0"])
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    Process {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        log,
    }
}

/// The address a server's log says it listens on.
fn listening_address(log: &str) -> Option<SocketAddr> {
    log.lines().find_map(|line| {
        let at = line.find("endpoint=http://")? + "endpoint=http://".len();
        line[at..].split_whitespace().next()?.parse().ok()
    })
}

/// Waits until the log says where the server listens and `/readyz` there
/// answers 200.
async fn wait_ready(process: &mut Process) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = process.child.try_wait().unwrap() {
            panic!("codec-server exited with {status}:\n{}", process.log());
        }
        if let Some(addr) = listening_address(&process.log()) {
            process.addr = addr;
            let answer = request(Method::GET, &process.url("/readyz"), &[], "").await;
            if answer.status == StatusCode::OK {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "codec-server not ready within 30 s:\n{}",
            process.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn two_processes_decode_each_others_payloads() {
    let dir = tempfile::tempdir().unwrap();
    write_keyring(dir.path());
    let config = dir.path().join("codec-server.toml");
    std::fs::write(
        &config,
        "[default]\nkeyring = \"keyring.toml\"\nchain = [\"encrypt\", \"zstd\"]\n",
    )
    .unwrap();
    let mut a = start(&config, "a");
    let mut b = start(&config, "b");
    wait_ready(&mut a).await;
    wait_ready(&mut b).await;

    let mut all_encoded = Vec::new();
    let mut originals = Vec::new();
    for i in 0..20 {
        let (encoder, decoder) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let payload = plain(&format!(
            "{{\"order\":{i},\"note\":\"{}\"}}",
            "x".repeat(i * 50)
        ));
        let encoded = payloads_of(
            &post(
                &encoder.url("/encode"),
                body_of(std::slice::from_ref(&payload)),
            )
            .await,
        );
        assert_eq!(encoded.len(), 1);
        assert_eq!(encoded[0].encoding(), Some("binary/encrypted"));
        assert_eq!(
            encoded[0].metadata_str("encryption-key-id"),
            Some(SAMPLE_KEY_ID)
        );
        let decoded = payloads_of(&post(&decoder.url("/decode"), body_of(&encoded)).await);
        assert_eq!(decoded, std::slice::from_ref(&payload), "payload {i}");
        all_encoded.extend(encoded);
        originals.push(payload);
    }
    // One batch mixing both servers' output decodes on either, in order.
    for server in [&a, &b] {
        let decoded = payloads_of(&post(&server.url("/decode"), body_of(&all_encoded)).await);
        assert_eq!(decoded, originals);
    }
    // No replica depends on another: with A gone, B still decodes A's output.
    drop(a);
    let decoded = payloads_of(&post(&b.url("/decode"), body_of(&all_encoded)).await);
    assert_eq!(decoded, originals);
}

#[test]
fn check_config_says_what_is_wrong_once() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_codec-server"))
        .args(["--check-config", "--config"])
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert_eq!(
        stderr.matches("No such file or directory").count(),
        1,
        "{stderr}"
    );
    assert!(stderr.contains(&missing.display().to_string()), "{stderr}");
}
