//! [`Budget`]: how many bytes one codec call may produce, drawn from a
//! [`MemoryPool`] shared by every call, and a way to stop the call.
//!
//! A codec that makes new buffers (decompression above all, where a few
//! kilobytes can ask for gigabytes) charges their size to the call's budget
//! *before* it allocates them. The charge is refused:
//! - past the budget's own limit ([`BudgetError::Exceeded`]: the input asks
//!   for too much, a client fault);
//! - when the pool it draws from has no room left
//!   ([`BudgetError::PoolExhausted`]: the process already holds its maximum
//!   for all callers, retry later);
//! - once the budget is cancelled ([`BudgetError::Cancelled`]: the caller
//!   stopped waiting, so the work stops at its next charge or check).
//!
//! What a budget took from its pool goes back when the budget is dropped,
//! so a caller that keeps the produced bytes (an answer still being sent)
//! keeps the budget alive as long.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::error::{CodecErrorKind, PayloadCodecError};

/// Bytes held at once by all the calls that draw from it: a counter, not
/// an allocator. Callers take before they allocate and give back after they
/// free.
///
/// [`BytePool`] is the plain implementation; a server can put the same
/// bytes behind its own pool (for example one that also lets request bodies
/// wait for room).
pub trait MemoryPool: Send + Sync + std::fmt::Debug {
    /// Takes `bytes` if that many are free; `false` (and nothing taken)
    /// otherwise. Never waits.
    fn try_take(&self, bytes: usize) -> bool;
    /// Gives back `bytes` taken earlier.
    fn give_back(&self, bytes: usize);
    /// The pool's size in bytes.
    fn capacity(&self) -> usize;
}

/// A [`MemoryPool`] that is one atomic counter.
#[derive(Debug)]
pub struct BytePool {
    capacity: usize,
    used: AtomicUsize,
}

impl BytePool {
    /// A pool of `capacity` bytes.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            used: AtomicUsize::new(0),
        }
    }

    /// Bytes taken now.
    pub fn in_use(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

impl MemoryPool for BytePool {
    fn try_take(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|n| *n <= self.capacity)
            })
            .is_ok()
    }

    fn give_back(&self, bytes: usize) {
        let before = self.used.fetch_sub(bytes, Ordering::AcqRel);
        debug_assert!(before >= bytes, "gave back more than was taken");
    }

    fn capacity(&self) -> usize {
        self.capacity
    }
}

/// Why a [`Budget`] refused a charge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BudgetError {
    /// The call would produce more than its limit.
    #[error(
        "the payloads of this call would take more than {limit} bytes once decoded, the \
         configured maximum for one call"
    )]
    Exceeded {
        /// The limit in bytes.
        limit: usize,
    },
    /// The shared pool has no room left.
    #[error(
        "all calls together already hold the configured maximum of {capacity} bytes; retry \
         shortly"
    )]
    PoolExhausted {
        /// The pool's size in bytes.
        capacity: usize,
    },
    /// The caller cancelled the call.
    #[error("the call was cancelled")]
    Cancelled,
}

impl BudgetError {
    /// The codec error kind for this refusal.
    pub fn kind(self) -> CodecErrorKind {
        match self {
            Self::Exceeded { .. } => CodecErrorKind::LimitExceeded,
            Self::PoolExhausted { .. } => CodecErrorKind::Busy,
            Self::Cancelled => CodecErrorKind::Cancelled,
        }
    }
}

impl From<BudgetError> for PayloadCodecError {
    fn from(err: BudgetError) -> Self {
        PayloadCodecError::new(err.kind(), err)
    }
}

/// The bytes one codec call may produce. A codec that makes a new buffer
/// charges it first ([`charge`](Self::charge)); the charge is refused past
/// the budget's limit, when its [`MemoryPool`] has no room, or once the
/// budget is [cancelled](Self::cancel). What it took from the pool goes
/// back when it is dropped.
///
/// Shared by reference with every codec of a chain, across threads (the
/// counters are atomic, and touched only by the call's own work).
#[derive(Debug)]
pub struct Budget {
    limit: usize,
    used: AtomicUsize,
    pool: Option<Arc<dyn MemoryPool>>,
    cancelled: AtomicBool,
}

impl Budget {
    /// A budget of `limit` bytes, not drawing from any pool.
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            used: AtomicUsize::new(0),
            pool: None,
            cancelled: AtomicBool::new(false),
        }
    }

    /// No limit and no pool: what [`PayloadCodec::decode`](crate::PayloadCodec::decode)
    /// runs with.
    pub fn unlimited() -> Self {
        Self::new(usize::MAX)
    }

    /// The same budget, also drawing every charge from `pool`.
    #[must_use]
    pub fn with_pool(mut self, pool: Arc<dyn MemoryPool>) -> Self {
        self.pool = Some(pool);
        self
    }

    /// Records that the call is about to allocate `bytes`, or refuses.
    ///
    /// A refused charge takes nothing.
    pub fn charge(&self, bytes: usize) -> Result<(), BudgetError> {
        self.check()?;
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|n| *n <= self.limit)
            })
            .map_err(|_| BudgetError::Exceeded { limit: self.limit })?;
        if let Some(pool) = &self.pool
            && !pool.try_take(bytes)
        {
            self.used.fetch_sub(bytes, Ordering::AcqRel);
            return Err(BudgetError::PoolExhausted {
                capacity: pool.capacity(),
            });
        }
        Ok(())
    }

    /// `Err(Cancelled)` once the budget is cancelled: long work calls this
    /// between steps that charge nothing.
    pub fn check(&self) -> Result<(), BudgetError> {
        if self.cancelled.load(Ordering::Relaxed) {
            Err(BudgetError::Cancelled)
        } else {
            Ok(())
        }
    }

    /// Stops the call: every later charge or check fails.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }

    /// Whether [`cancel`](Self::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    /// Bytes charged so far.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    /// The limit in bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }
}

impl Drop for Budget {
    fn drop(&mut self) {
        if let Some(pool) = &self.pool {
            pool.give_back(*self.used.get_mut());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_stop_at_the_limit_and_take_nothing_when_refused() {
        let budget = Budget::new(100);
        budget.charge(60).unwrap();
        assert_eq!(budget.charge(41), Err(BudgetError::Exceeded { limit: 100 }));
        assert_eq!(budget.used(), 60);
        budget.charge(40).unwrap();
        assert_eq!(budget.used(), 100);
        assert_eq!(
            budget.charge(usize::MAX),
            Err(BudgetError::Exceeded { limit: 100 })
        );
    }

    #[test]
    fn the_pool_is_shared_and_refilled_when_a_budget_is_dropped() {
        let pool = Arc::new(BytePool::new(100));
        let first = Budget::new(80).with_pool(pool.clone());
        let second = Budget::new(80).with_pool(pool.clone());
        first.charge(70).unwrap();
        assert_eq!(
            second.charge(31),
            Err(BudgetError::PoolExhausted { capacity: 100 })
        );
        // The refused charge counts neither in the budget nor in the pool.
        assert_eq!(second.used(), 0);
        assert_eq!(pool.in_use(), 70);
        second.charge(30).unwrap();
        drop(first);
        assert_eq!(pool.in_use(), 30);
        second.charge(50).unwrap();
        drop(second);
        assert_eq!(pool.in_use(), 0);
    }

    #[test]
    fn a_cancelled_budget_refuses_everything() {
        let budget = Budget::unlimited();
        budget.charge(1).unwrap();
        budget.check().unwrap();
        budget.cancel();
        assert!(budget.is_cancelled());
        assert_eq!(budget.charge(1), Err(BudgetError::Cancelled));
        assert_eq!(budget.check(), Err(BudgetError::Cancelled));
    }

    #[test]
    fn refusals_map_to_codec_error_kinds() {
        let kind = |e: BudgetError| PayloadCodecError::from(e).kind();
        assert_eq!(
            kind(BudgetError::Exceeded { limit: 1 }),
            CodecErrorKind::LimitExceeded
        );
        assert_eq!(
            kind(BudgetError::PoolExhausted { capacity: 1 }),
            CodecErrorKind::Busy
        );
        assert_eq!(kind(BudgetError::Cancelled), CodecErrorKind::Cancelled);
        assert!(CodecErrorKind::LimitExceeded.is_input_fault());
        assert!(!CodecErrorKind::Busy.is_input_fault());
        assert!(!CodecErrorKind::Cancelled.is_input_fault());
    }
}
