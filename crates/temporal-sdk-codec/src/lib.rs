//! payloadkit's codecs as a [`PayloadCodec`](temporalio_common::data_converters::PayloadCodec)
//! of the official Temporal Rust SDK (`temporalio-sdk` 1.1.1), so a Rust
//! worker encrypts (and compresses) every payload it writes, in the format
//! the SDK samples, the Codec Server and `payloadctl` read.
//!
//! - [`SdkCodec`] wraps any payloadkit
//!   [`PayloadCodec`](payload_converter::PayloadCodec): the
//!   `payload_codecs::AesGcmCodec` over a keyring, a
//!   [`CodecChain`](payload_converter::CodecChain) built with
//!   `payload_codecs::ChainBuilder` (zstd, then AES-256-GCM), or your own.
//! - [`data_converter`] puts it in the SDK's default `DataConverter`, ready
//!   for `ClientOptions::new(namespace).data_converter(…)`; the worker uses
//!   its client's converter.
//! - [`payload_to_sdk`] and [`payload_from_sdk`] convert between our
//!   `Payload` and the SDK's (two prost types of the same protobuf message)
//!   by moving the buffers: no protobuf encoding, no copy of the data.
//! - Errors of our codecs reach the SDK as
//!   `PayloadConversionError::EncodingError` holding an [`SdkCodecError`],
//!   whose message is our codec's (for example `payload 1: unknown key id
//!   …`) and whose source is the typed
//!   [`PayloadCodecError`](payload_converter::PayloadCodecError).
//!
//! The codecs ignore the SDK's serialization context (workflow, activity):
//! the same keyring serves every payload, as in the SDK samples. Their CPU
//! work runs inline in the SDK's future, like the SDK's own codecs.
//!
//! `docs/rust-sdk.md` walks through a worker; `examples/worker.rs` and
//! `examples/starter.rs` are runnable ones.
//!
//! # Examples
//!
//! ```
//! use std::sync::Arc;
//!
//! use payload_codecs::{ChainBuilder, KeyId, Keyring, SecretKey, ZstdCodec};
//! use temporal_sdk_codec::SdkCodec;
//! use temporalio_common::data_converters::{PayloadCodec, SerializationContextData};
//! use temporalio_common::protos::temporal::api::common::v1::Payload;
//!
//! # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
//! // In a worker: `Keyring::load(path, &|name| std::env::var(name).ok())?`.
//! let key = SecretKey::from_bytes(b"test-key-test-key-test-key-test!").expect("32 bytes");
//! let keyring = Arc::new(Keyring::single(KeyId::new("test-key-id")?, key));
//! let codec = SdkCodec::new(
//!     ChainBuilder::new().compress_zstd(ZstdCodec::new()).encrypt(keyring).build(),
//! );
//!
//! let mut plain = Payload::default();
//! plain.metadata.insert("encoding".to_owned(), b"json/plain".to_vec());
//! plain.data = br#""hello""#.to_vec();
//!
//! let context = SerializationContextData::None;
//! let encoded = codec.encode(&context, vec![plain.clone()]).await?;
//! assert_eq!(encoded[0].metadata["encoding"], b"binary/encrypted");
//! assert_eq!(encoded[0].metadata["encryption-key-id"], b"test-key-id");
//!
//! let decoded = codec.decode(&context, encoded).await?;
//! assert_eq!(decoded, [plain]);
//!
//! // For a client and its workers:
//! // ClientOptions::new("default").data_converter(temporal_sdk_codec::data_converter(chain))
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod codec;
mod convert;
mod error;

pub use codec::{SdkCodec, data_converter};
pub use convert::{payload_from_sdk, payload_to_sdk};
pub use error::{Direction, SdkCodecError};
