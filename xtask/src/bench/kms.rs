//! The envelope encryption case of `cargo xtask bench` (`BENCH_ONLY=kms`
//! runs it alone): small `/decode` through envelope encryption with a warm
//! data key cache against the keyring codec, the two servers measured in
//! turns in one run; and what a cold cache costs, counted on `/metrics`.
//!
//! The KEK is a key of a local keyring file (`keyring://`): with a warm
//! cache no KEK is called, so the KMS behind it does not change the rate;
//! `cargo xtask conformance kms` counts the calls against OpenBao.

use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, bail};
use bytes::Bytes;

use super::load::{self, Load};
use super::{Server, encrypted_body, free_port, start_codec_server};

/// Writes a codec-server config whose default namespace encrypts under a
/// keyring KEK, with data keys renewed after `renew_after_secs`.
fn envelope_config(
    dir: &Path,
    port: u16,
    renew_after_secs: u64,
) -> anyhow::Result<std::path::PathBuf> {
    std::fs::write(
        dir.join("kek-keyring.toml"),
        "active = \"bench-kek\"\n[[keys]]\nid = \"bench-kek\"\n\
         base64 = \"YmVuY2gta2VrLWJlbmNoLWtlay1iZW5jaC1rZWstYmU=\"\n",
    )?;
    let path = dir.join(format!("envelope-{port}.toml"));
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\nmax_body_bytes = 67108864\n\n\
             [kms]\nkek = \"keyring://bench-kek\"\nkeyring = \"kek-keyring.toml\"\n\
             data_key_ttl_secs = {}\nrenew_before_secs = 1\n\n\
             [default]\nchain = [\"encrypt\"]\n",
            renew_after_secs + 1
        ),
    )?;
    Ok(path)
}

fn start_envelope(
    root: &Path,
    name: &'static str,
    renew_after_secs: u64,
) -> anyhow::Result<Server> {
    let dir = root.join("target/bench");
    let port = free_port()?;
    let config = envelope_config(&dir, port, renew_after_secs)?;
    Server::start(
        name,
        Command::new(root.join("target/release/codec-server"))
            .arg("--config")
            .arg(&config),
        port,
        &dir.join(format!("{}.log", name.replace(' ', "-"))),
    )
}

/// `GET /metrics`, the value of the sample named `series`.
fn metric(server: &Server, series: &str) -> anyhow::Result<u64> {
    let mut stream = std::net::TcpStream::connect(server.addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .with_context(|| format!("{} has no `{series}` on /metrics", server.name))
}

/// The case: returns its part of the report.
pub(crate) async fn measure(root: &Path, keyring: &Path) -> anyhow::Result<String> {
    let plain = start_codec_server(
        "keyring codec",
        &root.join("target/release/codec-server"),
        root,
        keyring,
    )?;
    let envelope = start_envelope(root, "envelope codec", 3600)?;
    let bodies = [
        encrypted_body(&plain, 1, 16).await?,
        encrypted_body(&envelope, 1, 16).await?,
    ];
    if !String::from_utf8_lossy(&bodies[1]).contains("\"encryption-dek\"") {
        bail!("the envelope server did not write an encryption-dek");
    }
    let mut ratios = Vec::new();
    let mut rates = [Vec::new(), Vec::new()];
    for round in 1..=5 {
        let mut rps = [0.0; 2];
        for (i, (server, body)) in [(&plain, &bodies[0]), (&envelope, &bodies[1])]
            .into_iter()
            .enumerate()
        {
            let stats = Load {
                addr: server.addr,
                path: "/decode",
                body: body.clone(),
                connections: 32,
                duration: Duration::from_secs(3),
            }
            .run()
            .await?;
            if stats.errors > 0 {
                bail!("{}: {} failed requests", server.name, stats.errors);
            }
            rps[i] = stats.rps();
            rates[i].push(rps[i]);
        }
        eprintln!(
            "kms round {round}: keyring {:.0}/s, envelope {:.0}/s ({:.1}%)",
            rps[0],
            rps[1],
            rps[1] / rps[0] * 100.0
        );
        ratios.push(rps[1] / rps[0]);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let ratio = median(&mut ratios);
    let warm_unwraps = metric(&envelope, "codec_server_kms_calls_total{op=\"unwrap\"}")?;
    drop((plain, envelope));

    // Cold cache: a writer renews its data key every second; 4 batches of
    // 50 payloads a second apart are under 4 data keys. A fresh server
    // decodes them all, three times.
    let writer = start_envelope(root, "envelope writer", 1)?;
    let mut batches = Vec::new();
    for _ in 0..4 {
        batches.push(encrypted_body(&writer, 50, 64).await?);
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    let wraps = metric(&writer, "codec_server_kms_calls_total{op=\"wrap\"}")?;
    drop(writer);
    let reader = start_envelope(root, "envelope reader", 3600)?;
    for _ in 0..3 {
        for body in &batches {
            let (status, answer) = load::once(reader.addr, "/decode", Bytes::clone(body)).await?;
            if status != 200 {
                bail!(
                    "the cold reader failed: {status} {}",
                    String::from_utf8_lossy(&answer)
                );
            }
        }
    }
    let unwraps = metric(&reader, "codec_server_kms_calls_total{op=\"unwrap\"}")?;
    let misses = metric(
        &reader,
        "codec_server_kms_cache_lookups_total{result=\"miss\"}",
    )?;
    let hits = metric(
        &reader,
        "codec_server_kms_cache_lookups_total{result=\"hit\"}",
    )?;

    let mut out = String::new();
    writeln!(out, "\n## Envelope encryption (KMS data keys)\n")?;
    writeln!(
        out,
        "| case | keyring codec | envelope codec | ratio |\n| --- | --- | --- | --- |"
    )?;
    writeln!(
        out,
        "| 1 small payload /decode, warm data key cache (median of 5 × 3 s, 32 connections) | {:.0} req/s | {:.0} req/s | **{:.2}** (target ≥ 0.90) |",
        median(&mut rates[0]),
        median(&mut rates[1]),
        ratio
    )?;
    writeln!(
        out,
        "\nKEK calls while timing: {warm_unwraps} unwraps. Cold cache: 200 payloads in 4 \
         batches written under {wraps} data keys, decoded 3 times by a fresh server: \
         **{unwraps} unwrap calls** ({misses} cache misses, {hits} hits)."
    )?;
    Ok(out)
}
