//! A [`StorageDriver`] on an object store (S3, GCS, the local filesystem),
//! with the SDK drivers' claims: content-addressed keys, the SHA-256 of
//! the serialized payload checked on every download, existence checked
//! before every upload.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{StreamExt as _, TryStreamExt as _};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt as _};
use payload_converter::{BoxFuture, Budget};
use payload_proto::temporal::api::common::v1::Payload;
use prost::Message as _;

use crate::driver::{DriverStats, StorageDriver, StorageError};
use crate::key::{StoreTarget, object_key};
use crate::reference::Claim;

/// The limits of one driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DriverLimits {
    /// The largest serialized payload stored or fetched.
    pub max_object_bytes: u64,
    /// Objects moved at once by one batch.
    pub concurrency: usize,
    /// Longest one object's upload or download may take, retries included.
    pub timeout: Duration,
}

impl Default for DriverLimits {
    fn default() -> Self {
        Self {
            max_object_bytes: 50 * 1024 * 1024,
            concurrency: 16,
            timeout: Duration::from_secs(30),
        }
    }
}

/// A driver that keeps payloads in an [`ObjectStore`].
#[derive(Debug)]
pub struct ObjectStoreDriver {
    name: String,
    store: Arc<dyn ObjectStore>,
    /// Written into claims and checked on read (none for a filesystem).
    bucket: Option<String>,
    /// "driver bucket b" / "driver at /path", for errors.
    label: String,
    limits: DriverLimits,
    counts: Counts,
}

/// [`DriverStats`] as atomics (touched once per object, not per request).
#[derive(Debug, Default)]
struct Counts {
    stored: AtomicU64,
    retrieved: AtomicU64,
    missing: AtomicU64,
    corrupt: AtomicU64,
    unavailable: AtomicU64,
    refused: AtomicU64,
    bytes_stored: AtomicU64,
    bytes_retrieved: AtomicU64,
}

impl Counts {
    /// Counts one object's final outcome (after verification, for a
    /// retrieve).
    fn object<T>(&self, operation: Operation, outcome: &Result<T, StorageError>) {
        let count = match (operation, outcome) {
            (Operation::Store, Ok(_)) => &self.stored,
            (Operation::Retrieve, Ok(_)) => &self.retrieved,
            (_, Err(StorageError::Missing { .. })) => &self.missing,
            (_, Err(StorageError::Unavailable { .. })) => &self.unavailable,
            (_, Err(StorageError::Corrupt { .. })) => &self.corrupt,
            (_, Err(_)) => &self.refused,
        };
        count.fetch_add(1, Ordering::Relaxed);
    }
}

/// What one operation did, for the metrics.
#[derive(Clone, Copy)]
enum Operation {
    Store,
    Retrieve,
}

impl Operation {
    fn label(self) -> &'static str {
        match self {
            Operation::Store => "store",
            Operation::Retrieve => "retrieve",
        }
    }
}

impl ObjectStoreDriver {
    /// A driver named `name` on `store`; `bucket` goes into claims, `label`
    /// says where the objects are in errors.
    pub fn new(
        name: impl Into<String>,
        store: Arc<dyn ObjectStore>,
        bucket: Option<String>,
        label: impl Into<String>,
        limits: DriverLimits,
    ) -> Self {
        Self {
            name: name.into(),
            store,
            bucket,
            label: label.into(),
            limits,
            counts: Counts::default(),
        }
    }

    /// The driver's limits.
    pub fn limits(&self) -> DriverLimits {
        self.limits
    }

    fn unavailable(&self, err: &object_store::Error) -> StorageError {
        StorageError::Unavailable {
            store: self.label.clone(),
            reason: payload_converter::error_text(err),
        }
    }

    async fn timed<T>(
        &self,
        what: &str,
        work: impl Future<Output = Result<T, StorageError>>,
    ) -> Result<T, StorageError> {
        tokio::time::timeout(self.limits.timeout, work)
            .await
            .unwrap_or_else(|_| {
                Err(StorageError::Unavailable {
                    store: self.label.clone(),
                    reason: format!(
                        "{what} took longer than {} s (storage timeout_secs)",
                        self.limits.timeout.as_secs()
                    ),
                })
            })
    }

    async fn store_one(
        &self,
        target: &StoreTarget,
        payload: &Payload,
    ) -> Result<Claim, StorageError> {
        let bytes = payload.encode_to_vec();
        let size = bytes.len() as u64;
        if size > self.limits.max_object_bytes {
            return Err(StorageError::TooLarge {
                size,
                limit: self.limits.max_object_bytes,
            });
        }
        let hex = sha256_hex(&bytes);
        let key = object_key(target, &hex);
        let path = Path::parse(&key).map_err(|e| {
            StorageError::InvalidReference(format!("cannot store under the key {key:?}: {e}"))
        })?;
        let started = Instant::now();
        let uploaded = self
            .timed("storing a payload", async {
                match self.store.head(&path).await {
                    // Same key, same hash: the same bytes are there.
                    Ok(_) => Ok(false),
                    Err(object_store::Error::NotFound { .. }) => self
                        .store
                        .put(&path, Bytes::from(bytes).into())
                        .await
                        .map(|_| true)
                        .map_err(|e| self.unavailable(&e)),
                    Err(e) => Err(self.unavailable(&e)),
                }
            })
            .await;
        self.record(Operation::Store, started, size, &uploaded);
        self.counts.object(Operation::Store, &uploaded);
        let outcome = if matches!(uploaded, Ok(false)) {
            "exists"
        } else {
            "uploaded"
        };
        uploaded?;
        tracing::debug!(driver = %self.name, %key, size, outcome, "stored a payload");
        let mut claim = std::collections::BTreeMap::new();
        if let Some(bucket) = &self.bucket {
            claim.insert("bucket".to_owned(), bucket.clone());
        }
        claim.insert("key".to_owned(), key);
        claim.insert("hash_algorithm".to_owned(), "sha256".to_owned());
        claim.insert("hash_value".to_owned(), hex);
        Ok(Claim::new(claim))
    }

    async fn retrieve_one(&self, claim: &Claim, budget: &Budget) -> Result<Payload, StorageError> {
        let key = claim
            .get("key")
            .ok_or_else(|| StorageError::InvalidReference("the claim has no \"key\"".to_owned()))?;
        if let (Some(ours), Some(theirs)) = (&self.bucket, claim.get("bucket"))
            && ours != theirs
        {
            return Err(StorageError::InvalidReference(format!(
                "the claim names the bucket {theirs:?}, but this driver reads the bucket {ours:?}"
            )));
        }
        let (algorithm, expected) = claim.hash().ok_or_else(|| {
            StorageError::InvalidReference(
                "the claim has no content hash (hash_algorithm and hash_value)".to_owned(),
            )
        })?;
        if algorithm != "sha256" {
            return Err(StorageError::InvalidReference(format!(
                "the claim's hash algorithm is {algorithm:?}; only sha256 is supported"
            )));
        }
        let path = Path::parse(key).map_err(|e| {
            StorageError::InvalidReference(format!("the claim's key {key:?} is not usable: {e}"))
        })?;
        let started = Instant::now();
        let fetched = self
            .timed("fetching a payload", async {
                let result = self.store.get(&path).await.map_err(|e| match e {
                    object_store::Error::NotFound { .. } => StorageError::Missing {
                        store: self.label.clone(),
                        key: key.to_owned(),
                    },
                    e => self.unavailable(&e),
                })?;
                let size = result.meta.size;
                if size > self.limits.max_object_bytes {
                    return Err(StorageError::TooLarge {
                        size,
                        limit: self.limits.max_object_bytes,
                    });
                }
                budget.charge(usize::try_from(size).unwrap_or(usize::MAX))?;
                result.bytes().await.map_err(|e| self.unavailable(&e))
            })
            .await;
        let size = fetched.as_ref().map_or(0, |b| b.len() as u64);
        self.record(Operation::Retrieve, started, size, &fetched);
        // The object counts once it is verified: a transfer that worked may
        // still bring a corrupt object.
        let payload = fetched.and_then(|bytes| self.verified(key, expected, bytes));
        self.counts.object(Operation::Retrieve, &payload);
        payload
    }

    /// The payload in `bytes`, fetched from `key`, if their SHA-256 is
    /// `expected` and they are a serialized payload.
    fn verified(&self, key: &str, expected: &str, bytes: Bytes) -> Result<Payload, StorageError> {
        let corrupt = |reason: String| StorageError::Corrupt {
            store: self.label.clone(),
            key: key.to_owned(),
            reason,
        };
        let actual = sha256_hex(&bytes);
        if !actual.eq_ignore_ascii_case(expected) {
            metrics::counter!("payload_storage_integrity_failures_total", "driver" => self.name.clone())
                .increment(1);
            return Err(corrupt(format!("expected sha256 {expected}, got {actual}")));
        }
        Payload::decode(bytes).map_err(|e| {
            corrupt(format!(
                "its hash matches but it is not a serialized payload ({e})"
            ))
        })
    }

    fn record<T>(
        &self,
        operation: Operation,
        started: Instant,
        bytes: u64,
        outcome: &Result<T, StorageError>,
    ) {
        let driver = self.name.clone();
        let op = operation.label();
        let result = match outcome {
            Ok(_) => "ok",
            Err(StorageError::Missing { .. }) => "missing",
            Err(StorageError::Unavailable { .. }) => "unavailable",
            Err(StorageError::TooLarge { .. }) => "too_large",
            Err(_) => "refused",
        };
        if outcome.is_ok() {
            let total = match operation {
                Operation::Store => &self.counts.bytes_stored,
                Operation::Retrieve => &self.counts.bytes_retrieved,
            };
            total.fetch_add(bytes, Ordering::Relaxed);
        }
        metrics::counter!("payload_storage_operations_total", "driver" => driver.clone(), "operation" => op, "result" => result)
            .increment(1);
        if outcome.is_ok() {
            metrics::counter!("payload_storage_bytes_total", "driver" => driver.clone(), "operation" => op)
                .increment(bytes);
        }
        metrics::histogram!("payload_storage_seconds", "driver" => driver, "operation" => op)
            .record(started.elapsed().as_secs_f64());
    }
}

/// Lower-case hex SHA-256.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes))
}

impl StorageDriver for ObjectStoreDriver {
    fn stats(&self) -> Option<DriverStats> {
        let c = &self.counts;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Some(DriverStats {
            stored: get(&c.stored),
            retrieved: get(&c.retrieved),
            missing: get(&c.missing),
            corrupt: get(&c.corrupt),
            unavailable: get(&c.unavailable),
            refused: get(&c.refused),
            bytes_stored: get(&c.bytes_stored),
            bytes_retrieved: get(&c.bytes_retrieved),
        })
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn store<'a>(
        &'a self,
        target: &'a StoreTarget,
        payloads: &'a [Payload],
    ) -> BoxFuture<'a, Result<Vec<Claim>, StorageError>> {
        Box::pin(
            futures::stream::iter(payloads.iter().map(|p| self.store_one(target, p)))
                .buffered(self.limits.concurrency.max(1))
                .try_collect(),
        )
    }

    fn retrieve<'a>(
        &'a self,
        claims: &'a [Claim],
        budget: &'a Budget,
    ) -> BoxFuture<'a, Result<Vec<Payload>, StorageError>> {
        Box::pin(
            futures::stream::iter(claims.iter().map(|c| self.retrieve_one(c, budget)))
                .buffered(self.limits.concurrency.max(1))
                .try_collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;
    use payload_converter::BudgetError;

    fn driver() -> (ObjectStoreDriver, Arc<InMemory>) {
        let memory = Arc::new(InMemory::new());
        let driver = ObjectStoreDriver::new(
            "aws.s3driver",
            memory.clone(),
            Some("b".to_owned()),
            "aws.s3driver bucket b",
            DriverLimits {
                max_object_bytes: 1000,
                ..DriverLimits::default()
            },
        );
        (driver, memory)
    }

    fn payload(data: &[u8]) -> Payload {
        Payload {
            metadata: [("encoding".to_owned(), Bytes::from_static(b"binary/plain"))].into(),
            data: Bytes::copy_from_slice(data),
            external_payloads: vec![],
        }
    }

    #[tokio::test]
    async fn stored_payloads_come_back_verified() {
        let (driver, _) = driver();
        let payloads = vec![payload(b"one"), payload(b"two"), payload(b"one")];
        let claims = driver
            .store(&StoreTarget::namespace("default"), &payloads)
            .await
            .unwrap();
        assert_eq!(claims.len(), 3);
        assert_eq!(claims[0], claims[2], "the same bytes have the same key");
        let key = claims[0].get("key").unwrap();
        assert!(key.starts_with("v0/ns/default/wt/null/wi/null/ri/null/d/sha256/"));
        assert_eq!(claims[0].get("bucket"), Some("b"));
        let back = driver
            .retrieve(&claims, &Budget::unlimited())
            .await
            .unwrap();
        assert_eq!(back, payloads);
    }

    #[tokio::test]
    async fn a_tampered_object_is_refused() {
        let (driver, memory) = driver();
        let claims = driver
            .store(&StoreTarget::Unknown, &[payload(b"genuine")])
            .await
            .unwrap();
        let path = Path::parse(claims[0].get("key").unwrap()).unwrap();
        memory
            .put(&path, payload(b"forged").encode_to_vec().into())
            .await
            .unwrap();
        let err = driver
            .retrieve(&claims, &Budget::unlimited())
            .await
            .unwrap_err();
        assert!(matches!(err, StorageError::Corrupt { .. }), "{err}");
    }

    #[tokio::test]
    async fn missing_objects_limits_and_bad_claims_are_typed_errors() {
        let (driver, _) = driver();
        let claims = driver
            .store(&StoreTarget::Unknown, &[payload(b"x")])
            .await
            .unwrap();
        let mut entries = claims[0].entries().clone();
        entries.insert("key".to_owned(), "v0/d/sha256/gone".to_owned());
        let err = driver
            .retrieve(&[Claim::new(entries.clone())], &Budget::unlimited())
            .await
            .unwrap_err();
        assert!(matches!(err, StorageError::Missing { .. }), "{err}");

        entries.insert("bucket".to_owned(), "other".to_owned());
        let err = driver
            .retrieve(&[Claim::new(entries)], &Budget::unlimited())
            .await
            .unwrap_err();
        assert!(matches!(err, StorageError::InvalidReference(_)), "{err}");

        let err = driver
            .store(&StoreTarget::Unknown, &[payload(&[7; 2000])])
            .await
            .unwrap_err();
        assert!(matches!(err, StorageError::TooLarge { .. }), "{err}");

        let err = driver.retrieve(&claims, &Budget::new(2)).await.unwrap_err();
        assert!(
            matches!(err, StorageError::Budget(BudgetError::Exceeded { .. })),
            "{err}"
        );
    }
}
