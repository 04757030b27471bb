//! `binary/protobuf`: a protobuf message in binary form.

use payload_proto::temporal::api::common::v1::Payload;

use super::{EncodingPayloadConverter, message_type, with_message_type};
use crate::encoding::BINARY_PROTOBUF;
use crate::error::ConversionError;
use crate::value::{Decoded, Value};

/// Writes [`Value::Proto`] as binary protobuf with `messageType`. In the
/// standard order it only sees messages when the JSON one is removed.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProtoBinaryConverter;

impl EncodingPayloadConverter for ProtoBinaryConverter {
    fn encoding(&self) -> &'static str {
        BINARY_PROTOBUF
    }

    fn to_payload(&self, value: &Value<'_>) -> Result<Option<Payload>, ConversionError> {
        Ok(match value {
            Value::Proto(message) => Some(with_message_type(
                BINARY_PROTOBUF,
                &message.message_type(),
                message.encode_binary(),
            )),
            _ => None,
        })
    }

    fn from_payload<'p>(&self, payload: &'p Payload) -> Result<Decoded<'p>, ConversionError> {
        Ok(Decoded::ProtoBinary {
            message_type: message_type(payload)?,
            data: &payload.data,
        })
    }
}
