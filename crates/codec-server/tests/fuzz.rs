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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_and_mutated_bodies_get_200_or_a_json_4xx() {
    let server = spawn().await;
    let mut runner = TestRunner::new(RunnerConfig {
        cases: 300,
        ..RunnerConfig::default()
    });
    let strategy = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        prop::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..8)
            .prop_map(|edits| mutate(SEED_BODY.as_bytes(), &edits)),
    ];
    let mut bodies = Vec::new();
    for _ in 0..300 {
        bodies.push(strategy.new_tree(&mut runner).unwrap().current());
    }
    let mut seen_ok = 0;
    for body in bodies {
        for path in ["/decode", "/encode"] {
            let answer = post(&server.url(path), body.clone()).await;
            assert!(
                answer.status == StatusCode::OK || answer.status.is_client_error(),
                "{path} answered {} to {:?}: {}",
                answer.status,
                String::from_utf8_lossy(&body),
                String::from_utf8_lossy(&answer.body)
            );
            if answer.status == StatusCode::OK {
                seen_ok += 1;
            } else {
                assert!(answer.json()["error"].is_string());
            }
        }
    }
    // The server is still healthy, and the mutations did not all fail.
    let health = request(hyper::Method::GET, &server.url("/healthz"), &[], "").await;
    assert_eq!(health.status, StatusCode::OK);
    assert!(
        seen_ok > 0,
        "no mutated body was accepted: the mutations are too destructive to test much"
    );
}
