//! Helpers: running the binary, keyrings, the committed histories, and
//! servers on `127.0.0.1:0` (our Codec Server, and an echo server without
//! CORS).

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// The official Python sample's key and id, which encrypted the histories.
pub(crate) use test_support::{SAMPLE_KEY, SAMPLE_KEY_ID};

/// The committed histories, by name.
pub(crate) const HISTORIES: [&str; 3] = ["order-success", "charge-failure", "approval-signals"];

/// What a run of the binary produced.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    /// Asserts the exit code, showing stderr when it differs.
    #[track_caller]
    pub(crate) fn expect_code(self, code: i32) -> Self {
        assert_eq!(
            self.code, code,
            "exit code {} (wanted {code})\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

/// Runs `payloadctl args...` with `stdin`, in a clean environment.
pub(crate) fn run_with_stdin(args: &[&str], stdin: &[u8]) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_payloadctl"))
        .args(args)
        .env_remove("PAYLOADCTL_KEYRING")
        .env_remove("PAYLOADCTL_AUTH")
        .env_remove("PAYLOADCTL_KMS")
        .env_remove("PAYLOADCTL_KEK")
        .env_remove("BAO_ADDR")
        .env_remove("VAULT_ADDR")
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the payloadctl binary runs");
    let mut pipe = child.stdin.take().expect("stdin is piped");
    let input = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        // The command may not read stdin at all.
        let _ = pipe.write_all(&input);
    });
    let out = child.wait_with_output().expect("payloadctl finishes");
    writer.join().expect("stdin writer");
    Run {
        code: out.status.code().expect("payloadctl exits, not killed"),
        stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
    }
}

/// Runs `payloadctl args...` with empty stdin.
pub(crate) fn run(args: &[&str]) -> Run {
    run_with_stdin(args, b"")
}

/// Writes a keyring with `keys` (id, 32 bytes), the first active.
pub(crate) fn write_keyring(dir: &Path, name: &str, keys: &[(&str, &[u8])]) -> PathBuf {
    let b64 = |k: &[u8]| base64::engine::general_purpose::STANDARD.encode(k);
    let mut text = format!("active = \"{}\"\n", keys[0].0);
    for (id, key) in keys {
        text.push_str(&format!(
            "\n[[keys]]\nid = \"{id}\"\nbase64 = \"{}\"\n",
            b64(key)
        ));
    }
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// A keyring with a fresh active key and the sample key, as after a
/// rotation away from the sample key.
pub(crate) fn sample_keyring(dir: &Path) -> PathBuf {
    write_keyring(
        dir,
        "keyring.toml",
        &[("key-2026-11", &[7u8; 32]), (SAMPLE_KEY_ID, SAMPLE_KEY)],
    )
}

pub(crate) fn str_path(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

/// A committed history file.
pub(crate) fn history(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/histories")
        .join(format!("{name}.json"))
}

/// The values and failure messages a history's workflow saw.
pub(crate) fn expected(name: &str) -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/histories")
        .join(format!("{name}.expected.json"));
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// A server on its own runtime; stops when dropped.
pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    _stop: oneshot::Sender<()>,
    _runtime: tokio::runtime::Runtime,
}

impl Server {
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Our Codec Server, development defaults, with `keyring`.
pub(crate) fn codec_server(keyring: &Path) -> Server {
    let runtime = runtime();
    let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = codec_server::Config::development(keyring.to_path_buf());
    config.base_dir = keyring.parent().unwrap().to_path_buf();
    let (stop, stopped) = oneshot::channel::<()>();
    runtime.spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        if let Err(err) = codec_server::serve_on(listener, config, shutdown).await {
            panic!("codec server failed: {err}");
        }
    });
    Server {
        addr,
        _stop: stop,
        _runtime: runtime,
    }
}

/// A server answering `/encode` and `/decode` with the body it was sent,
/// with no CORS at all (like the Go sample's handler).
pub(crate) fn echo_server() -> Server {
    use axum::routing::post;
    let runtime = runtime();
    let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    let echo =
        |body: axum::body::Bytes| async move { ([("content-type", "application/json")], body) };
    let app = axum::Router::new()
        .route("/encode", post(echo))
        .route("/decode", post(echo));
    let (stop, stopped) = oneshot::channel::<()>();
    runtime.spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    Server {
        addr,
        _stop: stop,
        _runtime: runtime,
    }
}

/// Every JSON value of the `json/plain` payloads in `doc` (proto3 JSON
/// payload objects), decoded here independently of payloadctl; and every
/// encoding seen.
pub(crate) fn plain_values(doc: &serde_json::Value) -> (Vec<serde_json::Value>, Vec<String>) {
    fn walk(
        node: &serde_json::Value,
        values: &mut Vec<serde_json::Value>,
        encodings: &mut Vec<String>,
    ) {
        match node {
            serde_json::Value::Object(map) => {
                if let Some(encoding) = map
                    .get("metadata")
                    .and_then(|m| m.get("encoding"))
                    .and_then(|e| e.as_str())
                {
                    let b64 = base64::engine::general_purpose::STANDARD;
                    let encoding = String::from_utf8(b64.decode(encoding).unwrap()).unwrap();
                    if encoding == "json/plain" {
                        let data = b64
                            .decode(map.get("data").and_then(|d| d.as_str()).unwrap_or(""))
                            .unwrap();
                        values.push(serde_json::from_slice(&data).unwrap());
                    }
                    encodings.push(encoding);
                    return;
                }
                map.values().for_each(|v| walk(v, values, encodings));
            }
            serde_json::Value::Array(items) => {
                items.iter().for_each(|v| walk(v, values, encodings))
            }
            _ => {}
        }
    }
    let (mut values, mut encodings) = (Vec::new(), Vec::new());
    walk(doc, &mut values, &mut encodings);
    (values, encodings)
}

/// Every string under a `message` key in `doc`.
pub(crate) fn messages(doc: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(node: &serde_json::Value, out: &mut Vec<String>) {
        match node {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("message", serde_json::Value::String(s)) => out.push(s.clone()),
                        _ => walk(v, out),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    walk(doc, &mut out);
    out
}
