//! Metadata keys and encodings of the standard payload converters, and
//! helpers to read and write them on a [`Payload`].

use bytes::Bytes;
use payload_proto::temporal::api::common::v1::Payload;

/// Metadata key naming how a payload's data is encoded.
pub const METADATA_ENCODING: &str = "encoding";
/// Metadata key naming the protobuf message type of a protobuf payload.
pub const METADATA_MESSAGE_TYPE: &str = "messageType";

/// `None`/null: empty data.
pub const BINARY_NULL: &str = "binary/null";
/// Raw bytes.
pub const BINARY_PLAIN: &str = "binary/plain";
/// A protobuf message as proto3 JSON.
pub const JSON_PROTOBUF: &str = "json/protobuf";
/// A protobuf message in binary form.
pub const BINARY_PROTOBUF: &str = "binary/protobuf";
/// Any value as JSON text.
pub const JSON_PLAIN: &str = "json/plain";

/// Convenience accessors for [`Payload`] metadata.
pub trait PayloadExt {
    /// Builds a payload with the given `encoding` metadata and data.
    fn with_encoding(encoding: &str, data: impl Into<Bytes>) -> Self;
    /// The `encoding` metadata, if present and UTF-8.
    fn encoding(&self) -> Option<&str>;
    /// A metadata value as text, if present and UTF-8.
    fn metadata_str(&self, key: &str) -> Option<&str>;
}

impl PayloadExt for Payload {
    fn with_encoding(encoding: &str, data: impl Into<Bytes>) -> Self {
        Payload {
            metadata: [(
                METADATA_ENCODING.to_owned(),
                Bytes::copy_from_slice(encoding.as_bytes()),
            )]
            .into(),
            data: data.into(),
            external_payloads: Vec::new(),
        }
    }

    fn encoding(&self) -> Option<&str> {
        self.metadata_str(METADATA_ENCODING)
    }

    fn metadata_str(&self, key: &str) -> Option<&str> {
        self.metadata
            .get(key)
            .and_then(|v| std::str::from_utf8(v).ok())
    }
}
