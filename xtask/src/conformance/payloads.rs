//! Proto JSON payloads for the storage checks: building request bodies,
//! reading answers and error answers, and checking reference payloads
//! (`temporal.api.sdk.v1.ExternalStorageReference`) as the SDKs write them.

use std::fmt::Write as _;

use anyhow::{Context, bail, ensure};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::rand::SecureRandom as _;
use serde_json::{Value, json};

use super::http::Answer;

pub(super) const BUCKET: &str = "temporal-payloads";
const DRIVER: &str = "aws.s3driver";
/// The driver name of the SDKs' GCS driver.
pub(super) const GCS_DRIVER: &str = "gcp.gcsdriver";
pub(super) const REFERENCE_TYPE: &str = "temporal.api.sdk.v1.ExternalStorageReference";

/// What a reference payload points at.
pub(super) struct Claim {
    pub(super) key: String,
    pub(super) size: u64,
}

/// A payload's proto JSON.
pub(super) fn payload(encoding: &str, data: &[u8]) -> Value {
    json!({
        "metadata": {"encoding": STANDARD.encode(encoding)},
        "data": STANDARD.encode(data),
    })
}

pub(super) fn payloads_body(payloads: &[Value]) -> Vec<u8> {
    json!({ "payloads": payloads }).to_string().into_bytes()
}

/// The one payload of an answer with `status`.
pub(super) fn single_payload(answer: &Answer, status: u16) -> anyhow::Result<Value> {
    ensure!(
        answer.status == status,
        "answered {} (want {status}): {}",
        answer.status,
        answer.excerpt()
    );
    let body = answer.json()?;
    let payloads = body["payloads"]
        .as_array()
        .with_context(|| format!("no payloads in {}", answer.excerpt()))?;
    match payloads.as_slice() {
        [one] => Ok(one.clone()),
        other => bail!("{} payloads in the answer, want 1", other.len()),
    }
}

/// `POST path` of `reference` on our server at `port` (`/download`, or
/// `/decode` resolving it): the data of the one `json/plain` payload it
/// answers with 200.
pub(super) fn resolved_data(port: u16, path: &str, reference: &Value) -> anyhow::Result<Vec<u8>> {
    let answer = super::http::post(port, path, &payloads_body(std::slice::from_ref(reference)))?;
    let got = single_payload(&answer, 200)?;
    let encoding = meta(&got, "encoding")?;
    ensure!(
        encoding == "json/plain",
        "answered encoding {encoding:?}: {}",
        answer.excerpt()
    );
    data_of(&got)
}

/// An error answer: `status`, `{"error": code, "detail": …}`, no payloads
/// and nothing of the value (`secret`).
pub(super) fn expect_error(
    answer: &Answer,
    status: u16,
    code: &str,
    secret: &str,
) -> anyhow::Result<String> {
    ensure!(
        answer.status == status,
        "answered {} (want {status} {code}): {}",
        answer.status,
        answer.excerpt()
    );
    let body = answer.json()?;
    ensure!(
        body["error"] == code,
        "error {} (want {code}): {}",
        body["error"],
        answer.excerpt()
    );
    ensure!(
        body.get("payloads").is_none(),
        "an error answer with payloads: {}",
        answer.excerpt()
    );
    ensure!(
        !String::from_utf8_lossy(&answer.body).contains(secret),
        "the error answer holds the value"
    );
    Ok(format!("{status} {code}: {}", body["detail"]))
}

/// A metadata value of a payload, decoded.
pub(super) fn meta(payload: &Value, key: &str) -> anyhow::Result<String> {
    let text = payload["metadata"][key]
        .as_str()
        .with_context(|| format!("no metadata {key:?} in {payload}"))?;
    let bytes = STANDARD
        .decode(text)
        .with_context(|| format!("metadata {key:?} is not base64"))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

pub(super) fn data_of(payload: &Value) -> anyhow::Result<Vec<u8>> {
    let text = payload["data"].as_str().unwrap_or_default();
    STANDARD.decode(text).context("data is not base64")
}

/// `size_bytes` of the first external payload, from either spelling and
/// either JSON form of an int64.
fn size_bytes(payload: &Value) -> Option<u64> {
    let list = payload
        .get("externalPayloads")
        .or_else(|| payload.get("external_payloads"))?;
    let first = list.get(0)?;
    let size = first.get("sizeBytes").or_else(|| first.get("size_bytes"))?;
    size.as_u64()
        .or_else(|| size.as_str().and_then(|s| s.parse().ok()))
}

/// What must survive a round trip: metadata (decoded, sorted), data and
/// `size_bytes`, whichever JSON spelling carried them.
#[derive(PartialEq, Eq)]
pub(super) struct Normalized {
    metadata: Vec<(String, String)>,
    data: Vec<u8>,
    size: Option<u64>,
}

pub(super) fn normalized(payload: &Value) -> anyhow::Result<Normalized> {
    let keys: Vec<String> = payload["metadata"]
        .as_object()
        .context("no metadata")?
        .keys()
        .cloned()
        .collect();
    let mut metadata = Vec::new();
    for key in keys {
        metadata.push((key.clone(), meta(payload, &key)?));
    }
    metadata.sort();
    Ok(Normalized {
        metadata,
        data: data_of(payload)?,
        size: size_bytes(payload),
    })
}

/// Checks a reference payload as the SDK writes it: `json/protobuf`
/// with the message type, the S3 driver's claim with a SHA-256 the key
/// ends with, in our bucket, and its size.
pub(super) fn claim_of(reference: &Value) -> anyhow::Result<Claim> {
    claim_by(reference, DRIVER)
}

/// [`claim_of`] for the driver named `driver` (the GCS driver's claim has
/// the same fields).
pub(super) fn claim_by(reference: &Value, driver: &str) -> anyhow::Result<Claim> {
    ensure!(
        meta(reference, "encoding")? == "json/protobuf",
        "not json/protobuf: {reference}"
    );
    ensure!(
        meta(reference, "messageType")? == REFERENCE_TYPE,
        "messageType is not {REFERENCE_TYPE}: {reference}"
    );
    let data: Value = serde_json::from_slice(&data_of(reference)?)
        .with_context(|| format!("the reference's data is not JSON: {reference}"))?;
    let claim = &data["claimData"];
    let field = |name: &str| {
        claim[name]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("no claimData.{name} in {data}"))
    };
    ensure!(
        data["driverName"] == driver,
        "driverName is not {driver}: {data}"
    );
    ensure!(field("bucket")? == BUCKET, "another bucket: {data}");
    ensure!(field("hash_algorithm")? == "sha256", "not sha256: {data}");
    let hash = field("hash_value")?;
    ensure!(
        hash.len() == 64
            && hash
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "hash_value is not lower-case SHA-256 hex: {data}"
    );
    let key = field("key")?;
    ensure!(
        key.starts_with("v0/") && key.ends_with(&format!("/d/sha256/{hash}")),
        "the key {key} does not end with /d/sha256/<hash_value>"
    );
    let size = size_bytes(reference)
        .with_context(|| format!("no external_payloads size_bytes in {reference}"))?;
    Ok(Claim { key, size })
}

/// `marker` followed by random hex, `len` characters in all (random so
/// that no codec can shrink it much).
pub(super) fn random_text(marker: &str, len: usize) -> anyhow::Result<String> {
    let mut bytes = vec![0_u8; len.saturating_sub(marker.len()).div_ceil(2)];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| anyhow::anyhow!("no random bytes"))?;
    let mut text = String::with_capacity(len + 1);
    text.push_str(marker);
    for b in bytes {
        write!(text, "{b:02x}")?;
    }
    text.truncate(len);
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_are_read_as_the_sdk_writes_them() {
        let hash = "ab".repeat(32);
        let data = json!({
            "claimData": {
                "bucket": BUCKET,
                "hash_algorithm": "sha256",
                "hash_value": hash,
                "key": format!("v0/ns/default/d/sha256/{hash}"),
            },
            "driverName": DRIVER,
        });
        let mut reference = payload("json/protobuf", data.to_string().as_bytes());
        reference["metadata"]["messageType"] = json!(STANDARD.encode(REFERENCE_TYPE));
        reference["externalPayloads"] = json!([{"sizeBytes": "1048702"}]);
        let claim = claim_of(&reference).unwrap();
        assert_eq!(claim.size, 1_048_702);
        assert!(claim.key.ends_with(&hash));
        let mut snake = reference.clone();
        snake.as_object_mut().unwrap().remove("externalPayloads");
        snake["external_payloads"] = json!([{"size_bytes": 1_048_702}]);
        assert_eq!(size_bytes(&snake), Some(1_048_702));
        assert!(claim_of(&payload("json/plain", b"1")).is_err());
    }

    #[test]
    fn random_text_has_the_length_and_marker() {
        let text = random_text("m-", 11).unwrap();
        assert_eq!(text.len(), 11);
        assert!(text.starts_with("m-"));
    }
}
