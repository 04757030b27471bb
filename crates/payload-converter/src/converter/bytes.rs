//! `binary/plain`: raw bytes.

use payload_proto::temporal::api::common::v1::Payload;

use super::EncodingPayloadConverter;
use crate::encoding::{BINARY_PLAIN, PayloadExt};
use crate::error::ConversionError;
use crate::value::{Decoded, Value};

/// Writes [`Value::Bytes`] as `binary/plain`.
#[derive(Clone, Copy, Debug, Default)]
pub struct BytesConverter;

impl EncodingPayloadConverter for BytesConverter {
    fn encoding(&self) -> &'static str {
        BINARY_PLAIN
    }

    fn to_payload(&self, value: &Value<'_>) -> Result<Option<Payload>, ConversionError> {
        Ok(match value {
            Value::Bytes(bytes) => Some(Payload::with_encoding(BINARY_PLAIN, bytes.to_vec())),
            _ => None,
        })
    }

    fn from_payload<'p>(&self, payload: &'p Payload) -> Result<Decoded<'p>, ConversionError> {
        Ok(Decoded::Bytes(&payload.data))
    }
}
