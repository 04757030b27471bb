//! `json/protobuf`: a protobuf message as proto3 JSON.

use payload_proto::temporal::api::common::v1::Payload;

use super::{EncodingPayloadConverter, message_type, with_message_type};
use crate::encoding::JSON_PROTOBUF;
use crate::error::ConversionError;
use crate::json_style::JsonStyle;
use crate::value::{Decoded, Value};

/// Writes [`Value::Proto`] as compact proto3 JSON with `messageType`.
///
/// Object keys are sorted, as the Python SDK writes them, so identical
/// messages give identical bytes whatever the field order.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProtoJsonConverter {
    style: JsonStyle,
}

impl ProtoJsonConverter {
    /// A converter writing JSON in `style`.
    pub fn new(style: JsonStyle) -> Self {
        Self { style }
    }
}

impl EncodingPayloadConverter for ProtoJsonConverter {
    fn encoding(&self) -> &'static str {
        JSON_PROTOBUF
    }

    fn to_payload(&self, value: &Value<'_>) -> Result<Option<Payload>, ConversionError> {
        let Value::Proto(message) = value else {
            return Ok(None);
        };
        // A `serde_json::Value` object is a sorted map: this sorts the keys.
        let json = self.style.to_vec(&message.to_json_value()?)?;
        Ok(Some(with_message_type(
            JSON_PROTOBUF,
            &message.message_type(),
            json,
        )))
    }

    fn from_payload<'p>(&self, payload: &'p Payload) -> Result<Decoded<'p>, ConversionError> {
        Ok(Decoded::ProtoJson {
            message_type: message_type(payload)?,
            json: &payload.data,
        })
    }
}
