//! Fuzz-style: random bytes and mutated valid bodies never crash the server
//! and never get a 5xx; every answer is 200 or a JSON 4xx.

use hyper::StatusCode;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config as RunnerConfig, TestRunner};

use crate::util::*;

const SEED_BODY: &str = r#"{"payloads":[{"metadata":{"encoding":"YmluYXJ5L2VuY3J5cHRlZA==","encryption-key-id":"dGVzdC1rZXktaWQ="},"data":"AQEBAQEBAQEBAQEBQuF0eQ=="},{"metadata":{"encoding":"anNvbi9wbGFpbg=="},"data":"MQ=="}]}"#;

fn mutate(seed: &[u8], edits: &[(usize, u8, u8)]) -> Vec<u8> {
    let mut body = seed.to_vec();
    for &(at, op, byte) in edits {
        if body.is_empty() {
            body.push(byte);
            continue;
        }
        let at = at % body.len();
        match op % 3 {
            0 => body[at] = byte,
            1 => body.insert(at, byte),
            _ => {
                body.remove(at);
            }
        }
    }
    body
}

/// Random bytes, or the seed body with a few bytes changed, inserted or
/// removed.
fn bodies() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        prop::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..8)
            .prop_map(|edits| mutate(SEED_BODY.as_bytes(), &edits)),
    ]
}

/// One server for every case, on a runtime of its own.
fn server() -> &'static (tokio::runtime::Runtime, TestServer) {
    static SERVER: std::sync::OnceLock<(tokio::runtime::Runtime, TestServer)> =
        std::sync::OnceLock::new();
    SERVER.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let server = runtime.block_on(spawn());
        (runtime, server)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Failures are shrunk to the smallest body and saved in
    /// `proptest-regressions/fuzz.txt`, which later runs try first.
    #[test]
    fn random_and_mutated_bodies_get_200_or_a_json_4xx(body in bodies()) {
        let (runtime, server) = server();
        for path in ["/decode", "/encode"] {
            let answer = runtime.block_on(post(&server.url(path), body.clone()));
            prop_assert!(
                answer.status == StatusCode::OK || answer.status.is_client_error(),
                "{path} answered {} to {:?}: {}",
                answer.status,
                String::from_utf8_lossy(&body),
                String::from_utf8_lossy(&answer.body)
            );
            if answer.status != StatusCode::OK {
                prop_assert!(answer.json()["error"].is_string());
            }
        }
        let health = runtime.block_on(request(hyper::Method::GET, &server.url("/healthz"), &[], ""));
        prop_assert_eq!(health.status, StatusCode::OK);
    }
}

/// The mutations are not all destructive: some mutated bodies are still
/// valid, so the fuzz test also exercises the codecs, not only the parser.
#[test]
fn some_mutated_bodies_are_still_valid() {
    let mut runner = TestRunner::new(RunnerConfig::default());
    let strategy = prop::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..8)
        .prop_map(|edits| mutate(SEED_BODY.as_bytes(), &edits));
    let valid = (0..300)
        .map(|_| strategy.new_tree(&mut runner).unwrap().current())
        .filter(|body| {
            serde_json::from_slice::<payload_proto::temporal::api::common::v1::Payloads>(body)
                .is_ok()
        })
        .count();
    assert!(valid > 0, "no mutated body is valid JSON of payloads");
}
