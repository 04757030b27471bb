//! Helpers: a server on `127.0.0.1:0` with a test keyring, and a small HTTP
//! client.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use codec_server::Config;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub(crate) use test_support::SAMPLE_KEY_ID;

/// The committed Python codec vectors.
pub(crate) fn python_vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../payload-codecs/testdata/python")
}

/// A keyring file with the sample key active and the rotated old key.
pub(crate) fn write_keyring(dir: &Path) -> PathBuf {
    test_support::write_sample_keyring(dir)
}

/// A running server; stops when dropped.
pub(crate) struct TestServer {
    pub(crate) addr: SocketAddr,
    dir: tempfile::TempDir,
    _stop: oneshot::Sender<()>,
}

impl TestServer {
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The keyring file the server was started with.
    pub(crate) fn keyring_path(&self) -> PathBuf {
        self.dir.path().join("keyring.toml")
    }
}

/// The development default with a test keyring; `edit` adjusts it.
pub(crate) async fn spawn_with(edit: impl FnOnce(&mut Config, &Path)) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let keyring = write_keyring(dir.path());
    let mut config = Config::development(keyring);
    config.base_dir = dir.path().to_path_buf();
    edit(&mut config, dir.path());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let plain = config.tls.is_none();
    let server = codec_server::serve_on(listener, config, async {
        let _ = stopped.await;
    });
    tokio::spawn(async move {
        if let Err(err) = server.await {
            panic!("server failed: {err}");
        }
    });
    let server = TestServer {
        addr,
        dir,
        _stop: stop,
    };
    if plain {
        // Serving: its keyrings are loaded, so a test may change them now.
        let health = request(Method::GET, &server.url("/healthz"), &[], Vec::new()).await;
        assert_eq!(health.status, StatusCode::OK);
    }
    server
}

pub(crate) async fn spawn() -> TestServer {
    spawn_with(|_, _| {}).await
}

/// An answer: status, headers, body.
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: hyper::HeaderMap,
    pub(crate) body: Bytes,
}

impl Answer {
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "answer is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

pub(crate) async fn request(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Answer {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let mut builder = Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let response = client
        .request(builder.body(Full::new(body.into())).unwrap())
        .await
        .unwrap();
    answer_of(response).await
}

/// A response, read whole.
pub(crate) async fn answer_of(response: hyper::Response<hyper::body::Incoming>) -> Answer {
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body,
    }
}

/// `POST` a JSON body with the headers the CLI sends.
pub(crate) async fn post(url: &str, body: impl Into<Bytes>) -> Answer {
    request(
        Method::POST,
        url,
        &[
            ("content-type", "application/json"),
            ("x-namespace", "default"),
        ],
        body,
    )
    .await
}

/// The proto3 JSON body for payloads.
pub(crate) fn body_of(payloads: &[payload_proto::temporal::api::common::v1::Payload]) -> Vec<u8> {
    serde_json::to_vec(&payload_proto::temporal::api::common::v1::Payloads {
        payloads: payloads.to_vec(),
    })
    .unwrap()
}

/// The payloads of an answer body.
pub(crate) fn payloads_of(
    answer: &Answer,
) -> Vec<payload_proto::temporal::api::common::v1::Payload> {
    assert_eq!(
        answer.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    serde_json::from_slice::<payload_proto::temporal::api::common::v1::Payloads>(&answer.body)
        .unwrap()
        .payloads
}

/// A `json/plain` payload.
pub(crate) fn plain(text: &str) -> payload_proto::temporal::api::common::v1::Payload {
    use payload_converter::PayloadExt;
    payload_proto::temporal::api::common::v1::Payload::with_encoding(
        "json/plain",
        text.as_bytes().to_vec(),
    )
}
