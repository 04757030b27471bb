//! Envelope encryption against real KMSs: OpenBao's transit engine (a
//! non-dev server, raft storage) and moto's KMS server, our Codec Server's
//! `[kms]` section, and the real Python SDK with a codec written from the
//! Temporal Proxy's documented format (`xtask/conformance/kms.py`).
//!
//! Setup: the namespace [`NAMESPACE_B`] (`temporal operator namespace
//! create`), OpenBao initialized and unsealed with the transit keys
//! `payloads`, `payloads-old` and `ns-b`, moto with `alias/ns-b`, and a
//! codec-server whose default KEK is `hashivault://payloads` (decrypting
//! `hashivault://payloads-old` too) and whose [`NAMESPACE_B`] uses
//! `awskms:///alias/ns-b`. Then, by step:
//! a. the Python SDK writes a workflow under `hashivault://payloads`, a new
//!    data key every 3 payloads; the history holds the proxy's format
//!    only; the CLI shows the values through our `/decode`;
//! b. our `/encode` writes the proxy's format, which Python decodes;
//! c. namespace B's workflow (moto) decodes through the CLI; each
//!    namespace's payloads posted as the other's are 422 `unknown_key`;
//! d. a payload under the decrypt-only `hashivault://payloads-old` decodes,
//!    and `/encode` writes under `hashivault://payloads`;
//! e. OpenBao killed: the workflow of (a) still decodes (cached data
//!    keys), a payload under a data key the server never saw is 503
//!    `kms_unavailable`, `/healthz` answers; OpenBao restarted and
//!    unsealed: the same payload decodes;
//! f. a new codec-server (cold cache) decodes the history of (a):
//!    `codec_server_kms_calls_total{op="unwrap"}` is the number of data
//!    keys, not of payloads.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use super::history::{decode_json_data, payloads_with};
use super::http;
use super::kms_servers::{
    AWS_KEK, KmsPy, MotoKms, NAMESPACE_B, OpenBao, VAULT_KEK, VAULT_OLD_KEK, start_kms_codec,
    start_moto_kms,
};
use super::payloads::{data_of, expect_error, meta, payload, payloads_body, single_payload};
use super::process::text;
use super::stack::Stack;
use super::{Report, expect_all};

const VAULT_WORKFLOW: &str = "conf-kms-vault";
const AWS_WORKFLOW: &str = "conf-kms-aws";
/// The names GreetAll greets in (a): 10 payloads (input, 4 activity inputs
/// and results, result), under 4 data keys of 3 payloads.
const NAMES: [&str; 4] = ["Kestrel-4", "Lagos-5", "Nairobi-6", "Oslo-7"];
const PAYLOADS_PER_KEY: &str = "3";
const AWS_NAME: &str = "Tromso-2";
const ENCRYPTED: &str = "binary/encrypted";

/// The envelope payloads of a raw history.
struct Envelope {
    payloads: Vec<Value>,
    /// Distinct `encryption-dek` values.
    data_keys: usize,
}

/// Every check of the stage, in order (later ones use what earlier ones
/// wrote).
pub(super) fn all(s: &Stack, r: &mut Report) {
    let started = Instant::now();
    checks(s, r);
    eprintln!("kms: the stage took {:.1?}", started.elapsed());
}

fn checks(s: &Stack, r: &mut Report) {
    r.check(
        &format!("kms: temporal operator namespace create {NAMESPACE_B}"),
        create_namespace(s),
    );
    let mut bao = match OpenBao::new(s) {
        Ok(bao) => bao,
        Err(err) => return r.check("kms: OpenBao configuration", Err(err)),
    };
    let started = bao.start_new();
    let bao_ok = started.is_ok();
    r.check(
        "kms: OpenBao (non-dev, raft) initialized, unsealed, transit keys",
        started,
    );
    let moto = match start_moto_kms(s) {
        Ok((moto, detail)) => {
            r.check("kms: moto's KMS server with alias/ns-b", Ok(detail));
            moto
        }
        Err(err) => return r.check("kms: moto's KMS server with alias/ns-b", Err(err)),
    };
    if !bao_ok {
        return;
    }
    let codec = start_kms_codec(s, ("kms", "codec-server (kms)"), &bao, &moto);
    let (codec, port) = match codec {
        Ok(started) => started,
        Err(err) => {
            return r.check(
                "kms: codec-server starts with [kms] (OpenBao, moto)",
                Err(err),
            );
        }
    };
    let py = KmsPy::new(s, &bao, &moto);
    let url = format!("http://127.0.0.1:{port}");

    let (detail, vault_history) = split(python_writes(&py, &url));
    r.check(
        "kms: Python (hashivault://payloads) writes the proxy format; CLI show through our server decodes",
        detail,
    );
    let vault_history = vault_history.as_ref();
    r.check(
        "kms: our /encode writes the proxy format; the Python codec decodes it",
        server_encodes(&py, port),
    );
    let (detail, aws_history) = split(namespace_b(&py, &url));
    r.check(
        "kms: namespace B (awskms:///alias/ns-b, moto): Python writes, CLI show through our server decodes",
        detail,
    );
    r.check(
        "kms: namespace A's payloads posted as B (and B's as A) are 422 unknown_key",
        match (vault_history, aws_history.as_ref()) {
            (Some(a), Some(b)) => cross_namespace(port, a, b),
            _ => Err(anyhow::anyhow!(
                "no histories of both namespaces (see above)"
            )),
        },
    );
    r.check(
        "kms: rotation: decrypt-only hashivault://payloads-old decodes; /encode names hashivault://payloads",
        rotation(&py, port),
    );
    let (fresh, file) = split(fresh_payload(&py));
    r.check(
        "kms: OpenBao down: cached data keys decode, a new data key is 503 kms_unavailable, /healthz 200",
        fresh.and_then(|_| outage(s, &mut bao, (&url, port), file_of(file.as_deref())?)),
    );
    r.check(
        "kms: OpenBao restarted and unsealed: the same payload decodes",
        file_of(file.as_deref()).and_then(|file| recovery(&mut bao, port, file)),
    );
    drop(codec);
    r.check(
        "kms: cold cache: a new server decodes N payloads under K data keys with K unwrap calls",
        vault_history
            .context("no history from (a) (see above)")
            .and_then(|history| cold_cache(s, (&bao, &moto), history)),
    );
}

/// A step's detail for the report, and what later steps need of it.
fn split<T>(result: anyhow::Result<(String, T)>) -> (anyhow::Result<String>, Option<T>) {
    match result {
        Ok((detail, kept)) => (Ok(detail), Some(kept)),
        Err(err) => (Err(err), None),
    }
}

fn file_of(file: Option<&Path>) -> anyhow::Result<&Path> {
    file.context("Python wrote no payload under a new data key (see above)")
}

fn create_namespace(s: &Stack) -> anyhow::Result<String> {
    let out = s.temporal(&[
        "operator",
        "namespace",
        "create",
        "--namespace",
        NAMESPACE_B,
    ])?;
    ensure!(out.status.success(), "{}", text(&out));
    Ok(text(&out).trim().to_owned())
}

/// The envelope payloads of `raw` (a `-o json` history): every
/// `binary/encrypted` payload names `kek` and carries a wrapped data key
/// (starting with `prefix`, if given); no value of `hidden` shows.
fn envelope_of(
    raw: &str,
    kek: &str,
    prefix: Option<&[u8]>,
    hidden: &[&str],
) -> anyhow::Result<Envelope> {
    let payloads = payloads_with(raw, "encoding", ENCRYPTED);
    ensure!(
        !payloads.is_empty(),
        "no {ENCRYPTED} payload in the history; it begins: {}",
        raw.chars().take(1500).collect::<String>()
    );
    let mut deks = BTreeSet::new();
    for p in &payloads {
        let id = meta(p, "encryption-key-id")?;
        ensure!(id == kek, "encryption-key-id {id:?}, want {kek:?}: {p}");
        let dek = meta(p, "encryption-dek")?;
        let wrapped = STANDARD
            .decode(&dek)
            .with_context(|| format!("encryption-dek {dek:?} is not standard base64"))?;
        if let Some(prefix) = prefix {
            ensure!(
                wrapped.starts_with(prefix),
                "the wrapped key does not start with {:?}: {:?}",
                String::from_utf8_lossy(prefix),
                String::from_utf8_lossy(&wrapped)
            );
        } else {
            ensure!(
                !wrapped.starts_with(b"vault:"),
                "a transit ciphertext under {kek}"
            );
        }
        ensure!(
            data_of(p)?.len() > 28,
            "data shorter than nonce and tag: {p}"
        );
        deks.insert(dek);
    }
    expect_all(&decode_json_data(raw), &[], hidden)?;
    Ok(Envelope {
        data_keys: deks.len(),
        payloads,
    })
}

/// The CLI's JSON view through our server shows `values` and no
/// `binary/encrypted` payload is left.
fn cli_decodes(
    s: &Stack,
    id: &str,
    url: &str,
    values: &[String],
    extra: &[&str],
) -> anyhow::Result<()> {
    let mut args = vec!["-o", "json"];
    args.extend(extra);
    let shown = s.show(id, Some(url), &args)?;
    let needles: Vec<&str> = values.iter().map(String::as_str).collect();
    expect_all(&decode_json_data(&shown), &needles, &[])?;
    let left = payloads_with(&shown, "encoding", ENCRYPTED).len();
    ensure!(
        left == 0,
        "{left} payloads still {ENCRYPTED} in the decoded view"
    );
    Ok(())
}

fn greetings(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| format!("\"Hello, {n}!\"")).collect()
}

/// (a) `kms.py run` under the vault KEK; the raw history; the CLI through
/// our server.
fn python_writes(py: &KmsPy<'_>, url: &str) -> anyhow::Result<(String, Envelope)> {
    let names = NAMES.join(",");
    let shown = py.py(
        "run",
        "run-vault",
        &[
            "--address",
            &py.s.address,
            "--workflow-id",
            VAULT_WORKFLOW,
            "--kek",
            VAULT_KEK,
            "--names",
            &names,
            "--payloads-per-key",
            PAYLOADS_PER_KEY,
        ],
    )?;
    expect_all(&shown, &["Hello, Oslo-7!"], &[])?;
    let raw = py.s.show(VAULT_WORKFLOW, None, &["-o", "json"])?;
    let history = envelope_of(&raw, VAULT_KEK, Some(b"vault:v1:"), &NAMES)?;
    ensure!(
        shown.contains(&format!("data keys made: {}", history.data_keys)),
        "Python made another number of data keys than the history holds ({}): {shown}",
        history.data_keys
    );
    cli_decodes(py.s, VAULT_WORKFLOW, url, &greetings(&NAMES), &[])?;
    let detail = format!(
        "{} payloads under {} data keys (vault:v1: wrapped), values hidden; the CLI shows {:?}",
        history.payloads.len(),
        history.data_keys,
        greetings(&NAMES)
    );
    Ok((detail, history))
}

/// (b) `/encode` of two values: the proxy format under the vault KEK, one
/// data key; `kms.py decode` prints the values.
fn server_encodes(py: &KmsPy<'_>, port: u16) -> anyhow::Result<String> {
    let body = payloads_body(&[
        payload("json/plain", br#""Quito-8""#),
        payload("json/plain", br#"{"n":42}"#),
    ]);
    let answer = http::post(port, "/encode", &body)?;
    ensure!(
        answer.status == 200,
        "/encode answered {}: {}",
        answer.status,
        answer.excerpt()
    );
    let encoded = answer.json()?;
    let raw = encoded.to_string();
    let envelope = envelope_of(&raw, VAULT_KEK, Some(b"vault:v1:"), &["Quito-8"])?;
    ensure!(
        envelope.payloads.len() == 2 && envelope.data_keys == 1,
        "{} payloads under {} data keys, want 2 under 1",
        envelope.payloads.len(),
        envelope.data_keys
    );
    let file = py.s.artifacts.join("kms-encoded.json");
    fs::write(&file, &answer.body)?;
    let shown = py.py(
        "decode",
        "decode-ours",
        &["--file", &file.to_string_lossy()],
    )?;
    let lines: Vec<&str> = shown.lines().collect();
    ensure!(
        lines.contains(&r#""Quito-8""#) && lines.contains(&r#"{"n": 42}"#),
        "kms.py decode printed {shown}"
    );
    Ok("2 payloads, one vault:v1: data key; Python printed \"Quito-8\" and {\"n\": 42}".to_owned())
}

/// (c) `kms.py run` in namespace B under the AWS KEK (moto); the CLI
/// through our server with `-n`.
fn namespace_b(py: &KmsPy<'_>, url: &str) -> anyhow::Result<(String, Envelope)> {
    py.py(
        "run",
        "run-aws",
        &[
            "--address",
            &py.s.address,
            "--namespace",
            NAMESPACE_B,
            "--workflow-id",
            AWS_WORKFLOW,
            "--kek",
            AWS_KEK,
            "--names",
            AWS_NAME,
        ],
    )?;
    let raw =
        py.s.show(AWS_WORKFLOW, None, &["-o", "json", "-n", NAMESPACE_B])?;
    let history = envelope_of(&raw, AWS_KEK, None, &[AWS_NAME])?;
    cli_decodes(
        py.s,
        AWS_WORKFLOW,
        url,
        &greetings(&[AWS_NAME]),
        &["-n", NAMESPACE_B],
    )?;
    let detail = format!(
        "{} payloads under {AWS_KEK} (CiphertextBlob), the CLI shows \"Hello, {AWS_NAME}!\"",
        history.payloads.len()
    );
    Ok((detail, history))
}

/// (c) Each namespace refuses the other's payloads.
fn cross_namespace(port: u16, a: &Envelope, b: &Envelope) -> anyhow::Result<String> {
    let as_b = http::post_in(port, NAMESPACE_B, "/decode", &payloads_body(&a.payloads))?;
    let first = expect_error(&as_b, 422, "unknown_key", "Hello")?;
    let as_a = http::post_in(port, "default", "/decode", &payloads_body(&b.payloads))?;
    expect_error(&as_a, 422, "unknown_key", "Hello")?;
    Ok(format!("both ways; {first}"))
}

/// (d) Python writes under the retired KEK; our server decodes it and
/// encodes under the active one.
fn rotation(py: &KmsPy<'_>, port: u16) -> anyhow::Result<String> {
    let file = py.s.artifacts.join("kms-old-kek.json");
    let file_arg = file.to_string_lossy();
    py.py(
        "encode",
        "encode-old",
        &[
            "--kek",
            VAULT_OLD_KEK,
            "--value",
            r#""Reykjavik-6""#,
            "--out",
            &file_arg,
        ],
    )?;
    let body = fs::read(&file)?;
    let sent = serde_json::from_slice::<Value>(&body)?.to_string();
    envelope_of(&sent, VAULT_OLD_KEK, Some(b"vault:v1:"), &["Reykjavik-6"])?;
    let decoded = single_payload(&http::post(port, "/decode", &body)?, 200)?;
    ensure!(
        data_of(&decoded)? == br#""Reykjavik-6""#,
        "decoded to {decoded}"
    );
    let fresh = http::post(
        port,
        "/encode",
        &payloads_body(&[payload("json/plain", b"1")]),
    )?;
    let kek = meta(&single_payload(&fresh, 200)?, "encryption-key-id")?;
    ensure!(
        kek == VAULT_KEK,
        "/encode wrote under {kek:?}, want {VAULT_KEK}"
    );
    Ok(format!(
        "{VAULT_OLD_KEK} payload decoded to \"Reykjavik-6\"; /encode names {kek}"
    ))
}

/// (e) A payload Python writes under a new data key before OpenBao stops:
/// the server never saw it. Its file (a `/decode` body).
fn fresh_payload(py: &KmsPy<'_>) -> anyhow::Result<(String, PathBuf)> {
    let file = py.s.artifacts.join("kms-fresh.json");
    py.py(
        "encode",
        "encode-fresh",
        &[
            "--kek",
            VAULT_KEK,
            "--value",
            r#""Nuuk-1""#,
            "--out",
            &file.to_string_lossy(),
        ],
    )?;
    Ok((format!("written to {}", file.display()), file))
}

/// (e) OpenBao killed: the CLI still decodes (a)'s workflow from cached
/// data keys; the fresh payload is 503; `/healthz` answers.
fn outage(
    s: &Stack,
    bao: &mut OpenBao,
    (url, port): (&str, u16),
    fresh: &Path,
) -> anyhow::Result<String> {
    bao.stop();
    cli_decodes(s, VAULT_WORKFLOW, url, &greetings(&NAMES), &[])?;
    let started = Instant::now();
    let answer = http::post(port, "/decode", &fs::read(fresh)?)?;
    let took = started.elapsed();
    let detail = expect_error(&answer, 503, "kms_unavailable", "Nuuk-1")?;
    http::healthy(port)?;
    let failures = metric(port, "codec_server_kms_call_failures_total")?;
    ensure!(failures > 0, "no KMS call failure counted");
    Ok(format!(
        "the CLI decodes {VAULT_WORKFLOW}; {detail} after {took:.1?}; /healthz 200; {failures} failed KMS calls counted"
    ))
}

/// (e) OpenBao started again and unsealed: the fresh payload decodes
/// (within 30 s).
fn recovery(bao: &mut OpenBao, port: u16, fresh: &Path) -> anyhow::Result<String> {
    let took = bao.restart()?;
    let body = fs::read(fresh)?;
    let started = Instant::now();
    loop {
        let answer = http::post(port, "/decode", &body)?;
        if answer.status == 200 {
            let decoded = single_payload(&answer, 200)?;
            ensure!(data_of(&decoded)? == br#""Nuuk-1""#, "decoded to {decoded}");
            return Ok(format!(
                "restart and unseal {took:.1?}; decoded \"Nuuk-1\" {:.1?} later",
                started.elapsed()
            ));
        }
        if started.elapsed() > Duration::from_secs(30) {
            bail!(
                "still {} 30 s after the restart: {}",
                answer.status,
                answer.excerpt()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// (f) A new server decodes (a)'s history through the CLI: one unwrap per
/// data key.
fn cold_cache(
    s: &Stack,
    (bao, moto): (&OpenBao, &MotoKms),
    history: &Envelope,
) -> anyhow::Result<String> {
    let (server, port) =
        start_kms_codec(s, ("kms-cold", "codec-server (kms, cold cache)"), bao, moto)?;
    let url = format!("http://127.0.0.1:{port}");
    cli_decodes(s, VAULT_WORKFLOW, &url, &greetings(&NAMES), &[])?;
    let unwraps = metric(port, "codec_server_kms_calls_total{op=\"unwrap\"}")?;
    let hits = metric(port, "codec_server_kms_cache_lookups_total{result=\"hit\"}")?;
    drop(server);
    let (n, k) = (history.payloads.len(), history.data_keys);
    ensure!(
        k > 1 && n > k,
        "the history has {n} payloads under {k} data keys"
    );
    ensure!(
        unwraps == k as u64,
        "{unwraps} unwrap calls for {n} payloads under {k} data keys"
    );
    Ok(format!(
        "N = {n} payloads, K = {k} data keys: {unwraps} unwrap calls, {hits} cache hits"
    ))
}

/// The value of the `/metrics` sample `name` (with its labels).
fn metric(port: u16, name: &str) -> anyhow::Result<u64> {
    let answer = http::get(port, "/metrics")?;
    sample(&String::from_utf8_lossy(&answer.body), name)
        .with_context(|| format!("no sample {name} in /metrics"))
}

fn sample(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        line.strip_prefix(name)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn sealed(kek: &str, wrapped: &[u8]) -> Value {
        let mut p = payload(ENCRYPTED, &[7; 40]);
        p["metadata"]["encryption-key-id"] = json!(STANDARD.encode(kek));
        p["metadata"]["encryption-dek"] = json!(STANDARD.encode(STANDARD.encode(wrapped)));
        p
    }

    #[test]
    fn envelope_histories_count_their_data_keys() {
        let one = sealed(VAULT_KEK, b"vault:v1:one");
        let two = sealed(VAULT_KEK, b"vault:v1:two");
        let raw = json!({"events": [{"a": {"payloads": [one, two.clone()]}}, {"b": two}]});
        let env = envelope_of(&raw.to_string(), VAULT_KEK, Some(b"vault:v1:"), &[]).unwrap();
        assert_eq!((env.payloads.len(), env.data_keys), (3, 2));
        assert!(envelope_of(&raw.to_string(), VAULT_OLD_KEK, None, &[]).is_err());
        assert!(envelope_of(&raw.to_string(), VAULT_KEK, None, &[]).is_err());
    }

    #[test]
    fn metrics_samples_are_read_by_name_and_labels() {
        let text = "# HELP x\ncodec_server_kms_calls_total{op=\"wrap\"} 2\n\
                    codec_server_kms_calls_total{op=\"unwrap\"} 4\n";
        assert_eq!(
            sample(text, "codec_server_kms_calls_total{op=\"unwrap\"}"),
            Some(4)
        );
        assert_eq!(sample(text, "codec_server_kms_calls_total"), None);
    }
}
