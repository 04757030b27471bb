//! The payload codecs Temporal users deploy, byte-compatible with the
//! official SDK samples, so a Go or Python worker can switch to them (or a
//! codec server can be put in front of existing data) without re-encrypting
//! anything.
//!
//! - [`AesGcmCodec`]: AES-256-GCM in the samples' `binary/encrypted` format
//!   (12-byte random nonce ‖ ciphertext ‖ 16-byte tag of the whole serialized
//!   inner payload, key id in `encryption-key-id` metadata), with a
//!   [`Keyring`] of many keys and one active, for rotation.
//! - [`KeyringFile`]: the keyring TOML file (`docs/keyring.md`) shared by the
//!   codec server and the CLI: load, add, generate, rotate, retire, save.
//! - [`ZstdCodec`] (`binary/zstd`) and [`ZlibCodec`] (`binary/zlib`, the Go
//!   SDK's format): compression that is skipped when it does not help, with
//!   decompression bounded so that a bomb is an error, not an out-of-memory.
//! - [`ChainBuilder`]: codecs in encode order ("compress, then encrypt"),
//!   built into the SDK-ordered [`CodecChain`](payload_converter::CodecChain).
//!
//! Every codec decodes only its own encoding and passes other payloads
//! through untouched. On encode, encryption encrypts every payload;
//! compression leaves a payload as it is when compressing would not make it
//! smaller. Bad input never panics: each failure is a [`CodecError`],
//! delivered as a [`PayloadCodecError`](payload_converter::PayloadCodecError)
//! with its [`CodecErrorKind`](payload_converter::CodecErrorKind) and the
//! payload's index.
//!
//! The codecs do their CPU work inline in the returned future; callers with
//! large batches decide whether to move it to a blocking thread.
//!
//! # Examples
//!
//! ```
//! use std::sync::Arc;
//!
//! use payload_codecs::{AesGcmCodec, KeyId, Keyring, SecretKey};
//! use payload_converter::{PayloadCodec, PayloadExt};
//! use payload_proto::temporal::api::common::v1::Payload;
//!
//! # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
//! // Any 32 bytes, e.g. from a secret store or a keyring file.
//! let key = SecretKey::from_bytes(b"test-key-test-key-test-key-test!").expect("32 bytes");
//! let keyring = Arc::new(Keyring::single(KeyId::new("test-key-id")?, key));
//! let codec = AesGcmCodec::new(keyring);
//!
//! let plain = Payload::with_encoding("json/plain", &br#""hello""#[..]);
//! let encrypted = codec.encode(vec![plain.clone()]).await?;
//! assert_eq!(encrypted[0].encoding(), Some("binary/encrypted"));
//! assert_eq!(encrypted[0].metadata_str("encryption-key-id"), Some("test-key-id"));
//!
//! let decrypted = codec.decode(encrypted).await?;
//! assert_eq!(decrypted, [plain]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod aes_gcm;
mod batch;
mod chain;
mod compressed;
mod data_key;
mod error;
mod flate;
mod gzip;
mod keyring;
mod zlib;
mod zstd;

#[cfg(test)]
mod test_support;

pub use crate::flate::{DEFAULT_FLATE_LEVEL, FlateCodec, Framing, Gzip, Zlib};
pub use crate::gzip::{ENCODING_GZIP, GzipCodec};
pub use crate::zlib::{DEFAULT_ZLIB_LEVEL, ENCODING_ZLIB, ZlibCodec};
pub use crate::zstd::{DEFAULT_ZSTD_LEVEL, DEFAULT_ZSTD_MIN_SIZE, ENCODING_ZSTD, ZstdCodec};
pub use aes_gcm::{
    AesGcmCodec, ENCODING_ENCRYPTED, METADATA_ENCRYPTION_DEK, METADATA_ENCRYPTION_KEY_ID,
};
pub use chain::{ChainBuilder, ChainError, CodecName, UnknownCodec};
pub use compressed::DEFAULT_MAX_DECODED_SIZE;
pub use data_key::{DataKey, NONCE_BYTES, OpenError, TAG_LEN};
pub use error::{CodecError, KeyIdError, KeyringError, KeyringErrorKind, shown_key_id};
pub use keyring::{
    INTERRUPTED_AFTER, KEY_LEN, KeyId, KeySource, Keyring, KeyringFile, MAX_KEY_ID_LEN, SecretKey,
};
