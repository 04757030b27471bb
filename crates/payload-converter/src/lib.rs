//! Temporal data conversion in Rust, byte-compatible with the official SDKs.
//!
//! - [`converter`]: the payload converters (`binary/null`, `binary/plain`,
//!   `json/protobuf`, `binary/protobuf`, `json/plain`) and the
//!   [`CompositeConverter`] that tries them in the SDKs' order.
//! - [`PayloadCodec`] and [`CodecChain`]: async batch transforms such as
//!   encryption and compression (implementations live in `payload-codecs`);
//!   a [`Budget`] bounds what one call may produce.
//! - [`FailureConverter`]: errors to `Failure` messages and back, with the
//!   optional encoded attributes.
//! - [`VisitPayloads`]: every payload inside `Payloads`, `Failure`, `Header`
//!   and `Memo`, so a codec applies to a whole message.
//! - [`DataConverter`]: all of the above together.
//!
//! # Examples
//!
//! ```
//! use payload_converter::{DataConverter, Json, Value};
//!
//! # tokio_test_block_on(async {
//! let converter = DataConverter::default();
//! let payloads = converter
//!     .to_payloads(&[Value::json(&"hello"), Value::Null, Value::Bytes(b"\x00\x01")])
//!     .await?;
//! let encodings: Vec<_> = payloads
//!     .payloads
//!     .iter()
//!     .map(|p| String::from_utf8_lossy(&p.metadata["encoding"]).into_owned())
//!     .collect();
//! assert_eq!(encodings, ["json/plain", "binary/null", "binary/plain"]);
//!
//! let first = payloads.payloads[..1].to_vec();
//! let back: Vec<Json<String>> = converter
//!     .from_payloads(payload_proto::temporal::api::common::v1::Payloads { payloads: first })
//!     .await?;
//! assert_eq!(back, [Json("hello".to_owned())]);
//! # Ok::<(), payload_converter::DataConverterError>(())
//! # }).unwrap();
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
//! # }
//! ```

mod budget;
pub mod codec;
pub mod converter;
mod data_converter;
pub mod encoding;
mod error;
pub mod failure;
mod json_style;
mod value;
pub mod visit;

pub use budget::{Budget, BudgetError, BytePool, MemoryPool};
pub use codec::{BoxFuture, CodecChain, PayloadCodec};
pub use converter::{
    CompositeConverter, EncodingPayloadConverter, PayloadConverter, from_payload_as,
};
pub use data_converter::DataConverter;
pub use encoding::PayloadExt;
pub use error::{
    BoxError, CodecErrorKind, ConversionError, CountMismatch, DataConverterError,
    PayloadCodecError, error_text,
};
pub use failure::{FailureConverter, TemporalFailure};
pub use json_style::JsonStyle;
pub use value::{Decoded, FromPayload, Json, JsonValue, Proto, ProtoMessage, Value};
pub use visit::VisitPayloads;
