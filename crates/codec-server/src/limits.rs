//! What one server instance allows at once: requests in processing, codec
//! work off the I/O threads, and bytes held in memory.
//!
//! Each server owns its [`Limits`] (nothing is process-wide), built from
//! `[server]` at start-up:
//! - `concurrency`: requests past their body, in processing
//!   (`server.concurrency_limit`); more wait, until their deadline.
//! - `heavy`: requests whose codec work runs on the blocking pool, one per
//!   core: more at once would only hold more memory, not go faster.
//! - `memory`: a [`MemoryGate`] of `server.max_in_flight_bytes`, which
//!   request bodies reserve before they are read (waiting for room) and
//!   codecs charge decoded buffers to (refused at once when there is no
//!   room).

use std::sync::Arc;
use std::time::Duration;

use payload_converter::{Budget, BytePool, MemoryPool};
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, SemaphorePermit};

use crate::config::ServerConfig;
use crate::error::ApiError;

/// The limits of one server instance.
#[derive(Debug)]
pub(crate) struct Limits {
    /// Largest body accepted.
    pub(crate) max_body_bytes: usize,
    /// Most payloads in one request.
    pub(crate) max_payloads: usize,
    /// Most bytes one request may decode to.
    pub(crate) max_decoded_bytes: usize,
    /// From a request's headers to its answer.
    pub(crate) request_timeout: Duration,
    concurrency: Semaphore,
    heavy: Arc<Semaphore>,
    memory: Arc<MemoryGate>,
}

impl Limits {
    /// The limits `server` configures (already validated).
    pub(crate) fn new(server: &ServerConfig) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        Self {
            max_body_bytes: server.max_body_bytes,
            max_payloads: server.max_payloads,
            max_decoded_bytes: server.decoded_limit(),
            request_timeout: Duration::from_secs(server.request_timeout_secs),
            concurrency: Semaphore::new(server.concurrency_limit),
            heavy: Arc::new(Semaphore::new(cores)),
            memory: Arc::new(MemoryGate::new(server.in_flight_limit())),
        }
    }

    /// A processing slot; waits for one (the caller bounds the wait).
    pub(crate) async fn processing_slot(&self) -> Result<SemaphorePermit<'_>, ApiError> {
        self.concurrency
            .acquire()
            .await
            .map_err(|_| ApiError::Overloaded)
    }

    /// A blocking-pool slot; waits for one (the caller bounds the wait).
    /// Owned, so that it moves into the blocking job and ends with it, not
    /// with the request.
    pub(crate) async fn heavy_slot(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        self.heavy
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ApiError::Overloaded)
    }

    /// The memory every body and decoded buffer is counted in.
    pub(crate) fn memory(&self) -> &Arc<MemoryGate> {
        &self.memory
    }

    /// A budget for one request's codec work: `limit` bytes (at most the
    /// configured maximum), drawn from the memory gate.
    pub(crate) fn budget(&self, limit: usize) -> Budget {
        Budget::new(limit.min(self.max_decoded_bytes)).with_pool(self.memory.clone())
    }
}

/// The bytes held in memory by all requests: one atomic counter, which
/// bodies reserve from (waiting for room when there is none, woken when
/// bytes are given back) and codecs take from without waiting.
#[derive(Debug)]
pub(crate) struct MemoryGate {
    bytes: BytePool,
    /// Reservations waiting for room.
    waiting: AtomicUsize,
    freed: Notify,
}

impl MemoryGate {
    fn new(capacity: usize) -> Self {
        Self {
            bytes: BytePool::new(capacity),
            waiting: AtomicUsize::new(0),
            freed: Notify::new(),
        }
    }

    /// Reserves `bytes`, waiting for room; the caller bounds the wait.
    /// `bytes` above the capacity can never be had: refused at once. A
    /// waiting reservation holds nothing, so waiters cannot block each
    /// other.
    pub(crate) async fn reserve(self: &Arc<Self>, bytes: usize) -> Result<Held, ApiError> {
        if bytes > self.capacity() {
            return Err(ApiError::Overloaded);
        }
        while !self.try_take(bytes) {
            let freed = self.freed.notified();
            let mut freed = std::pin::pin!(freed);
            // Registered before looking again, so that a give-back between
            // the look and the wait is not missed.
            freed.as_mut().enable();
            self.waiting.fetch_add(1, Ordering::AcqRel);
            let taken = self.try_take(bytes);
            if !taken {
                freed.await;
            }
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            if taken {
                break;
            }
        }
        Ok(Held {
            gate: self.clone(),
            bytes,
        })
    }

    /// Bytes held now.
    pub(crate) fn in_use(&self) -> usize {
        self.bytes.in_use()
    }
}

impl MemoryPool for MemoryGate {
    fn try_take(&self, bytes: usize) -> bool {
        self.bytes.try_take(bytes)
    }

    fn give_back(&self, bytes: usize) {
        self.bytes.give_back(bytes);
        if self.waiting.load(Ordering::Acquire) > 0 {
            self.freed.notify_waiters();
        }
    }

    fn capacity(&self) -> usize {
        self.bytes.capacity()
    }
}

/// Bytes reserved in the [`MemoryGate`], given back when dropped.
#[derive(Debug)]
pub(crate) struct Held {
    gate: Arc<MemoryGate>,
    bytes: usize,
}

impl Held {
    /// Reserves `more` bytes too, waiting for room.
    pub(crate) async fn grow(&mut self, more: usize) -> Result<(), ApiError> {
        let mut extra = self.gate.reserve(more).await?;
        self.bytes += std::mem::take(&mut extra.bytes);
        Ok(())
    }

    /// Keeps only `bytes` of the reservation (gives back the rest).
    pub(crate) fn shrink_to(&mut self, bytes: usize) {
        if bytes < self.bytes {
            self.gate.give_back(self.bytes - bytes);
            self.bytes = bytes;
        }
    }

    /// Bytes reserved.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if self.bytes > 0 {
            self.gate.give_back(self.bytes);
        }
    }
}
