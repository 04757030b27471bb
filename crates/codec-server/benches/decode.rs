//! In-process decode throughput: the whole `/decode` pipeline (JSON parse,
//! base64, AES-256-GCM, protobuf, JSON write) through the server's one
//! service, [`codec_server::CodecService`], without a network. `cargo xtask
//! bench` compares the server over TCP against this.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::http::Request;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tower::ServiceExt;

const SIZES: [(&str, usize); 2] = [("small", 16), ("2mib", 2 * 1024 * 1024)];

fn keyring(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("keyring.toml");
    std::fs::write(
        &path,
        "active = \"test-key-id\"\n[[keys]]\nid = \"test-key-id\"\nbase64 = \"dGVzdC1rZXktdGVzdC1rZXktdGVzdC1rZXktdGVzdCE=\"\n",
    )
    .unwrap();
    path
}

fn request(path: &str, body: Vec<u8>) -> Request<Body> {
    Request::post(path)
        .header("content-type", "application/json")
        .header("x-namespace", "default")
        .body(Body::from(body))
        .unwrap()
}

fn decode(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = codec_server::Config::development(keyring(dir.path()));
    let state = codec_server::build_state(&config).unwrap();
    let service = codec_server::CodecService::new(state);

    let mut group = c.benchmark_group("decode");
    group
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1));
    for (name, size) in SIZES {
        // Encode once through the router: the body is what a client sends.
        let data: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
        let plain = serde_json::json!({"payloads": [{
            "metadata": {"encoding": "YmluYXJ5L3BsYWlu"},
            "data": base64_standard(&data),
        }]});
        let encoded = runtime.block_on(async {
            let response = service
                .clone()
                .oneshot(request("/encode", serde_json::to_vec(&plain).unwrap()))
                .await
                .unwrap();
            to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap()
                .to_vec()
        });
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(name, |b| {
            b.to_async(&runtime).iter(|| {
                let service = service.clone();
                let body = encoded.clone();
                async move {
                    let response = service.oneshot(request("/decode", body)).await.unwrap();
                    assert_eq!(response.status(), 200);
                    black_box(to_bytes(response.into_body(), usize::MAX).await.unwrap())
                }
            });
        });
    }
    group.finish();
}

fn base64_standard(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}

criterion_group!(benches, decode);
criterion_main!(benches);
