//! The failure converter: Rust errors to Temporal `Failure` messages and
//! back, with the SDKs' optional "encoded attributes".
//!
//! With encoded attributes on, each failure in a cause chain has its message
//! and stack trace moved into `encoded_attributes`, a `json/plain` payload
//! `{"message": …, "stack_trace": …}`, so that a codec can encrypt them; the
//! visible message becomes `Encoded failure` and the stack trace is emptied.
//! Decoding restores them whenever the attributes are present, whatever the
//! option, as every SDK does.

use std::error::Error as StdError;
use std::fmt;

use payload_proto::temporal::api::common::v1::Payloads;
use payload_proto::temporal::api::failure::v1::failure::FailureInfo;
use payload_proto::temporal::api::failure::v1::{ApplicationFailureInfo, Failure};
use serde::{Deserialize, Serialize};

use crate::converter::{PayloadConverter, from_payload_as};
use crate::error::ConversionError;
use crate::value::{Json, Value};

/// The visible message of a failure whose attributes are encoded.
pub const ENCODED_FAILURE_MESSAGE: &str = "Encoded failure";

/// A Temporal failure as a Rust error: what a `Failure` message holds, with
/// its cause chain as [`source`](StdError::source).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TemporalFailure {
    /// The failure's message.
    pub message: String,
    /// The stack trace, if any.
    pub stack_trace: String,
    /// Which SDK produced it (the proto's `source` field; often empty).
    pub origin: String,
    /// The kind of failure and its details.
    pub info: Option<FailureInfo>,
    /// The failure that caused this one.
    pub cause: Option<Box<TemporalFailure>>,
}

impl TemporalFailure {
    /// An application failure with a type name (may be empty).
    pub fn application(message: impl Into<String>, error_type: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            info: Some(FailureInfo::ApplicationFailureInfo(
                ApplicationFailureInfo {
                    r#type: error_type.into(),
                    ..Default::default()
                },
            )),
            ..Default::default()
        }
    }

    /// Marks an application failure non-retryable.
    #[must_use]
    pub fn non_retryable(mut self) -> Self {
        if let Some(FailureInfo::ApplicationFailureInfo(info)) = &mut self.info {
            info.non_retryable = true;
        }
        self
    }

    /// Sets the details of an application failure.
    #[must_use]
    pub fn with_details(mut self, details: Payloads) -> Self {
        if let Some(FailureInfo::ApplicationFailureInfo(info)) = &mut self.info {
            info.details = Some(details);
        }
        self
    }

    /// Sets the cause.
    #[must_use]
    pub fn with_cause(mut self, cause: TemporalFailure) -> Self {
        self.cause = Some(Box::new(cause));
        self
    }

    /// Sets the stack trace.
    #[must_use]
    pub fn with_stack_trace(mut self, stack_trace: impl Into<String>) -> Self {
        self.stack_trace = stack_trace.into();
        self
    }

    /// Builds a failure chain from any error and its `source()` chain. A
    /// [`TemporalFailure`] anywhere in the chain is kept as it is; other
    /// errors become application failures whose type is `E`'s short type
    /// name for the outermost error and empty for its sources (Rust does not
    /// know their types).
    pub fn from_error<E: StdError + 'static>(error: &E) -> Self {
        let mut failure = Self::from_dyn_error(error);
        if !(error as &(dyn StdError + 'static)).is::<TemporalFailure>()
            && let Some(FailureInfo::ApplicationFailureInfo(info)) = &mut failure.info
        {
            info.r#type = short_type_name::<E>().to_owned();
        }
        failure
    }

    fn from_dyn_error(error: &(dyn StdError + 'static)) -> Self {
        if let Some(failure) = error.downcast_ref::<TemporalFailure>() {
            return failure.clone();
        }
        let mut failure = Self::application(error.to_string(), "");
        failure.cause = error.source().map(|s| Box::new(Self::from_dyn_error(s)));
        failure
    }

    /// The application failure type name, if this is an application failure.
    pub fn application_type(&self) -> Option<&str> {
        match &self.info {
            Some(FailureInfo::ApplicationFailureInfo(info)) => Some(&info.r#type),
            _ => None,
        }
    }

    /// This failure and its causes, outermost first.
    pub fn chain(&self) -> impl Iterator<Item = &TemporalFailure> {
        std::iter::successors(Some(self), |f| f.cause.as_deref())
    }
}

impl fmt::Display for TemporalFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl StdError for TemporalFailure {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.cause
            .as_deref()
            .map(|c| c as &(dyn StdError + 'static))
    }
}

fn short_type_name<E>() -> &'static str {
    let full = std::any::type_name::<E>();
    let base = full.split('<').next().unwrap_or(full);
    base.rsplit("::").next().unwrap_or(base)
}

/// Converts between [`TemporalFailure`] and the `Failure` protobuf.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FailureConverter {
    encode_common_attributes: bool,
}

/// The JSON object inside `encoded_attributes`; fields sorted as the SDKs
/// write them.
#[derive(Serialize, Deserialize)]
struct EncodedAttributes {
    message: String,
    stack_trace: String,
}

impl FailureConverter {
    /// A converter; with `encode_common_attributes`, messages and stack
    /// traces move into the encoded attributes payload.
    pub fn new(encode_common_attributes: bool) -> Self {
        Self {
            encode_common_attributes,
        }
    }

    /// Whether messages and stack traces are moved into encoded attributes.
    pub fn encodes_common_attributes(&self) -> bool {
        self.encode_common_attributes
    }

    /// A `Failure` message for `failure` and its causes.
    pub fn to_failure(
        &self,
        failure: &TemporalFailure,
        payload_converter: &dyn PayloadConverter,
    ) -> Result<Failure, ConversionError> {
        let mut proto = Failure {
            message: failure.message.clone(),
            source: failure.origin.clone(),
            stack_trace: failure.stack_trace.clone(),
            encoded_attributes: None,
            cause: failure
                .cause
                .as_deref()
                .map(|c| self.to_failure(c, payload_converter).map(Box::new))
                .transpose()?,
            failure_info: failure.info.clone(),
        };
        if self.encode_common_attributes {
            encode_attributes_here(&mut proto, payload_converter)?;
        }
        Ok(proto)
    }

    /// A [`TemporalFailure`] from a `Failure`, with encoded attributes
    /// restored at every level.
    pub fn from_failure(
        &self,
        mut failure: Failure,
        payload_converter: &dyn PayloadConverter,
    ) -> TemporalFailure {
        decode_common_attributes(&mut failure, payload_converter);
        from_proto(failure)
    }
}

fn from_proto(failure: Failure) -> TemporalFailure {
    TemporalFailure {
        message: failure.message,
        stack_trace: failure.stack_trace,
        origin: failure.source,
        info: failure.failure_info,
        cause: failure.cause.map(|c| Box::new(from_proto(*c))),
    }
}

fn encode_attributes_here(
    failure: &mut Failure,
    payload_converter: &dyn PayloadConverter,
) -> Result<(), ConversionError> {
    let attributes = EncodedAttributes {
        message: std::mem::replace(&mut failure.message, ENCODED_FAILURE_MESSAGE.to_owned()),
        stack_trace: std::mem::take(&mut failure.stack_trace),
    };
    failure.encoded_attributes = Some(payload_converter.to_payload(&Value::json(&attributes))?);
    Ok(())
}

/// Moves message and stack trace into `encoded_attributes` at every level of
/// the cause chain that does not have them yet.
pub fn encode_common_attributes(
    failure: &mut Failure,
    payload_converter: &dyn PayloadConverter,
) -> Result<(), ConversionError> {
    if failure.encoded_attributes.is_none() {
        encode_attributes_here(failure, payload_converter)?;
    }
    match failure.cause.as_deref_mut() {
        Some(cause) => encode_common_attributes(cause, payload_converter),
        None => Ok(()),
    }
}

/// Restores message and stack trace from `encoded_attributes` at every level
/// of the cause chain, and removes the attributes it restored from. An
/// attributes payload that cannot be read (still encrypted, not a JSON
/// object) is left in place with the visible message untouched; fields missing from it
/// are left as they are.
pub fn decode_common_attributes(failure: &mut Failure, payload_converter: &dyn PayloadConverter) {
    if let Some(payload) = &failure.encoded_attributes
        && let Ok(Json(serde_json::Value::Object(attrs))) =
            from_payload_as::<Json<serde_json::Value>>(payload_converter, payload)
    {
        if let Some(message) = attrs.get("message").and_then(|m| m.as_str()) {
            failure.message = message.to_owned();
        }
        if let Some(stack) = attrs.get("stack_trace").and_then(|s| s.as_str()) {
            failure.stack_trace = stack.to_owned();
        }
        failure.encoded_attributes = None;
    }
    if let Some(cause) = failure.cause.as_deref_mut() {
        decode_common_attributes(cause, payload_converter);
    }
}

#[cfg(test)]
mod tests {
    use payload_proto::temporal::api::common::v1::Payload;

    use super::*;
    use crate::converter::CompositeConverter;
    use crate::encoding::PayloadExt;

    #[derive(Debug, thiserror::Error)]
    #[error("reading config failed")]
    struct ConfigError {
        #[source]
        source: std::io::Error,
    }

    #[test]
    fn any_error_chain_becomes_a_failure_chain() {
        let err = ConfigError {
            source: std::io::Error::other("disk on fire"),
        };
        let failure = TemporalFailure::from_error(&err);
        let messages: Vec<&str> = failure.chain().map(|f| f.message.as_str()).collect();
        assert_eq!(messages, ["reading config failed", "disk on fire"]);
        assert_eq!(failure.application_type(), Some("ConfigError"));
        assert_eq!(failure.cause.as_ref().unwrap().application_type(), Some(""));
    }

    #[test]
    fn encoded_attributes_round_trip_at_every_level() {
        let conv = CompositeConverter::default();
        let original = TemporalFailure::application("outer", "Outer")
            .with_stack_trace("at outer")
            .with_cause(
                TemporalFailure::application("inner", "Inner").with_stack_trace("at inner"),
            );
        let proto = FailureConverter::new(true)
            .to_failure(&original, &conv)
            .unwrap();
        for level in [&proto, proto.cause.as_deref().unwrap()] {
            assert_eq!(level.message, ENCODED_FAILURE_MESSAGE);
            assert_eq!(level.stack_trace, "");
            assert_eq!(
                level.encoded_attributes.as_ref().unwrap().encoding(),
                Some("json/plain")
            );
        }
        let back = FailureConverter::new(false).from_failure(proto, &conv);
        assert_eq!(back, original);
    }

    #[test]
    fn unreadable_attributes_are_kept_not_lost() {
        let conv = CompositeConverter::default();
        let encrypted = Payload::with_encoding("binary/encrypted", &b"\x01\x02"[..]);
        let mut failure = Failure {
            message: ENCODED_FAILURE_MESSAGE.to_owned(),
            encoded_attributes: Some(encrypted.clone()),
            ..Default::default()
        };
        decode_common_attributes(&mut failure, &conv);
        assert_eq!(failure.message, ENCODED_FAILURE_MESSAGE);
        assert_eq!(failure.encoded_attributes, Some(encrypted));

        let not_an_object = conv.to_payload(&Value::json(&"just a string")).unwrap();
        failure.encoded_attributes = Some(not_an_object.clone());
        decode_common_attributes(&mut failure, &conv);
        assert_eq!(failure.encoded_attributes, Some(not_an_object));
    }
}
