//! External storage on Google Cloud Storage: our Codec Server's `gcs`
//! driver (object_store's GCS client) against the real
//! `gcp-storage-emulator` (PyPI, from the venv), in memory.
//!
//! Starts the emulator on a free loopback port with the bucket
//! `temporal-payloads` and a `codec-server` whose default section encrypts
//! with the samples' keyring and offloads to that bucket from 1 KiB on
//! (with an `http://` endpoint the driver signs nothing). Then `/encode`
//! offloads a ~4 KiB `json/plain` payload (a `gcp.gcsdriver` reference to
//! an object the emulator lists with that size), `/download` answers the
//! original payload, and so does `/decode` without `preserveStorageRefs`.

use std::fs;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, ensure};
use serde_json::Value;

use super::Report;
use super::http;
use super::payloads::{
    BUCKET, Claim, GCS_DRIVER, claim_by, data_of, payload, payloads_body, random_text,
    resolved_data, single_payload,
};
use super::process::{Running, free_port, spawn, wait_for_listener};
use super::stack::Stack;

const MARKER: &str = "payloadkit-gcs-";
/// Above the 1 KiB threshold, well below anything that needs streaming.
const VALUE_LEN: usize = 4 * 1024;

/// Every GCS check, in order.
pub(super) fn all(s: &Stack, r: &mut Report) {
    let started = start(s);
    let (emulator_port, codec_port, running) = match started {
        Ok((detail, ports, running)) => {
            r.check(
                "storage: GCS: gcp-storage-emulator and a codec-server with a gcs [default.storage] start",
                Ok(detail),
            );
            (ports.0, ports.1, running)
        }
        Err(err) => {
            return r.check(
                "storage: GCS: gcp-storage-emulator and a codec-server with a gcs [default.storage] start",
                Err(err),
            );
        }
    };
    let original =
        match random_text(MARKER, VALUE_LEN).and_then(|value| Ok(serde_json::to_string(&value)?)) {
            Ok(text) => payload("json/plain", text.as_bytes()),
            Err(err) => return r.check("storage: GCS: a random value", Err(err)),
        };
    let encoded = encode(emulator_port, codec_port, &original).with_context(|| logs(s));
    let reference = encoded
        .as_ref()
        .ok()
        .map(|(_, reference)| reference.clone());
    r.check(
        "storage: GCS: /encode offloads ~4 KiB to the emulator (driverName gcp.gcsdriver)",
        encoded.map(|(detail, _)| detail),
    );
    let reference = || {
        reference
            .as_ref()
            .context("no reference from /encode (see above)")
    };
    r.check(
        "storage: GCS: /download answers the original payload",
        reference().and_then(|reference| answers(codec_port, "/download", reference, &original)),
    );
    r.check(
        "storage: GCS: /decode (references resolved) answers the original payload",
        reference().and_then(|reference| answers(codec_port, "/decode", reference, &original)),
    );
    drop(running);
}

/// The emulator and the codec-server: what started, their ports (emulator,
/// codec-server), the processes.
fn start(s: &Stack) -> anyhow::Result<(String, (u16, u16), [Running; 2])> {
    let emulator_port = free_port()?;
    let mut emulator = spawn(
        "gcp-storage-emulator",
        Command::new(s.python.with_file_name("gcp-storage-emulator")).args([
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            &emulator_port.to_string(),
            "--default-bucket",
            BUCKET,
            "--in-memory",
        ]),
        &s.artifacts.join("gcp-storage-emulator.log"),
    )?;
    wait_for_listener(emulator_port, &mut emulator, Duration::from_secs(60))?;
    let bucket = http::get(emulator_port, &format!("/storage/v1/b/{BUCKET}"))?;
    ensure!(
        bucket.status == 200,
        "the emulator has no bucket {BUCKET}: {} {}",
        bucket.status,
        bucket.excerpt()
    );
    let (codec, codec_port) = super::storage::start_storage_codec(
        s,
        ("gcs", "codec-server (GCS storage)"),
        &format!(
            "driver = \"gcs\"\nbucket = \"{BUCKET}\"\n\
             endpoint = \"http://127.0.0.1:{emulator_port}\"\nthreshold_bytes = 1024\n"
        ),
    )?;
    let detail = format!(
        "emulator on 127.0.0.1:{emulator_port} with the bucket {BUCKET}, codec-server on {codec_port}"
    );
    Ok((detail, (emulator_port, codec_port), [codec, emulator]))
}

/// `/encode`: one `gcp.gcsdriver` reference to an object the emulator
/// lists under the reference's key with its size.
fn encode(emulator: u16, codec: u16, original: &Value) -> anyhow::Result<(String, Value)> {
    let answer = http::post(
        codec,
        "/encode",
        &payloads_body(std::slice::from_ref(original)),
    )
    .and_then(|answer| single_payload(&answer, 200))?;
    let reference = answer;
    let Claim { key, size } = claim_by(&reference, GCS_DRIVER)?;
    ensure!(
        size > VALUE_LEN as u64,
        "size_bytes {size} for a {VALUE_LEN} byte value"
    );
    let stored = object_size(emulator, &key)?;
    ensure!(
        stored == Some(size),
        "the emulator lists {key} with size {stored:?}, the reference says {size}"
    );
    Ok((
        format!("key {key}, size_bytes {size} = the emulator's object size"),
        reference,
    ))
}

/// `/download` or `/decode` with the reference: the original payload,
/// metadata and data.
fn answers(codec: u16, path: &str, reference: &Value, original: &Value) -> anyhow::Result<String> {
    let data = resolved_data(codec, path, reference)?;
    ensure!(
        data == data_of(original)?,
        "answered {} bytes of data, not the {} sent to /encode",
        data.len(),
        data_of(original)?.len()
    );
    Ok(format!(
        "json/plain, the {} bytes sent to /encode",
        data.len()
    ))
}

/// The size of the object `key` as the emulator's JSON API lists it.
fn object_size(emulator: u16, key: &str) -> anyhow::Result<Option<u64>> {
    let answer = http::get(emulator, &format!("/storage/v1/b/{BUCKET}/o"))?;
    ensure!(
        answer.status == 200,
        "listing the emulator's bucket answered {}: {}",
        answer.status,
        answer.excerpt()
    );
    let listing = answer.json()?;
    let items = listing["items"].as_array().cloned().unwrap_or_default();
    Ok(items.iter().find_map(|item| {
        (item["name"] == key).then(|| item["size"].as_str().and_then(|s| s.parse().ok()))?
    }))
}

/// What the logs say when a call failed: the server's storage cause and
/// the requests the emulator refused.
fn logs(s: &Stack) -> String {
    let server = fs::read_to_string(s.artifacts.join("codec-server-gcs.log")).unwrap_or_default();
    let emulator =
        fs::read_to_string(s.artifacts.join("gcp-storage-emulator.log")).unwrap_or_default();
    let cause = server
        .lines()
        .rfind(|line| line.contains("cause="))
        .unwrap_or("(no storage cause logged)");
    let refused: Vec<&str> = emulator
        .lines()
        .filter(|line| line.contains(" 501") || line.contains("not implemented"))
        .take(4)
        .collect();
    format!("codec-server-gcs.log: {cause}\ngcp-storage-emulator.log: {refused:#?}")
}
