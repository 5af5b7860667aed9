//! What a [`CachedStore`](crate::CachedStore) counts, and counters that threads bump
//! without sharing a cache line.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// What a [`CachedStore`](crate::CachedStore) has done since it was built
/// ([`CachedStore::stats`](crate::CachedStore::stats)).
///
/// A verification of a cached token is a `hit`; of an id the store recently did not know,
/// a `negative_hit`; every other read is a `miss`, answered either by a `store_read` of
/// its own or by waiting for another read of the same id (`coalesced`). While the cache
/// cannot be trusted (its invalidations are disconnected) every read is a `store_read`
/// and a `bypassed` one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Reads answered from a cached record.
    pub hits: u64,
    /// Reads answered from a cached "no such id".
    pub negative_hits: u64,
    /// Reads the cache could not answer.
    pub misses: u64,
    /// Misses answered by another read of the same id in flight (single flight).
    pub coalesced: u64,
    /// Reads of the store underneath (`get`), for misses and while bypassed.
    pub store_reads: u64,
    /// Reads sent straight to the store because the cache was not trusted.
    pub bypassed: u64,
    /// Invalidations received from other instances (or the in-process bus).
    pub invalidations_received: u64,
    /// Times the whole cache was emptied because its invalidations could not be trusted (a
    /// lost or unconfirmed subscription), and once more when they could again.
    pub flushed_on_doubt: u64,
    /// Batches of last uses written to the store (one statement each on SQL stores).
    pub last_use_batches: u64,
    /// Last uses those batches carried.
    pub last_uses_flushed: u64,
    /// Records cached now.
    pub entries: u64,
    /// Approximate bytes those records take (what the byte bound counts).
    pub bytes: u64,
}

/// Slots per counter: threads are spread over them, so two threads rarely bump the same
/// cache line.
const SLOTS: usize = 16;

#[repr(align(128))]
#[derive(Default)]
struct Slot(AtomicU64);

/// A counter that many threads bump: each thread adds to its own slot.
#[derive(Default)]
pub(crate) struct Counter([Slot; SLOTS]);

impl Counter {
    pub(crate) fn add(&self, n: u64) {
        self.0[slot()].0.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn bump(&self) {
        self.add(1);
    }

    pub(crate) fn get(&self) -> u64 {
        self.0.iter().map(|s| s.0.load(Ordering::Relaxed)).sum()
    }
}

/// This thread's slot, given out in turn as threads first count.
fn slot() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SLOT: Cell<Option<usize>> = const { Cell::new(None) };
    }
    SLOT.with(|s| match s.get() {
        Some(i) => i,
        None => {
            let i = NEXT.fetch_add(1, Ordering::Relaxed) % SLOTS;
            s.set(Some(i));
            i
        }
    })
}

/// Every counter of a cache.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) hits: Counter,
    pub(crate) negative_hits: Counter,
    pub(crate) misses: Counter,
    pub(crate) coalesced: Counter,
    pub(crate) store_reads: Counter,
    pub(crate) bypassed: Counter,
    pub(crate) invalidations_received: Counter,
    pub(crate) flushed_on_doubt: Counter,
    pub(crate) last_use_batches: Counter,
    pub(crate) last_uses_flushed: Counter,
}

impl Counters {
    pub(crate) fn snapshot(&self, entries: u64, bytes: u64) -> CacheStats {
        CacheStats {
            hits: self.hits.get(),
            negative_hits: self.negative_hits.get(),
            misses: self.misses.get(),
            coalesced: self.coalesced.get(),
            store_reads: self.store_reads.get(),
            bypassed: self.bypassed.get(),
            invalidations_received: self.invalidations_received.get(),
            flushed_on_doubt: self.flushed_on_doubt.get(),
            last_use_batches: self.last_use_batches.get(),
            last_uses_flushed: self.last_uses_flushed.get(),
            entries,
            bytes,
        }
    }
}
