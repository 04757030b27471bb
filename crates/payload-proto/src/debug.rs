//! A `Debug` for `Payload` that is safe to log.
//!
//! Payload data is user data, often sensitive, so it is shown as its length
//! only. Metadata values are shown for the descriptive keys the SDKs and our
//! codecs write (encoding, message type, key id); other values by length.

use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;

use crate::temporal::api::common::v1::Payload;
use crate::temporal::api::common::v1::payload::ExternalPayloadDetails;

/// Metadata keys whose values describe a payload rather than hold its data.
const DESCRIPTIVE_KEYS: &[&str] = &["encoding", "messageType", "encryption-key-id"];

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Payload")
            .field("metadata", &Metadata(&self.metadata))
            .field("data", &ByteCount(self.data.len()))
            .field("external_payloads", &self.external_payloads)
            .finish()
    }
}

impl fmt::Debug for ExternalPayloadDetails {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExternalPayloadDetails")
            .field("size_bytes", &self.size_bytes)
            .finish()
    }
}

struct Metadata<'a>(&'a BTreeMap<String, Bytes>);

impl fmt::Debug for Metadata<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (key, value) in self.0 {
            match std::str::from_utf8(value) {
                Ok(text) if DESCRIPTIVE_KEYS.contains(&key.as_str()) => map.entry(key, &text),
                _ => map.entry(key, &ByteCount(value.len())),
            };
        }
        map.finish()
    }
}

struct ByteCount(usize);

impl fmt::Debug for ByteCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} bytes>", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_encoding_but_not_data_or_other_metadata() {
        let payload = Payload {
            metadata: [
                ("encoding".to_owned(), Bytes::from_static(b"json/plain")),
                ("secret-ish".to_owned(), Bytes::from_static(b"hunter2")),
            ]
            .into(),
            data: Bytes::from_static(b"\"top secret\""),
            external_payloads: Vec::new(),
        };
        let shown = format!("{payload:?}");
        assert!(shown.contains("json/plain"), "{shown}");
        assert!(shown.contains("<12 bytes>"), "{shown}");
        assert!(shown.contains("<7 bytes>"), "{shown}");
        assert!(!shown.contains("top secret"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
