//! `payloadctl probe` against our Codec Server, a server without CORS, and
//! nothing at all.

use crate::util::{codec_server, echo_server, run, sample_keyring, str_path};

#[test]
fn our_server_passes_every_check() {
    let dir = tempfile::tempdir().unwrap();
    let server = codec_server(&sample_keyring(dir.path()));
    let out = run(&["probe", &server.url()]).expect_code(0);
    for check in ["cors-preflight", "encode", "decode", "cors-answer"] {
        assert!(
            out.stdout
                .lines()
                .any(|l| l.starts_with("PASS") && l.contains(check)),
            "{check}: {}",
            out.stdout
        );
    }
    assert!(out.stdout.contains("INFO  latency"), "{}", out.stdout);
    assert!(out.stdout.contains("INFO  healthz"), "{}", out.stdout);
    assert!(!out.stdout.contains("FAIL"), "{}", out.stdout);
    // The other dev UI origin, and JSON output.
    let json = run(&[
        "probe",
        &server.url(),
        "--origin",
        "http://127.0.0.1:8233",
        "--output",
        "json",
    ])
    .expect_code(0)
    .json();
    assert!(
        json.as_array()
            .unwrap()
            .iter()
            .all(|c| c["status"] != "fail"),
        "{json}"
    );
}

#[test]
fn a_foreign_origin_fails_the_cors_checks() {
    let dir = tempfile::tempdir().unwrap();
    let server = codec_server(&sample_keyring(dir.path()));
    let out = run(&["probe", &server.url(), "--origin", "https://ui.example.com"]).expect_code(1);
    assert!(
        out.stdout.contains("FAIL  cors-preflight"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("FAIL  cors-answer"), "{}", out.stdout);
    assert!(out.stdout.contains("PASS  decode"), "{}", out.stdout);
}

#[test]
fn a_server_without_cors_fails_with_the_reason() {
    let server = echo_server();
    let out = run(&["probe", &server.url()]).expect_code(1);
    let preflight = out
        .stdout
        .lines()
        .find(|l| l.contains("cors-preflight"))
        .unwrap();
    assert!(preflight.starts_with("FAIL"), "{}", out.stdout);
    assert!(
        preflight.contains("the Web UI at http://localhost:8233 cannot call this server"),
        "{preflight}"
    );
    // An echo does not encode.
    assert!(
        out.stdout.contains("FAIL  encode") && out.stdout.contains("unchanged"),
        "{}",
        out.stdout
    );
    assert!(out.stderr.contains("checks failed"), "{}", out.stderr);
}

#[test]
fn nothing_listening_fails_and_bad_urls_are_usage_errors() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = run(&[
        "probe",
        &format!("http://127.0.0.1:{port}"),
        "--timeout",
        "5",
    ])
    .expect_code(1);
    assert!(
        out.stdout.contains("is the server running there?"),
        "{}",
        out.stdout
    );
    let out = run(&["probe", "ftp://x"]).expect_code(2);
    assert!(out.stderr.contains("not an http:// URL"), "{}", out.stderr);
}

#[test]
fn auth_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let server = codec_server(&sample_keyring(dir.path()));
    let out = run(&["probe", &server.url(), "--auth", "Bearer anything"]).expect_code(0);
    assert!(out.stdout.contains("INFO  auth"), "{}", out.stdout);
    assert!(out.stdout.contains("does not require"), "{}", out.stdout);
    let _ = str_path;
}
