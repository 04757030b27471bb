//! The storage stage: a [`PayloadCodec`] around the client's codecs that
//! offloads after them on encode and resolves before them on decode, in the
//! SDKs' order.
//!
//! Encode: the inner codecs run, then every payload whose serialized size
//! is at least the threshold is stored and replaced by a reference (which
//! does not go through the codecs).
//!
//! Decode: references that went through a codec (marked) are decoded to
//! plain references first; references are then fetched (unless
//! [`Resolve::Preserve`]) and everything that is not a reference goes
//! through the inner codecs.

use std::collections::BTreeMap;
use std::sync::Arc;

use payload_converter::{BoxFuture, Budget, CodecErrorKind, PayloadCodec, PayloadCodecError};
use payload_proto::temporal::api::common::v1::Payload;
use prost::Message as _;

use crate::driver::{DriverStats, StorageDriver, StorageError};
use crate::key::StoreTarget;
use crate::reference::{REFERENCE_MARKER_KEY, StorageReference, has_marker, is_reference};

/// The default threshold: payloads of at least 256 KiB are offloaded.
pub const DEFAULT_THRESHOLD: usize = 256 * 1024;

/// The drivers and the offload threshold.
#[derive(Debug)]
pub struct ExternalStorage {
    /// The first one stores; all of them resolve, by name.
    drivers: Vec<Arc<dyn StorageDriver>>,
    threshold: usize,
}

impl ExternalStorage {
    /// Storage with one driver and the default threshold.
    pub fn new(driver: Arc<dyn StorageDriver>) -> Self {
        Self {
            drivers: vec![driver],
            threshold: DEFAULT_THRESHOLD,
        }
    }

    /// Payloads whose serialized size is at least `bytes` are offloaded.
    #[must_use]
    pub fn with_threshold(mut self, bytes: usize) -> Self {
        self.threshold = bytes;
        self
    }

    /// Adds a driver that only resolves references (one written by another
    /// writer, or an older store).
    #[must_use]
    pub fn with_reader(mut self, driver: Arc<dyn StorageDriver>) -> Self {
        self.drivers.push(driver);
        self
    }

    /// Each driver's name and counts (drivers that keep counts).
    pub fn driver_stats(&self) -> Vec<(&str, DriverStats)> {
        self.drivers
            .iter()
            .filter_map(|d| d.stats().map(|s| (d.name(), s)))
            .collect()
    }

    /// The offload threshold in bytes.
    pub fn threshold(&self) -> usize {
        self.threshold
    }

    fn driver(&self, name: &str) -> Result<&Arc<dyn StorageDriver>, StorageError> {
        self.drivers
            .iter()
            .find(|d| d.name() == name)
            .ok_or_else(|| {
                let known: Vec<&str> = self.drivers.iter().map(|d| d.name()).collect();
                StorageError::UnknownDriver(name.to_owned(), known.join(", "))
            })
    }

    /// Replaces every payload of at least the threshold by a reference.
    pub async fn offload(
        &self,
        target: &StoreTarget,
        mut payloads: Vec<Payload>,
    ) -> Result<Vec<Payload>, PayloadCodecError> {
        let large: Vec<(usize, usize)> = payloads
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                let size = p.encoded_len();
                (size >= self.threshold).then_some((i, size))
            })
            .collect();
        if large.is_empty() {
            return Ok(payloads);
        }
        let driver = &self.drivers[0];
        // Moved out, not copied: their places get the references.
        let batch: Vec<Payload> = large
            .iter()
            .map(|&(i, _)| std::mem::take(&mut payloads[i]))
            .collect();
        let claims = driver
            .store(target, &batch)
            .await
            .map_err(|e| codec_error(e, None))?;
        check_count(claims.len(), batch.len())?;
        for (&(index, size), claim) in large.iter().zip(claims) {
            payloads[index] = StorageReference {
                driver_name: driver.name().to_owned(),
                claim,
                size_bytes: Some(size as u64),
            }
            .to_payload();
        }
        Ok(payloads)
    }

    /// Replaces every reference among `payloads` by what it points to; the
    /// fetched bytes are charged to `budget`.
    pub async fn resolve(
        &self,
        mut payloads: Vec<Payload>,
        budget: &Budget,
    ) -> Result<Vec<Payload>, PayloadCodecError> {
        // Batches by driver, in the order they first appear.
        let mut batches: BTreeMap<String, (Vec<usize>, Vec<crate::Claim>)> = BTreeMap::new();
        for (index, payload) in payloads.iter().enumerate() {
            let reference = StorageReference::from_payload(payload).map_err(|e| {
                codec_error(StorageError::InvalidReference(e.to_string()), Some(index))
            })?;
            if let Some(reference) = reference {
                let batch = batches.entry(reference.driver_name).or_default();
                batch.0.push(index);
                batch.1.push(reference.claim);
            }
        }
        let fetches = batches
            .into_iter()
            .map(|(name, (indices, claims))| async move {
                let driver = self
                    .driver(&name)
                    .map_err(|e| codec_error(e, indices.first().copied()))?;
                let fetched = driver
                    .retrieve(&claims, budget)
                    .await
                    .map_err(|e| codec_error(e, None))?;
                check_count(fetched.len(), claims.len())?;
                Ok::<_, PayloadCodecError>((indices, fetched))
            });
        for (indices, fetched) in futures::future::try_join_all(fetches).await? {
            for (index, payload) in indices.into_iter().zip(fetched) {
                payloads[index] = payload;
            }
        }
        Ok(payloads)
    }
}

fn codec_error(err: StorageError, index: Option<usize>) -> PayloadCodecError {
    let error = PayloadCodecError::new(err.kind(), err);
    match index {
        Some(i) => error.at_index(i),
        None => error,
    }
}

fn check_count(got: usize, expected: usize) -> Result<(), PayloadCodecError> {
    if got == expected {
        Ok(())
    } else {
        Err(PayloadCodecError::new(
            CodecErrorKind::Contract,
            format!("a storage driver answered {got} items for {expected}"),
        ))
    }
}

/// What decoding does with references.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolve {
    /// Fetch them (the SDKs, `temporal workflow show`).
    Always,
    /// Leave them as they are (the Web UI's `preserveStorageRefs=true`).
    Preserve,
    /// Every payload must be a reference (a Codec Server's `/download`).
    Only,
}

/// The client's codecs with external storage around them.
#[derive(Clone, Debug)]
pub struct StorageCodec {
    inner: Arc<dyn PayloadCodec>,
    storage: Arc<ExternalStorage>,
    target: StoreTarget,
}

impl StorageCodec {
    /// `inner` (the client's codec chain) with `storage` after it on encode
    /// and before it on decode; objects are stored without a target.
    pub fn new(inner: Arc<dyn PayloadCodec>, storage: Arc<ExternalStorage>) -> Self {
        Self {
            inner,
            storage,
            target: StoreTarget::Unknown,
        }
    }

    /// The same codec storing objects for `target` (which decides their key).
    #[must_use]
    pub fn for_target(&self, target: StoreTarget) -> Self {
        Self {
            target,
            ..self.clone()
        }
    }

    /// The storage.
    pub fn storage(&self) -> &ExternalStorage {
        &self.storage
    }

    /// Encodes with the inner codecs, then offloads.
    pub async fn encode_with(
        &self,
        payloads: Vec<Payload>,
        budget: &Budget,
    ) -> Result<Vec<Payload>, PayloadCodecError> {
        let encoded = self.inner.encode_within(payloads, budget).await?;
        self.storage.offload(&self.target, encoded).await
    }

    /// Decodes: marked references to plain ones, then references as
    /// `resolve` says, then the inner codecs on everything else.
    pub async fn decode_with(
        &self,
        payloads: Vec<Payload>,
        budget: &Budget,
        resolve: Resolve,
    ) -> Result<Vec<Payload>, PayloadCodecError> {
        let mut payloads = self.unmark(payloads, budget).await?;
        if resolve == Resolve::Only
            && let Some(index) = payloads.iter().position(|p| !is_reference(p))
        {
            return Err(codec_error(StorageError::NotAReference(index), Some(index)));
        }
        if resolve != Resolve::Preserve {
            payloads = self.storage.resolve(payloads, budget).await?;
        }
        // The inner codecs see what is not a reference, in one batch.
        let (indices, batch): (Vec<usize>, Vec<Payload>) = payloads
            .iter_mut()
            .enumerate()
            .filter(|(_, p)| !is_reference(p))
            .map(|(i, p)| (i, std::mem::take(p)))
            .unzip();
        if batch.is_empty() {
            return Ok(payloads);
        }
        let decoded = self.inner.decode_within(batch, budget).await?;
        check_count(decoded.len(), indices.len())?;
        for (index, payload) in indices.into_iter().zip(decoded) {
            payloads[index] = payload;
        }
        Ok(payloads)
    }

    /// References that went through the client's codecs, decoded back to
    /// plain references (their size details kept).
    async fn unmark(
        &self,
        mut payloads: Vec<Payload>,
        budget: &Budget,
    ) -> Result<Vec<Payload>, PayloadCodecError> {
        let (indices, batch): (Vec<usize>, Vec<Payload>) = payloads
            .iter()
            .enumerate()
            .filter(|(_, p)| has_marker(p))
            .map(|(i, p)| {
                let mut encoded = p.clone();
                encoded.metadata.remove(REFERENCE_MARKER_KEY);
                encoded.external_payloads.clear();
                (i, encoded)
            })
            .unzip();
        if batch.is_empty() {
            return Ok(payloads);
        }
        let decoded = self.inner.decode_within(batch, budget).await?;
        check_count(decoded.len(), indices.len())?;
        for (index, mut reference) in indices.into_iter().zip(decoded) {
            if !is_reference(&reference) {
                return Err(codec_error(
                    StorageError::InvalidReference(
                        "a payload marked as an encoded reference did not decode to a reference; \
                         is the codec that wrote it configured?"
                            .to_owned(),
                    ),
                    Some(index),
                ));
            }
            if reference.external_payloads.is_empty() {
                reference.external_payloads = payloads[index].external_payloads.clone();
            }
            payloads[index] = reference;
        }
        Ok(payloads)
    }
}

impl PayloadCodec for StorageCodec {
    fn name(&self) -> &str {
        "external-storage"
    }

    fn encode(
        &self,
        payloads: Vec<Payload>,
    ) -> BoxFuture<'_, payload_converter::codec::CodecResult> {
        Box::pin(async move { self.encode_with(payloads, &Budget::unlimited()).await })
    }

    fn decode(
        &self,
        payloads: Vec<Payload>,
    ) -> BoxFuture<'_, payload_converter::codec::CodecResult> {
        Box::pin(async move {
            self.decode_with(payloads, &Budget::unlimited(), Resolve::Always)
                .await
        })
    }

    fn encode_within<'a>(
        &'a self,
        payloads: Vec<Payload>,
        budget: &'a Budget,
    ) -> BoxFuture<'a, payload_converter::codec::CodecResult> {
        Box::pin(self.encode_with(payloads, budget))
    }

    fn decode_within<'a>(
        &'a self,
        payloads: Vec<Payload>,
        budget: &'a Budget,
    ) -> BoxFuture<'a, payload_converter::codec::CodecResult> {
        Box::pin(self.decode_with(payloads, budget, Resolve::Always))
    }
}
