//! Per-thread shards for state every request writes (the metrics).
//!
//! Two cores writing the same cache line take turns owning it, which costs
//! more than the writes themselves (docs/performance.md has the figures).
//! So each thread writes to a shard of its own, on cache lines of its own,
//! and readers (a render) visit every shard.

use std::sync::atomic::{AtomicUsize, Ordering};

/// A value on cache lines of its own (128 bytes: adjacent-line prefetch
/// pairs lines on x86).
#[repr(align(128))]
#[derive(Debug, Default)]
pub(crate) struct Padded<T>(pub(crate) T);

/// This thread's number, handed out in order on first use: shard `i` of `n`
/// is `thread_number() % n`, so the first `n` threads never share one.
pub(crate) fn thread_number() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static NUMBER: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    NUMBER.with(|n| *n)
}

/// Locks `mutex`, taking over a poisoned one: shards hold counts and bytes
/// that stay valid whatever panicked.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}
