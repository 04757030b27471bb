//! `binary/null`: no value.

use payload_proto::temporal::api::common::v1::Payload;

use super::EncodingPayloadConverter;
use crate::encoding::{BINARY_NULL, PayloadExt};
use crate::error::ConversionError;
use crate::value::{Decoded, Value};

/// Writes [`Value::Null`] as an empty `binary/null` payload.
#[derive(Clone, Copy, Debug, Default)]
pub struct NullConverter;

impl EncodingPayloadConverter for NullConverter {
    fn encoding(&self) -> &'static str {
        BINARY_NULL
    }

    fn to_payload(&self, value: &Value<'_>) -> Result<Option<Payload>, ConversionError> {
        Ok(matches!(value, Value::Null).then(|| Payload::with_encoding(BINARY_NULL, Vec::new())))
    }

    /// Any data is ignored, as every SDK does.
    fn from_payload<'p>(&self, _payload: &'p Payload) -> Result<Decoded<'p>, ConversionError> {
        Ok(Decoded::Null)
    }
}
