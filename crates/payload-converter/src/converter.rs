//! Payload converters: one per encoding, and the composite that picks
//! among them.
//!
//! The standard order, shared by every Temporal SDK: null, bytes, protobuf
//! JSON, protobuf binary, JSON. Encoding tries them in order and the first
//! that accepts the value wins (so a protobuf message becomes
//! `json/protobuf` unless that converter is removed); decoding picks the
//! converter named by the payload's `encoding` metadata.

mod bytes;
mod json;
mod null;
mod proto_binary;
mod proto_json;

use std::fmt;

use payload_proto::temporal::api::common::v1::Payload;

pub use self::bytes::BytesConverter;
pub use self::json::JsonConverter;
pub use self::null::NullConverter;
pub use self::proto_binary::ProtoBinaryConverter;
pub use self::proto_json::ProtoJsonConverter;
use crate::encoding::{METADATA_ENCODING, METADATA_MESSAGE_TYPE, PayloadExt};
use crate::error::ConversionError;
use crate::json_style::JsonStyle;
use crate::value::{Decoded, FromPayload, Value};

/// Converts values to payloads and back (the composite, or any replacement).
pub trait PayloadConverter: Send + Sync + fmt::Debug {
    /// Converts a value into a payload.
    fn to_payload(&self, value: &Value<'_>) -> Result<Payload, ConversionError>;
    /// Reads a payload's content, borrowed from it.
    #[allow(clippy::wrong_self_convention)] // The SDKs' name for this operation.
    fn from_payload<'p>(&self, payload: &'p Payload) -> Result<Decoded<'p>, ConversionError>;
}

/// Reads a payload into a Rust type with `converter`.
pub fn from_payload_as<T: FromPayload>(
    converter: &(impl PayloadConverter + ?Sized),
    payload: &Payload,
) -> Result<T, ConversionError> {
    T::from_decoded(converter.from_payload(payload)?)
}

/// A converter for one encoding.
pub trait EncodingPayloadConverter: Send + Sync + fmt::Debug {
    /// The `encoding` metadata value this converter writes and reads.
    fn encoding(&self) -> &'static str;
    /// Converts `value` if this converter handles its kind, else `Ok(None)`.
    fn to_payload(&self, value: &Value<'_>) -> Result<Option<Payload>, ConversionError>;
    /// Reads a payload of this converter's encoding.
    #[allow(clippy::wrong_self_convention)] // The SDKs' name for this operation.
    fn from_payload<'p>(&self, payload: &'p Payload) -> Result<Decoded<'p>, ConversionError>;
}

/// Tries converters in order to encode; decodes by the `encoding` metadata.
#[derive(Debug)]
pub struct CompositeConverter {
    converters: Vec<Box<dyn EncodingPayloadConverter>>,
}

impl CompositeConverter {
    /// A composite of the given converters, tried in this order.
    pub fn new(converters: Vec<Box<dyn EncodingPayloadConverter>>) -> Self {
        Self { converters }
    }

    /// The SDKs' default converters and order, writing JSON in `style`.
    pub fn standard_with_style(style: JsonStyle) -> Self {
        Self::new(vec![
            Box::new(NullConverter),
            Box::new(BytesConverter),
            Box::new(ProtoJsonConverter::new(style)),
            Box::new(ProtoBinaryConverter),
            Box::new(JsonConverter::new(style)),
        ])
    }

    /// The encodings of the converters, in order.
    pub fn encodings(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.converters.iter().map(|c| c.encoding())
    }
}

impl Default for CompositeConverter {
    /// The SDKs' default converters and order, with UTF-8 JSON.
    fn default() -> Self {
        Self::standard_with_style(JsonStyle::default())
    }
}

impl PayloadConverter for CompositeConverter {
    fn to_payload(&self, value: &Value<'_>) -> Result<Payload, ConversionError> {
        for converter in &self.converters {
            if let Some(payload) = converter.to_payload(value)? {
                return Ok(payload);
            }
        }
        Err(ConversionError::Unsupported { kind: value.kind() })
    }

    fn from_payload<'p>(&self, payload: &'p Payload) -> Result<Decoded<'p>, ConversionError> {
        let encoding = payload
            .metadata
            .get(METADATA_ENCODING)
            .ok_or(ConversionError::MissingEncoding)?;
        self.converters
            .iter()
            .find(|c| c.encoding().as_bytes() == &encoding[..])
            .ok_or_else(|| ConversionError::UnknownEncoding {
                encoding: String::from_utf8_lossy(encoding).into_owned(),
            })?
            .from_payload(payload)
    }
}

/// A payload of `encoding` with a `messageType`.
fn with_message_type(encoding: &str, message_type: &str, data: Vec<u8>) -> Payload {
    let mut payload = Payload::with_encoding(encoding, data);
    payload.metadata.insert(
        METADATA_MESSAGE_TYPE.to_owned(),
        message_type.as_bytes().to_vec().into(),
    );
    payload
}

/// The `messageType` metadata: optional, but text when present.
fn message_type(payload: &Payload) -> Result<Option<&str>, ConversionError> {
    payload
        .metadata
        .get(METADATA_MESSAGE_TYPE)
        .map(|v| {
            std::str::from_utf8(v).map_err(|_| ConversionError::MetadataNotUtf8 {
                key: METADATA_MESSAGE_TYPE,
            })
        })
        .transpose()
}

#[cfg(test)]
mod tests;
