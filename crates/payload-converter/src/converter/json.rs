//! `json/plain`: any serde value as JSON text.

use payload_proto::temporal::api::common::v1::Payload;

use super::EncodingPayloadConverter;
use crate::encoding::{JSON_PLAIN, PayloadExt};
use crate::error::ConversionError;
use crate::json_style::JsonStyle;
use crate::value::{Decoded, Value};

/// Writes [`Value::Json`] as compact JSON.
#[derive(Clone, Copy, Debug, Default)]
pub struct JsonConverter {
    style: JsonStyle,
}

impl JsonConverter {
    /// A converter writing JSON in `style`.
    pub fn new(style: JsonStyle) -> Self {
        Self { style }
    }
}

impl EncodingPayloadConverter for JsonConverter {
    fn encoding(&self) -> &'static str {
        JSON_PLAIN
    }

    fn to_payload(&self, value: &Value<'_>) -> Result<Option<Payload>, ConversionError> {
        match value {
            Value::Json(value) => Ok(Some(Payload::with_encoding(
                JSON_PLAIN,
                value.to_json(self.style)?,
            ))),
            _ => Ok(None),
        }
    }

    fn from_payload<'p>(&self, payload: &'p Payload) -> Result<Decoded<'p>, ConversionError> {
        Ok(Decoded::Json(&payload.data))
    }
}
