//! The reference payload that stands in a history for a stored payload, in
//! every form the official SDKs write or have written.
//!
//! Written (current form): metadata `encoding = json/protobuf` and
//! `messageType = temporal.api.sdk.v1.ExternalStorageReference`, data the
//! proto3 JSON of that message (`{"driverName":…,"claimData":{…}}`), and one
//! `external_payloads` entry with the stored payload's serialized size.
//!
//! Read as well: the legacy form (`encoding =
//! json/external-storage-reference`, data
//! `{"driver_name":…,"driver_claim":{"claim_data":{…}}}`), and both
//! spellings of the JSON fields. A reference that went through a codec
//! carries the marker metadata [`REFERENCE_MARKER_KEY`] = `true`; see
//! [`has_marker`].

use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;
use payload_proto::temporal::api::common::v1::Payload;
use payload_proto::temporal::api::common::v1::payload::ExternalPayloadDetails;
use payload_proto::temporal::api::sdk::v1::ExternalStorageReference;
use serde::Deserialize;

/// The `messageType` of a current-form reference.
pub const REFERENCE_MESSAGE_TYPE: &str = "temporal.api.sdk.v1.ExternalStorageReference";
/// The encoding of a legacy-form reference (Go <= 1.42, Python 1.24-1.26).
pub const LEGACY_REFERENCE_ENCODING: &str = "json/external-storage-reference";
/// Metadata key that marks a reference which went through the client's
/// codecs (its value is `true`).
pub const REFERENCE_MARKER_KEY: &str = "__temporal_external_storage_reference";

const ENCODING: &str = "encoding";
const MESSAGE_TYPE: &str = "messageType";
const JSON_PROTOBUF: &str = "json/protobuf";

/// Whether `payload` is a reference (either form), judged by its metadata.
pub fn is_reference(payload: &Payload) -> bool {
    let encoding = payload.metadata.get(ENCODING).map(|v| &v[..]);
    encoding == Some(LEGACY_REFERENCE_ENCODING.as_bytes())
        || (encoding == Some(JSON_PROTOBUF.as_bytes())
            && payload.metadata.get(MESSAGE_TYPE).map(|v| &v[..])
                == Some(REFERENCE_MESSAGE_TYPE.as_bytes()))
}

/// Whether `payload` is a reference that went through a codec (it carries
/// the marker metadata).
pub fn has_marker(payload: &Payload) -> bool {
    payload.metadata.get(REFERENCE_MARKER_KEY).map(|v| &v[..]) == Some(b"true")
}

/// A reference payload is malformed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReferenceError {
    /// Its data is not the JSON of a reference.
    #[error("the reference's data is not a storage reference ({0})")]
    Json(#[from] serde_json::Error),
    /// It names no driver.
    #[error("the reference names no storage driver")]
    NoDriver,
}

/// The driver-defined data that finds a stored payload again (for S3:
/// bucket, key, hash algorithm and value).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Claim(BTreeMap<String, String>);

impl Claim {
    /// A claim with these entries.
    pub fn new(entries: BTreeMap<String, String>) -> Self {
        Self(entries)
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// The content hash: (algorithm, value), read from `hash_algorithm` and
    /// `hash_value`, or the camelCase keys the TS SDK 1.21.1 wrote.
    pub fn hash(&self) -> Option<(&str, &str)> {
        let algorithm = self
            .get("hash_algorithm")
            .or_else(|| self.get("hashAlgorithm"))?;
        let value = self.get("hash_value").or_else(|| self.get("hashValue"))?;
        Some((algorithm, value))
    }

    /// The entries.
    pub fn entries(&self) -> &BTreeMap<String, String> {
        &self.0
    }
}

impl fmt::Debug for Claim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.0.iter()).finish()
    }
}

/// A parsed reference: which driver stored the payload, its claim, and the
/// stored payload's serialized size when the reference says it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageReference {
    /// The name of the driver that stored it (`aws.s3driver`, …).
    pub driver_name: String,
    /// What the driver needs to find it.
    pub claim: Claim,
    /// The stored payload's serialized size (`external_payloads`).
    pub size_bytes: Option<u64>,
}

/// The legacy form's JSON.
#[derive(Deserialize)]
struct LegacyReference {
    #[serde(alias = "driverName")]
    driver_name: String,
    #[serde(alias = "driverClaim")]
    driver_claim: LegacyClaim,
}

#[derive(Deserialize)]
struct LegacyClaim {
    #[serde(alias = "claimData", default)]
    claim_data: BTreeMap<String, String>,
}

impl StorageReference {
    /// Reads `payload` as a reference: `Ok(None)` when it is not one (by its
    /// metadata), an error when it says it is one but is malformed.
    pub fn from_payload(payload: &Payload) -> Result<Option<Self>, ReferenceError> {
        let encoding = payload.metadata.get(ENCODING).map(|v| &v[..]);
        let (driver_name, claim) = if encoding == Some(LEGACY_REFERENCE_ENCODING.as_bytes()) {
            let legacy: LegacyReference = serde_json::from_slice(&payload.data)?;
            (legacy.driver_name, legacy.driver_claim.claim_data)
        } else if is_reference(payload) {
            let current: ExternalStorageReference = serde_json::from_slice(&payload.data)?;
            (
                current.driver_name,
                current.claim_data.into_iter().collect(),
            )
        } else {
            return Ok(None);
        };
        if driver_name.is_empty() {
            return Err(ReferenceError::NoDriver);
        }
        Ok(Some(Self {
            driver_name,
            claim: Claim(claim),
            size_bytes: payload
                .external_payloads
                .first()
                .and_then(|d| u64::try_from(d.size_bytes).ok()),
        }))
    }

    /// The reference payload in the current form.
    pub fn to_payload(&self) -> Payload {
        let message = ExternalStorageReference {
            driver_name: self.driver_name.clone(),
            claim_data: self
                .claim
                .0
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
        // Serializing a message of strings cannot fail.
        let data = serde_json::to_vec(&message).unwrap_or_default();
        Payload {
            metadata: [
                (
                    ENCODING.to_owned(),
                    Bytes::from_static(JSON_PROTOBUF.as_bytes()),
                ),
                (
                    MESSAGE_TYPE.to_owned(),
                    Bytes::from_static(REFERENCE_MESSAGE_TYPE.as_bytes()),
                ),
            ]
            .into_iter()
            .collect(),
            data: data.into(),
            external_payloads: self
                .size_bytes
                .map(|size| ExternalPayloadDetails {
                    size_bytes: i64::try_from(size).unwrap_or(i64::MAX),
                })
                .into_iter()
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn payload(encoding: &str, message_type: Option<&str>, data: &str) -> Payload {
        let mut metadata: BTreeMap<String, Bytes> = [(
            ENCODING.to_owned(),
            Bytes::copy_from_slice(encoding.as_bytes()),
        )]
        .into();
        if let Some(t) = message_type {
            metadata.insert(
                MESSAGE_TYPE.to_owned(),
                Bytes::copy_from_slice(t.as_bytes()),
            );
        }
        Payload {
            metadata,
            data: Bytes::copy_from_slice(data.as_bytes()),
            external_payloads: vec![ExternalPayloadDetails {
                size_bytes: 300_000,
            }],
        }
    }

    fn s3_claim() -> BTreeMap<String, String> {
        [
            ("bucket", "temporal-payloads"),
            ("key", "v0/d/sha256/ab"),
            ("hash_algorithm", "sha256"),
            ("hash_value", "ab"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    #[test]
    fn the_current_form_is_read_in_both_spellings() {
        for data in [
            r#"{"driverName":"aws.s3driver","claimData":{"bucket":"temporal-payloads","key":"v0/d/sha256/ab","hash_algorithm":"sha256","hash_value":"ab"}}"#,
            r#"{"driver_name":"aws.s3driver","claim_data":{"bucket":"temporal-payloads","key":"v0/d/sha256/ab","hash_algorithm":"sha256","hash_value":"ab"},"unknown":1}"#,
        ] {
            let reference = StorageReference::from_payload(&payload(
                JSON_PROTOBUF,
                Some(REFERENCE_MESSAGE_TYPE),
                data,
            ))
            .unwrap()
            .unwrap();
            assert_eq!(reference.driver_name, "aws.s3driver");
            assert_eq!(reference.claim.entries(), &s3_claim());
            assert_eq!(reference.claim.hash(), Some(("sha256", "ab")));
            assert_eq!(reference.size_bytes, Some(300_000));
        }
    }

    #[test]
    fn the_legacy_form_is_read() {
        let data = r#"{"driver_name":"aws.s3driver","driver_claim":{"claim_data":{"bucket":"temporal-payloads","key":"v0/d/sha256/ab","hash_algorithm":"sha256","hash_value":"ab"}}}"#;
        let reference =
            StorageReference::from_payload(&payload(LEGACY_REFERENCE_ENCODING, None, data))
                .unwrap()
                .unwrap();
        assert_eq!(reference.claim.entries(), &s3_claim());
    }

    #[test]
    fn camel_case_hash_keys_are_read() {
        let claim = Claim::new(
            [("hashAlgorithm", "sha256"), ("hashValue", "cd")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        );
        assert_eq!(claim.hash(), Some(("sha256", "cd")));
    }

    #[test]
    fn other_payloads_are_not_references() {
        assert!(
            StorageReference::from_payload(&payload("json/plain", None, "{}"))
                .unwrap()
                .is_none()
        );
        // Another protobuf message in JSON.
        assert!(
            StorageReference::from_payload(&payload(
                JSON_PROTOBUF,
                Some("temporal.api.common.v1.Payloads"),
                "{}"
            ))
            .unwrap()
            .is_none()
        );
    }

    #[test]
    fn malformed_references_are_errors() {
        let broken = payload(
            JSON_PROTOBUF,
            Some(REFERENCE_MESSAGE_TYPE),
            "{\"driverName\":",
        );
        assert!(matches!(
            StorageReference::from_payload(&broken),
            Err(ReferenceError::Json(_))
        ));
        let nameless = payload(JSON_PROTOBUF, Some(REFERENCE_MESSAGE_TYPE), "{}");
        assert!(matches!(
            StorageReference::from_payload(&nameless),
            Err(ReferenceError::NoDriver)
        ));
    }

    #[test]
    fn the_marker_is_recognized() {
        let mut marked = payload("binary/encrypted", None, "");
        assert!(!has_marker(&marked));
        marked
            .metadata
            .insert(REFERENCE_MARKER_KEY.to_owned(), Bytes::from_static(b"true"));
        assert!(has_marker(&marked));
    }

    #[test]
    fn what_we_write_is_the_sdks_current_form() {
        let reference = StorageReference {
            driver_name: "aws.s3driver".to_owned(),
            claim: Claim::new(s3_claim()),
            size_bytes: Some(5),
        };
        let written = reference.to_payload();
        assert!(is_reference(&written));
        let json: serde_json::Value = serde_json::from_slice(&written.data).unwrap();
        assert_eq!(json["driverName"], "aws.s3driver");
        assert_eq!(json["claimData"]["hash_value"], "ab");
        assert_eq!(written.external_payloads[0].size_bytes, 5);
    }

    fn claims() -> impl Strategy<Value = BTreeMap<String, String>> {
        proptest::collection::btree_map("[a-zA-Z_]{1,12}", "\\PC{0,40}", 0..6)
    }

    proptest! {
        #[test]
        fn every_form_round_trips(
            driver in "[a-z.]{1,20}",
            claim in claims(),
            size in proptest::option::of(0_u64..(1 << 40)),
            legacy in any::<bool>(),
        ) {
            let reference = StorageReference {
                driver_name: driver.clone(),
                claim: Claim::new(claim.clone()),
                size_bytes: size,
            };
            let mut written = reference.to_payload();
            if legacy {
                // The legacy form of the same reference.
                let data = serde_json::json!({
                    "driver_name": driver,
                    "driver_claim": { "claim_data": claim },
                });
                written.metadata.remove(MESSAGE_TYPE);
                written.metadata.insert(
                    ENCODING.to_owned(),
                    Bytes::from_static(LEGACY_REFERENCE_ENCODING.as_bytes()),
                );
                written.data = serde_json::to_vec(&data).unwrap().into();
            }
            let read = StorageReference::from_payload(&written).unwrap().unwrap();
            prop_assert_eq!(read, reference);
        }
    }
}
