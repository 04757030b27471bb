//! The storage driver trait and its errors.

use payload_converter::{BoxFuture, Budget, BudgetError, CodecErrorKind};
use payload_proto::temporal::api::common::v1::Payload;

use crate::key::StoreTarget;
use crate::reference::Claim;

/// Stores payloads somewhere outside the history and gets them back.
///
/// Both calls take a batch and answer one item per input, in order, or an
/// error for the batch.
pub trait StorageDriver: Send + Sync + std::fmt::Debug {
    /// The name written into references (`aws.s3driver`); references are
    /// routed back to the driver by it.
    fn name(&self) -> &str;

    /// Stores `payloads` (already through the client's codecs) for
    /// `target`; one claim per payload.
    fn store<'a>(
        &'a self,
        target: &'a StoreTarget,
        payloads: &'a [Payload],
    ) -> BoxFuture<'a, Result<Vec<Claim>, StorageError>>;

    /// Fetches the payloads that `claims` name, verified against their
    /// hashes; each one's size is charged to `budget` before it is read.
    fn retrieve<'a>(
        &'a self,
        claims: &'a [Claim],
        budget: &'a Budget,
    ) -> BoxFuture<'a, Result<Vec<Payload>, StorageError>>;

    /// Counts of what the driver did since it was made, if it keeps them.
    fn stats(&self) -> Option<DriverStats> {
        None
    }
}

/// What a driver did since it was made: objects by operation and outcome,
/// and bytes moved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DriverStats {
    /// Objects stored.
    pub stored: u64,
    /// Objects fetched and verified.
    pub retrieved: u64,
    /// Fetches of objects the store does not have.
    pub missing: u64,
    /// Fetched objects whose SHA-256 (or content) was wrong.
    pub corrupt: u64,
    /// Operations that failed because the store could not be reached.
    pub unavailable: u64,
    /// Other refusals (too large, a bad claim).
    pub refused: u64,
    /// Bytes stored.
    pub bytes_stored: u64,
    /// Bytes fetched.
    pub bytes_retrieved: u64,
}

/// Storing or fetching a payload failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The store has no object under the claim's key.
    #[error(
        "the stored payload {key:?} is not in {store}: it was deleted (a lifecycle rule?) or the reference points elsewhere"
    )]
    Missing {
        /// The store (driver and bucket).
        store: String,
        /// The object key.
        key: String,
    },
    /// The object's bytes do not match the reference's hash, or are not a
    /// payload: nothing of it is used.
    #[error("the stored payload {key:?} in {store} failed its integrity check: {reason}")]
    Corrupt {
        /// The store (driver and bucket).
        store: String,
        /// The object key.
        key: String,
        /// What did not match.
        reason: String,
    },
    /// The store could not be reached or refused the request (after
    /// retries); trying again later may work.
    #[error("the store {store} is unavailable: {reason}")]
    Unavailable {
        /// The store (driver and bucket).
        store: String,
        /// Why.
        reason: String,
    },
    /// A payload is larger than the driver's cap.
    #[error(
        "a stored payload of {size} bytes is over the limit of {limit} bytes (storage max_object_bytes)"
    )]
    TooLarge {
        /// Its size.
        size: u64,
        /// The cap.
        limit: u64,
    },
    /// A reference or claim is malformed or names what this driver cannot
    /// read.
    #[error("invalid storage reference: {0}")]
    InvalidReference(String),
    /// No configured driver has the reference's driver name.
    #[error(
        "the reference names the storage driver {0:?}, which is not configured here (configured: {1})"
    )]
    UnknownDriver(String, String),
    /// `/download` was given a payload that is not a reference (its index).
    #[error("not an external storage reference; download takes references only")]
    NotAReference(usize),
    /// The request's memory budget refused the object, or the request was
    /// cancelled.
    #[error(transparent)]
    Budget(#[from] BudgetError),
}

impl StorageError {
    /// The codec error kind: the input's fault (a bad or dangling
    /// reference), a limit, or the environment's.
    pub fn kind(&self) -> CodecErrorKind {
        match self {
            StorageError::Missing { .. }
            | StorageError::Corrupt { .. }
            | StorageError::InvalidReference(_)
            | StorageError::UnknownDriver(..)
            | StorageError::NotAReference(_) => CodecErrorKind::InvalidPayload,
            StorageError::TooLarge { .. } => CodecErrorKind::LimitExceeded,
            StorageError::Unavailable { .. } => CodecErrorKind::Internal,
            StorageError::Budget(e) => e.kind(),
        }
    }
}
