//! HTTPS: a request over TLS, ALPN offering HTTP/2, and certificate reload.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use codec_server::config::TlsConfig;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::util::*;

fn write_cert(dir: &Path) -> CertificateDer<'static> {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    std::fs::write(dir.join("cert.pem"), certified.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), certified.signing_key.serialize_pem()).unwrap();
    certified.cert.der().clone()
}

async fn connect(
    addr: std::net::SocketAddr,
    trust: &CertificateDer<'static>,
    alpn: &[&[u8]],
) -> TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trust.clone()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = TcpStream::connect(addr).await.unwrap();
    TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decode_over_https_with_alpn_and_certificate_reload() {
    let cert_dir = tempfile::tempdir().unwrap();
    let first = write_cert(cert_dir.path());
    let dir = cert_dir.path().to_path_buf();
    let server = spawn_with(move |c, _| {
        c.tls = Some(TlsConfig {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        });
    })
    .await;

    // HTTP/1.1 over TLS: a real decode.
    let stream = connect(server.addr, &first, &[b"http/1.1"]).await;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let request = hyper::Request::post("/decode")
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body_of(&[plain("1")]))))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        &body[..],
        br#"{"payloads":[{"metadata":{"encoding":"anNvbi9wbGFpbg=="},"data":"MQ=="}]}"#
    );

    // Browsers offer h2 first: the server picks it.
    let h2 = connect(server.addr, &first, &[b"h2", b"http/1.1"]).await;
    assert_eq!(h2.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));

    // A renewed certificate is served to new connections without a restart.
    tokio::time::sleep(Duration::from_millis(1100)).await; // a distinct modification time
    let second = write_cert(cert_dir.path());
    let mut served = None;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let mut roots_ok = rustls::RootCertStore::empty();
        roots_ok.add(second.clone()).unwrap();
        let tcp = TcpStream::connect(server.addr).await.unwrap();
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots_ok)
        .with_no_client_auth();
        if let Ok(stream) = TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
        {
            served = stream.get_ref().1.peer_certificates().map(|c| c[0].clone());
            break;
        }
    }
    assert_eq!(
        served,
        Some(second),
        "the renewed certificate was not served within 10 s"
    );
}

#[tokio::test]
async fn a_bad_certificate_is_a_clear_startup_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cert.pem"), "not a certificate").unwrap();
    std::fs::write(dir.path().join("key.pem"), "not a key").unwrap();
    let keyring = write_keyring(dir.path());
    let mut config = codec_server::Config::development(keyring);
    config.tls = Some(TlsConfig {
        cert: dir.path().join("cert.pem"),
        key: dir.path().join("key.pem"),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = codec_server::serve_on(listener, config, async {})
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("cert.pem") && text.contains("no PEM CERTIFICATE"),
        "{text}"
    );
}
