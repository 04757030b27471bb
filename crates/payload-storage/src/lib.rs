//! External payload storage (the claim check) for Temporal payloads,
//! wire-compatible with the official SDKs: large payloads go to an object
//! store and a small reference stays in the history.
//!
//! - [`reference`](mod@reference): the reference payload in every form the SDKs write or
//!   have written;
//! - [`key`]: the object key layout of the SDKs' S3 and GCS drivers;
//! - [`StorageDriver`] and [`ObjectStoreDriver`] (S3, GCS, a local
//!   directory) with SHA-256 verification, existence checks, size caps,
//!   bounded concurrency, timeouts and retries;
//! - [`StorageCodec`]: the stage that offloads after the client's codecs on
//!   encode and resolves before them on decode, usable wherever a
//!   [`PayloadCodec`](payload_converter::PayloadCodec) is (a
//!   [`DataConverter`](payload_converter::DataConverter), a Codec Server);
//! - [`StorageSettings`]: a driver described in configuration;
//! - [`AwsProfile`]: the shared AWS profile files, for the credentials of
//!   the S3 driver (and of AWS KMS in payload-kms, through the same lookup).
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use payload_converter::{CodecChain, DataConverter};
//! use payload_storage::{DriverKind, StorageCodec, StorageSettings};
//!
//! let mut settings = StorageSettings::new(DriverKind::S3);
//! settings.bucket = Some("temporal-payloads".to_owned());
//! let lookup = |name: &str| std::env::var(name).ok();
//! let storage = settings.build(&lookup, &|path| path.to_path_buf())?;
//! let codec = StorageCodec::new(Arc::new(CodecChain::default()), Arc::new(storage));
//! let converter = DataConverter::default().with_codec(Arc::new(codec));
//! # let _ = converter;
//! # Ok(())
//! # }
//! ```

pub mod aws_profile;
mod codec;
mod driver;
mod http;
pub mod key;
mod object;
pub mod reference;
mod settings;

pub use aws_profile::{AwsProfile, ProfileError};
pub use codec::{DEFAULT_THRESHOLD, ExternalStorage, Resolve, StorageCodec};
pub use driver::{DriverStats, StorageDriver, StorageError};
pub use key::{Execution, StoreTarget};
pub use object::{DriverLimits, ObjectStoreDriver};
pub use reference::{Claim, ReferenceError, StorageReference};
pub use settings::{DriverKind, SettingsError, StorageSettings};
