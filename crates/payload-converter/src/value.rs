//! What the payload converters see of Rust values, and what they give back.
//!
//! Dynamic SDKs pick a converter by the runtime type of a value. In Rust the
//! caller says what a value is by building a [`Value`] view of it (null,
//! bytes, a protobuf message or anything `serde` can serialize); the
//! composite converter then tries its converters in SDK order. Decoding goes
//! the other way: a converter turns a payload into a borrowed [`Decoded`]
//! form chosen by the payload's encoding, and the target type, through
//! [`FromPayload`], takes what it can from it.

use std::fmt;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ConversionError;
use crate::json_style::JsonStyle;

/// A borrowed view of a value to convert into a payload.
#[derive(Clone, Copy)]
#[non_exhaustive]
pub enum Value<'a> {
    /// No value (`None`, `null`, unit): `binary/null`.
    Null,
    /// Raw bytes: `binary/plain`.
    Bytes(&'a [u8]),
    /// A protobuf message: `json/protobuf` (or `binary/protobuf`).
    Proto(&'a dyn ProtoMessage),
    /// Anything serde can serialize: `json/plain`.
    Json(&'a dyn JsonValue),
}

impl<'a> Value<'a> {
    /// A value serialized with serde as `json/plain`.
    pub fn json<T: Serialize + Sync>(value: &'a T) -> Self {
        Value::Json(value)
    }

    /// A protobuf message, as `json/protobuf` by default.
    pub fn proto<M: ProtoMessage>(message: &'a M) -> Self {
        Value::Proto(message)
    }

    /// `None` as `binary/null`, `Some` as `json/plain`, as the SDKs treat
    /// optional values.
    pub fn option<T: Serialize + Sync>(value: &'a Option<T>) -> Self {
        match value {
            None => Value::Null,
            Some(inner) => Value::Json(inner),
        }
    }

    /// A short name of the kind of value, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bytes(_) => "bytes",
            Value::Proto(_) => "protobuf message",
            Value::Json(_) => "JSON-serializable",
        }
    }
}

impl fmt::Debug for Value<'_> {
    /// Shows the kind of value only: values are user data.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Bytes(bytes) => write!(f, "Value::Bytes(<{} bytes>)", bytes.len()),
            Value::Proto(message) => write!(f, "Value::Proto({})", message.message_type()),
            other => write!(f, "Value::{}", other.kind()),
        }
    }
}

/// A protobuf message the converters can write (implemented for every
/// generated prost message with a name and proto3 JSON support).
pub trait ProtoMessage: Sync {
    /// The full protobuf name, e.g. `temporal.api.common.v1.WorkflowExecution`.
    fn message_type(&self) -> String;
    /// The binary protobuf encoding.
    fn encode_binary(&self) -> Vec<u8>;
    /// The proto3 JSON form as a JSON value.
    fn to_json_value(&self) -> Result<serde_json::Value, serde_json::Error>;
}

impl<M> ProtoMessage for M
where
    M: prost::Message + prost::Name + Serialize + Sync,
{
    fn message_type(&self) -> String {
        M::full_name()
    }

    fn encode_binary(&self) -> Vec<u8> {
        self.encode_to_vec()
    }

    fn to_json_value(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::to_value(self)
    }
}

/// A value the JSON converter can write (implemented for every
/// `serde::Serialize + Sync` type; `Sync` so values can be borrowed across
/// an async codec call).
pub trait JsonValue: Sync {
    /// Serializes the value as compact JSON in `style`.
    fn to_json(&self, style: JsonStyle) -> Result<Vec<u8>, serde_json::Error>;
}

impl<T: Serialize + Sync> JsonValue for T {
    fn to_json(&self, style: JsonStyle) -> Result<Vec<u8>, serde_json::Error> {
        style.to_vec(self)
    }
}

/// A payload's content, read by the converter for its encoding and borrowed
/// from the payload.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum Decoded<'p> {
    /// `binary/null`.
    Null,
    /// `binary/plain`.
    Bytes(&'p Bytes),
    /// `json/protobuf`: proto3 JSON text, and the `messageType` if present.
    ProtoJson {
        /// The `messageType` metadata, if present.
        message_type: Option<&'p str>,
        /// The JSON text.
        json: &'p [u8],
    },
    /// `binary/protobuf`: the message bytes, and the `messageType` if present.
    ProtoBinary {
        /// The `messageType` metadata, if present.
        message_type: Option<&'p str>,
        /// The binary message.
        data: &'p Bytes,
    },
    /// `json/plain`: JSON text.
    Json(&'p [u8]),
}

impl Decoded<'_> {
    /// The encoding this content came from.
    pub fn encoding(&self) -> &'static str {
        use crate::encoding::*;
        match self {
            Decoded::Null => BINARY_NULL,
            Decoded::Bytes(_) => BINARY_PLAIN,
            Decoded::ProtoJson { .. } => JSON_PROTOBUF,
            Decoded::ProtoBinary { .. } => BINARY_PROTOBUF,
            Decoded::Json(_) => JSON_PLAIN,
        }
    }

    fn mismatch(&self, target: &'static str) -> ConversionError {
        ConversionError::TypeMismatch {
            encoding: self.encoding(),
            target,
        }
    }
}

/// A Rust type that can be read from a decoded payload.
pub trait FromPayload: Sized {
    /// Reads `Self` from a payload's content.
    fn from_decoded(decoded: Decoded<'_>) -> Result<Self, ConversionError>;
}

/// A value read from (`json/plain` or `json/protobuf`) JSON with serde;
/// `binary/null` reads as JSON `null`, so `Json<Option<T>>` gets `None`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned> FromPayload for Json<T> {
    fn from_decoded(decoded: Decoded<'_>) -> Result<Self, ConversionError> {
        let text: &[u8] = match decoded {
            Decoded::Null => b"null",
            Decoded::Json(json) | Decoded::ProtoJson { json, .. } => json,
            other => return Err(other.mismatch("JSON")),
        };
        Ok(Json(serde_json::from_slice(text)?))
    }
}

/// A protobuf message read from `json/protobuf` or `binary/protobuf`. When
/// the payload names its `messageType`, it must be `M`'s.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Proto<M>(pub M);

impl<M> FromPayload for Proto<M>
where
    M: prost::Message + prost::Name + DeserializeOwned + Default,
{
    fn from_decoded(decoded: Decoded<'_>) -> Result<Self, ConversionError> {
        let check = |found: Option<&str>| match found {
            Some(found) if found != M::full_name() => Err(ConversionError::MessageTypeMismatch {
                expected: M::full_name(),
                found: found.to_owned(),
            }),
            _ => Ok(()),
        };
        match decoded {
            Decoded::ProtoJson { message_type, json } => {
                check(message_type)?;
                Ok(Proto(serde_json::from_slice(json)?))
            }
            Decoded::ProtoBinary { message_type, data } => {
                check(message_type)?;
                Ok(Proto(M::decode(data.clone())?))
            }
            other => Err(other.mismatch("a protobuf message")),
        }
    }
}

impl FromPayload for Bytes {
    fn from_decoded(decoded: Decoded<'_>) -> Result<Self, ConversionError> {
        match decoded {
            Decoded::Bytes(bytes) => Ok(bytes.clone()),
            other => Err(other.mismatch("bytes")),
        }
    }
}

impl FromPayload for Vec<u8> {
    fn from_decoded(decoded: Decoded<'_>) -> Result<Self, ConversionError> {
        Bytes::from_decoded(decoded).map(Vec::from)
    }
}

impl FromPayload for () {
    fn from_decoded(decoded: Decoded<'_>) -> Result<Self, ConversionError> {
        match decoded {
            Decoded::Null => Ok(()),
            other => Json::<()>::from_decoded(other).map(|_| ()),
        }
    }
}

impl<T: FromPayload> FromPayload for Option<T> {
    fn from_decoded(decoded: Decoded<'_>) -> Result<Self, ConversionError> {
        match decoded {
            Decoded::Null => Ok(None),
            other => T::from_decoded(other).map(Some),
        }
    }
}

/// Any payload as a JSON value, for display: `binary/null` is `null`, JSON
/// encodings are parsed, `binary/plain` is a base64 string; `binary/protobuf`
/// cannot be shown without its schema and is an error.
impl FromPayload for serde_json::Value {
    fn from_decoded(decoded: Decoded<'_>) -> Result<Self, ConversionError> {
        use base64::Engine as _;
        match decoded {
            Decoded::Bytes(bytes) => Ok(serde_json::Value::String(
                base64::engine::general_purpose::STANDARD.encode(bytes),
            )),
            Decoded::ProtoBinary { .. } => Err(decoded.mismatch("JSON")),
            other => Json::from_decoded(other).map(|Json(v)| v),
        }
    }
}
