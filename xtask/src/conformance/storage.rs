//! External storage (claim check): the real Python SDK's S3 driver and our
//! Codec Server's `[default.storage]` against moto's S3 server.
//!
//! Starts `moto_server` (from the venv) on a free loopback port with the
//! bucket `temporal-payloads`, and a third `codec-server` whose default
//! section encrypts with the samples' keyring and offloads to that bucket
//! (credentials `test`/`test` in its environment). Then, by step:
//! a. the Python SDK (`storage.py worker-run`, AES-GCM codec, then
//!    `S3StorageDriver`) offloads a 1 MiB activity result and workflow
//!    result: the history holds references only, pointing at real objects;
//! b. the CLI shows the values through our `/decode`, which resolves them;
//!    the Web UI in Chromium, driven by Selenium (`webui.py`),
//!    shows the result as a reference and its download button saves the
//!    decoded value (through the open server, whose store is this moto);
//! c. `/decode?preserveStorageRefs=true` keeps a reference as it is,
//!    `/download` resolves it and refuses a payload that is not one;
//! d. `/encode` offloads a 600 KiB payload and the Python SDK resolves our
//!    reference (`storage.py resolve`);
//! e. a tampered object and a missing one are refused, with no data;
//! f. with moto down `/download` answers 503 and `/healthz` still answers;
//!    with moto back (bucket and object restored: it keeps nothing)
//!    `/download` answers again;
//! g. the Rust SDK's worker and starter with that bucket
//!    (`rust_storage.rs`, full run only). Our GCS driver against
//!    `gcp-storage-emulator` (`gcs.rs`) is a stage of its own,
//!    `cargo xtask conformance gcs`, not run by default (the emulator
//!    cannot serve object_store's client yet: known-failures.txt).

use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::history::{decode_json_data, payloads_with};
use super::http;
use super::payloads::{
    BUCKET, Claim, REFERENCE_TYPE, claim_of, data_of, expect_error, normalized, payload,
    payloads_body, random_text, resolved_data, single_payload,
};
use super::process::{Running, output_within, spawn, wait_for_listener};
use super::stack::Stack;
use super::{Report, expect_all, rust_storage};

/// The beginning and end of the 1 MiB value of `storage.py worker-run`.
const MARKER: &str = "payloadkit-large-";
const END: &str = "-payloadkit-end";
const WORKFLOW_ID: &str = "conf-storage-large";
const LARGE: u64 = 1024 * 1024;
/// The beginning and length of the value `/encode` offloads.
const ENCODE_MARKER: &str = "payloadkit-encode-";
const ENCODE_LEN: usize = 600 * 1024;

/// The moto server and the commands of `storage.py`.
pub(super) struct Moto<'a> {
    pub(super) s: &'a Stack,
    script: PathBuf,
    port: u16,
    pub(super) endpoint: String,
    running: Option<Running>,
}

impl<'a> Moto<'a> {
    fn new(s: &'a Stack) -> Self {
        let port = s.moto_port;
        Self {
            s,
            script: s.workflows.with_file_name("storage.py"),
            port,
            endpoint: format!("http://127.0.0.1:{port}"),
            running: None,
        }
    }

    /// Starts moto's server (in memory: empty) and creates the bucket.
    fn start(&mut self, log: &str) -> anyhow::Result<String> {
        let mut running = spawn(
            "moto_server",
            Command::new(self.s.python.with_file_name("moto_server")).args([
                "-H",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
            ]),
            &self.s.artifacts.join(log),
        )?;
        wait_for_listener(self.port, &mut running, Duration::from_secs(60))?;
        self.running = Some(running);
        self.py("create-bucket", &[])?;
        Ok(format!("{} with the bucket {BUCKET}", self.endpoint))
    }

    fn stop(&mut self) {
        self.running = None;
    }

    /// `storage.py COMMAND --endpoint … ARGS`: what it printed (stdout and
    /// stderr), or an error when it failed.
    pub(super) fn py(&self, command: &str, args: &[&str]) -> anyhow::Result<String> {
        let mut cmd = Command::new(&self.s.python);
        cmd.arg(&self.script)
            .arg(command)
            .args(["--endpoint", &self.endpoint])
            .args(args);
        let log = self.s.artifacts.join(format!("storage-{command}.log"));
        let (ok, shown) = output_within(&mut cmd, Duration::from_secs(120), &log)?;
        if !ok {
            bail!("storage.py {command} failed: {shown}");
        }
        Ok(shown)
    }

    /// The size of the object at `key`, if there is one.
    pub(super) fn object_size(&self, key: &str) -> anyhow::Result<Option<u64>> {
        let listing = self.py("keys", &[])?;
        Ok(listing.lines().find_map(|line| {
            let (k, size) = line.rsplit_once(' ')?;
            (k == key).then(|| size.parse().ok()).flatten()
        }))
    }

    /// The object `claim` names is there, of the size its reference says.
    pub(super) fn check_stored(&self, claim: &Claim) -> anyhow::Result<()> {
        let stored = self.object_size(&claim.key)?;
        ensure!(
            stored == Some(claim.size),
            "the object {} has size {stored:?}, the reference says {}",
            claim.key,
            claim.size
        );
        Ok(())
    }
}

/// Every check of the stage, in order (later ones use what earlier ones
/// stored).
pub(super) fn all(s: &Stack, r: &mut Report) {
    let mut moto = Moto::new(s);
    r.check("storage: moto's S3 server starts", moto.start("moto.log"));
    if moto.running.is_none() {
        return;
    }
    let python = python_offloads(&moto);
    let python_ref = python.as_ref().ok().map(|(_, reference)| reference.clone());
    r.check(
        "storage: the Python SDK offloads a 1 MiB result; the history holds references only",
        python.map(|(detail, _)| detail),
    );
    let (codec, port) = match start_codec(s, &moto) {
        Ok(started) => started,
        Err(err) => {
            return r.check(
                "storage: codec-server starts with an S3 [default.storage]",
                Err(err),
            );
        }
    };
    let python_ref = python_ref.as_ref();
    let need = || python_ref.context("no reference from the Python SDK (see above)");
    r.check(
        "storage: CLI show with our codec endpoint resolves the references",
        cli_resolves(s, port),
    );
    if s.browser.is_some() {
        r.check(
            "storage: Web UI in Chromium (Selenium) shows a reference; its download button saves the decoded value (server keys from an AWS profile)",
            s.web_ui_download(WORKFLOW_ID, &[MARKER, END]),
        );
    }
    r.check(
        "storage: /decode?preserveStorageRefs=true answers a reference unchanged",
        need().and_then(|reference| preserved(port, reference)),
    );
    r.check(
        "storage: /download resolves the Python SDK's reference (fetch, verify, decrypt)",
        need().and_then(|reference| downloaded(port, reference, MARKER)),
    );
    r.check(
        "storage: /download refuses a payload that is not a reference (400 not_a_reference)",
        not_a_reference(port),
    );
    let ours = encode_offloads(&moto, port);
    let (detail, encoded) = match ours {
        Ok((detail, encoded)) => (Ok(detail), Some(encoded)),
        Err(err) => (Err(err), None),
    };
    r.check(
        "storage: /encode offloads 600 KiB; the Python SDK resolves our reference",
        detail,
    );
    r.check(
        "storage: a tampered object: /download answers 422 stored_payload_corrupt, no data",
        encoded
            .as_ref()
            .context("no reference from /encode (see above)")
            .and_then(|(reference, claim)| tampered(&moto, port, reference, claim)),
    );
    r.check(
        "storage: a missing object: /download answers 422 stored_payload_missing",
        need().and_then(|reference| missing(port, reference)),
    );
    let saved = need().and_then(|reference| save_object(&moto, reference));
    r.check(
        "storage: moto down: /download answers 503 storage_unavailable, /healthz answers",
        need().and_then(|reference| outage(&mut moto, port, reference)),
    );
    r.check(
        "storage: moto back (bucket and object restored): /download answers 200 again",
        saved.and_then(|(key, file)| {
            let reference = need()?;
            recovery(&mut moto, port, reference, &key, &file)
        }),
    );
    drop(codec);
    if moto.running.is_some() {
        rust_storage::all(&moto, r);
    }
    drop(moto);
}

/// The codec-server with the keyring, chain `["encrypt"]` and the S3
/// storage section on moto; its port.
fn start_codec(s: &Stack, moto: &Moto<'_>) -> anyhow::Result<(Running, u16)> {
    let section = format!(
        "driver = \"s3\"\nbucket = \"{BUCKET}\"\nendpoint = \"{}\"\nregion = \"us-east-1\"\n",
        moto.endpoint
    );
    start_storage_codec(s, ("s3", "codec-server (S3 storage)"), &section)
}

/// A codec-server with the keyring, chain `["encrypt"]` and `section` as
/// its default `storage` (test AWS keys in its environment), config and log
/// named after `name` (`what` names the process in errors); its port.
pub(super) fn start_storage_codec(
    s: &Stack,
    (name, what): (&str, &'static str),
    section: &str,
) -> anyhow::Result<(Running, u16)> {
    s.start_codec(
        (&format!("storage-{name}"), what),
        &format!(
            "[default]\nkeyring = \"keyring.toml\"\nchain = [\"encrypt\"]\n\n\
             [default.storage]\n{section}"
        ),
    )
}

/// (a) `storage.py worker-run`; the exported history's references, their
/// objects in moto; returns the workflow result's reference.
fn python_offloads(moto: &Moto<'_>) -> anyhow::Result<(String, Value)> {
    let shown = moto.py(
        "worker-run",
        &["--address", &moto.s.address, "--workflow-id", WORKFLOW_ID],
    )?;
    ensure!(
        shown.lines().any(|line| line.trim() == WORKFLOW_ID),
        "worker-run did not print the workflow id: {shown}"
    );
    let raw = moto.s.show(WORKFLOW_ID, None, &["-o", "json"])?;
    let references = payloads_with(&raw, "messageType", REFERENCE_TYPE);
    ensure!(
        references.len() >= 2,
        "{} reference payloads in the history (want the activity result and the workflow result); it begins: {}",
        references.len(),
        raw.chars().take(1500).collect::<String>()
    );
    let mut keys = Vec::new();
    for reference in &references {
        let claim = claim_of(reference)?;
        ensure!(
            claim.size >= LARGE,
            "size_bytes {} for a 1 MiB value",
            claim.size
        );
        moto.check_stored(&claim)?;
        keys.push(claim.key);
    }
    ensure!(
        raw.len() < 256 * 1024,
        "the history has {} bytes: the 1 MiB value is inline",
        raw.len()
    );
    expect_all(&decode_json_data(&raw), &[], &[MARKER])?;
    let last = references.last().context("no reference")?.clone();
    let detail = format!(
        "{} references (json/protobuf {REFERENCE_TYPE}), history {} bytes, objects {keys:?}",
        references.len(),
        raw.len()
    );
    Ok((detail, last))
}

/// (b) The real CLI through our `/decode`, text and JSON views.
fn cli_resolves(s: &Stack, port: u16) -> anyhow::Result<String> {
    let url = format!("http://127.0.0.1:{port}");
    let text = s.show(WORKFLOW_ID, Some(&url), &[])?;
    expect_all(
        &text,
        &[MARKER, END],
        &["ExternalStorageReference", "claimData"],
    )?;
    let raw = s.show(WORKFLOW_ID, Some(&url), &["-o", "json"])?;
    let left = payloads_with(&raw, "messageType", REFERENCE_TYPE).len();
    ensure!(left == 0, "{left} references left in the JSON view");
    let values = decode_json_data(&raw).matches(MARKER).count();
    ensure!(
        values >= 2,
        "the JSON view shows the 1 MiB value {values} times (want the activity and workflow results)"
    );
    Ok(format!(
        "text view shows the value; JSON view shows it {values} times, no reference"
    ))
}

/// (c) `/decode?preserveStorageRefs=true` answers the reference as it is.
fn preserved(port: u16, reference: &Value) -> anyhow::Result<String> {
    let answer = http::post(
        port,
        "/decode?preserveStorageRefs=true",
        &payloads_body(std::slice::from_ref(reference)),
    )?;
    let got = single_payload(&answer, 200)?;
    ensure!(
        normalized(&got)? == normalized(reference)?,
        "answered {got}, sent {reference}"
    );
    Ok("metadata, data and size_bytes unchanged".to_owned())
}

/// (c) `/download` answers the stored payload, decoded: `json/plain` with
/// the value.
fn downloaded(port: u16, reference: &Value, marker: &str) -> anyhow::Result<String> {
    let data = String::from_utf8_lossy(&resolved_data(port, "/download", reference)?).into_owned();
    expect_all(&data, &[marker], &[])?;
    Ok(format!("json/plain, {} bytes of data", data.len()))
}

/// (c) `/download` with a `json/plain` payload: 400 `not_a_reference`.
fn not_a_reference(port: u16) -> anyhow::Result<String> {
    let plain = payload("json/plain", b"\"just-a-value\"");
    let answer = http::post(port, "/download", &payloads_body(&[plain]))?;
    expect_error(&answer, 400, "not_a_reference", "just-a-value")
}

/// (d) `/encode` with a 600 KiB `json/plain` payload answers one
/// reference to an object in moto, which the Python SDK resolves to the
/// value; returns the reference for (e).
fn encode_offloads(moto: &Moto<'_>, port: u16) -> anyhow::Result<(String, (Value, Claim))> {
    let value = random_text(ENCODE_MARKER, ENCODE_LEN)?;
    let json_text = serde_json::to_string(&value)?;
    let body = payloads_body(&[payload("json/plain", json_text.as_bytes())]);
    let answer = http::post(port, "/encode", &body)?;
    let reference = single_payload(&answer, 200)?;
    let claim = claim_of(&reference)?;
    ensure!(
        claim.size > ENCODE_LEN as u64,
        "size_bytes {} for a {ENCODE_LEN} byte value",
        claim.size
    );
    moto.check_stored(&claim)?;
    let file = moto.s.artifacts.join("storage-encoded-reference.json");
    fs::write(&file, &answer.body)?;
    let shown = moto.py("resolve", &["--file", &file.to_string_lossy()])?;
    ensure!(
        shown.lines().any(|line| line == json_text),
        "storage.py resolve did not print the value; it printed: {}",
        shown.chars().take(500).collect::<String>()
    );
    let detail = format!(
        "key {}, size_bytes {} = the object's size; Python printed the value",
        claim.key, claim.size
    );
    Ok((detail, (reference, claim)))
}

/// (e) One byte of the object flipped: refused, nothing decoded.
fn tampered(
    moto: &Moto<'_>,
    port: u16,
    reference: &Value,
    claim: &Claim,
) -> anyhow::Result<String> {
    moto.py("tamper", &["--key", &claim.key])?;
    let answer = http::post(
        port,
        "/download",
        &payloads_body(std::slice::from_ref(reference)),
    )?;
    expect_error(&answer, 422, "stored_payload_corrupt", ENCODE_MARKER)
}

/// (e) A reference to a key that is not in the bucket.
fn missing(port: u16, reference: &Value) -> anyhow::Result<String> {
    let zeros = "0".repeat(64);
    let mut reference = reference.clone();
    let mut data: Value = serde_json::from_slice(&data_of(&reference)?)?;
    data["claimData"]["key"] = json!(format!("v0/d/sha256/{zeros}"));
    data["claimData"]["hash_value"] = json!(zeros);
    reference["data"] = json!(STANDARD.encode(serde_json::to_vec(&data)?));
    let answer = http::post(port, "/download", &payloads_body(&[reference]))?;
    expect_error(&answer, 422, "stored_payload_missing", MARKER)
}

/// (f) The object's bytes, kept to put back after moto restarts: its key
/// and the file.
fn save_object(moto: &Moto<'_>, reference: &Value) -> anyhow::Result<(String, PathBuf)> {
    let claim = claim_of(reference)?;
    let file = moto.s.artifacts.join("storage-saved-object.bin");
    moto.py(
        "get",
        &["--key", &claim.key, "--out", &file.to_string_lossy()],
    )?;
    Ok((claim.key, file))
}

/// (f) moto stopped: 503 `storage_unavailable`, and `/healthz` answers.
fn outage(moto: &mut Moto<'_>, port: u16, reference: &Value) -> anyhow::Result<String> {
    moto.stop();
    let started = Instant::now();
    let answer = http::post(
        port,
        "/download",
        &payloads_body(std::slice::from_ref(reference)),
    )?;
    let took = started.elapsed();
    let detail = expect_error(&answer, 503, "storage_unavailable", MARKER)?;
    http::healthy(port)?;
    Ok(format!("{detail} after {took:.1?}; /healthz 200"))
}

/// (f) moto started again on the same port, the bucket and object put
/// back: `/download` answers the value again (within 30 s, in case the
/// server waits before trying the store again).
fn recovery(
    moto: &mut Moto<'_>,
    port: u16,
    reference: &Value,
    key: &str,
    file: &std::path::Path,
) -> anyhow::Result<String> {
    moto.start("moto-restarted.log")?;
    moto.py("put", &["--key", key, "--file", &file.to_string_lossy()])?;
    let started = Instant::now();
    loop {
        match downloaded(port, reference, MARKER) {
            Ok(detail) => {
                return Ok(format!(
                    "{detail}, {:.1?} after the restart",
                    started.elapsed()
                ));
            }
            Err(err) if started.elapsed() > Duration::from_secs(30) => return Err(err),
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}
