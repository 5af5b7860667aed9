//! What every clone of a [`CachedStore`](crate::CachedStore) shares: the two caches (found
//! records, unknown ids), whether they may be trusted, and how an invalidation reaches a
//! read in flight.
//!
//! **Reads racing invalidations.** A miss reads the store and then caches what it read. If
//! the token changes meanwhile, the invalidation may arrive before the read's answer is
//! cached, and the stale answer would then stay. So every invalidation first bumps a
//! counter (one of [`STRIPES`], by id; or the epoch, for many) and then removes what is
//! cached, including the placeholder of a miss in flight for an affected id (misses in
//! flight are registered, so that an invalidation of many tokens finds theirs too); a miss
//! notes the counters before it reads, caches its answer only if neither moved, and
//! removes it again if one moved meanwhile. With the placeholder gone, a read that starts
//! after the invalidation cannot be handed the stale answer: it makes a read of its own.
//! Whatever the interleaving, an invalidation that lands after the read began leaves
//! nothing cached from that read.
//!
//! **Trust.** `trusted_until` is a deadline on the coarse monotonic clock: before it, the
//! caches may answer; after it (or at 0), every read goes to the store and nothing is
//! cached. A cache whose invalidations are all local is trusted forever; one that hears of
//! other instances' changes through PostgreSQL is trusted for a lease that each confirmed
//! heartbeat extends, and emptied whenever trust is lost and again when it is regained.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use quick_cache::sync::{Cache, DefaultLifecycle, EntryAction, EntryResult};
use quick_cache::{UnitWeighter, Weighter};
use time::OffsetDateTime;

use super::stats::Counters;
use crate::clock::{Clock, lease_clock_nanos};
use crate::error::StoreError;
use crate::record::TokenRecord;
use crate::token::TokenId;

/// Invalidation counters, one per group of ids.
pub(crate) const STRIPES: usize = 64;
/// `trusted_until` of a cache whose every invalidation is local.
pub(crate) const ALWAYS: u64 = u64::MAX;

type Hasher = foldhash::fast::RandomState;

/// A cached record, when it was read (the clock's Unix nanoseconds, for the maximum age),
/// and which read cached it (kept when a last use rewrites the record, so that removing
/// "the entry this read cached" finds it whatever version it holds now).
#[derive(Clone)]
pub(crate) struct Entry {
    pub(crate) record: Arc<TokenRecord>,
    pub(crate) read_at: i128,
    pub(crate) generation: u64,
}

/// Weighs an entry by the bytes it holds, but never below `floor` (the byte bound over the
/// entry bound), so that the one weight bounds both.
#[derive(Clone)]
pub(crate) struct Weight {
    floor: u64,
}

impl Weighter<TokenId, Entry> for Weight {
    fn weight(&self, _: &TokenId, entry: &Entry) -> u64 {
        bytes_of(&entry.record).max(self.floor)
    }
}

/// Roughly what a cached record takes: the record, its strings, and the cache's own entry.
pub(crate) fn bytes_of(r: &TokenRecord) -> u64 {
    let strings = r.owner.len()
        + r.tenant.as_ref().map_or(0, |t| t.len())
        + r.prefix.len()
        + r.name.len()
        + r.description.as_ref().map_or(0, |d| d.len())
        + r.revocation_reason.as_ref().map_or(0, |d| d.len())
        + r.scopes.iter().map(|s| s.len() + 16).sum::<usize>();
    (std::mem::size_of::<TokenRecord>() + strings + 96) as u64
}

/// The limits and timings a cache was built with.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) max_entries: usize,
    pub(crate) max_bytes: u64,
    pub(crate) max_age: Duration,
    pub(crate) unknown_for: Duration,
    pub(crate) max_unknown: usize,
    pub(crate) flush_every: Duration,
}

/// A miss in flight for an id, registered while it lives (also when its future is dropped).
struct Loading<'a> {
    state: &'a State,
    id: TokenId,
}

impl<'a> Loading<'a> {
    fn start(state: &'a State, id: TokenId) -> Self {
        *state
            .loading
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(id)
            .or_default() += 1;
        Self { state, id }
    }
}

impl Drop for Loading<'_> {
    fn drop(&mut self) {
        let mut loading = self
            .state
            .loading
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = loading.get_mut(&self.id) {
            *n -= 1;
            if *n == 0 {
                loading.remove(&self.id);
            }
        }
    }
}

/// The counters a miss noted before reading the store.
#[derive(Clone, Copy)]
pub(crate) struct Snapshot {
    epoch: u64,
    stripe: u64,
}

pub(crate) struct State {
    found: Cache<TokenId, Entry, Weight, Hasher>,
    unknown: Cache<TokenId, i128, UnitWeighter, Hasher>,
    trusted_until: AtomicU64,
    epoch: AtomicU64,
    stripes: Box<[AtomicU64]>,
    /// The next entry's generation.
    generations: AtomicU64,
    /// Ids with a miss in flight (and how many), for invalidations of many tokens.
    loading: Mutex<HashMap<TokenId, usize>>,
    /// Last uses of cached verifications not yet written: the latest instant per token.
    pending: Mutex<HashMap<TokenId, OffsetDateTime>>,
    /// The batch being written: still what reads should see until it is.
    flushing: Mutex<HashMap<TokenId, OffsetDateTime>>,
    pub(crate) counters: Counters,
    pub(crate) settings: Settings,
    pub(crate) clock: Arc<dyn Clock>,
}

impl State {
    pub(crate) fn new(settings: Settings, clock: Arc<dyn Clock>, trusted_until: u64) -> Self {
        let max_entries = settings.max_entries.max(1);
        let floor = (settings.max_bytes / max_entries as u64).max(1);
        let found = Cache::with(
            max_entries,
            settings.max_bytes.max(floor),
            Weight { floor },
            Hasher::default(),
            DefaultLifecycle::default(),
        );
        let unknown = Cache::with(
            settings.max_unknown.max(1),
            settings.max_unknown.max(1) as u64,
            UnitWeighter,
            Hasher::default(),
            DefaultLifecycle::default(),
        );
        Self {
            found,
            unknown,
            trusted_until: AtomicU64::new(trusted_until),
            epoch: AtomicU64::new(0),
            stripes: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
            generations: AtomicU64::new(1),
            loading: Mutex::default(),
            pending: Mutex::default(),
            flushing: Mutex::default(),
            counters: Counters::default(),
            settings,
            clock,
        }
    }

    /// Whether the caches may answer now.
    pub(crate) fn trusted(&self) -> bool {
        let until = self.trusted_until.load(Ordering::Acquire);
        until == ALWAYS || lease_clock_nanos() < until
    }

    /// Trust the caches until `until` (on the lease clock). If they were not
    /// trusted just before, empty them first: invalidations may have been missed meanwhile.
    pub(crate) fn trust_until(&self, until: u64) {
        if !self.trusted() {
            self.flush_on_doubt();
        }
        self.trusted_until.fetch_max(until, Ordering::AcqRel);
    }

    /// Stop trusting the caches (a lost subscription) and empty them.
    pub(crate) fn distrust(&self) {
        self.trusted_until.store(0, Ordering::Release);
        self.flush_on_doubt();
    }

    fn flush_on_doubt(&self) {
        self.counters.flushed_on_doubt.bump();
        self.invalidate_all();
    }

    /// Whether `nanos` (the clock's Unix nanoseconds) is recent enough for `window`.
    fn within(&self, at: i128, window: Duration) -> bool {
        self.clock.recent_unix_nanos() - at < window.as_nanos() as i128
    }

    /// The cached answer for `id`, if fresh: `Some(Some(record))` for a record,
    /// `Some(None)` for an id recently unknown, `None` to ask the store.
    pub(crate) fn cached(&self, id: &TokenId) -> Option<Option<Arc<TokenRecord>>> {
        if let Some(entry) = self.found.get(id) {
            if self.within(entry.read_at, self.settings.max_age) {
                self.counters.hits.bump();
                return Some(Some(entry.record));
            }
            // Past its age: dropped, so that the next read loads it again.
            self.found
                .remove_if(id, |e| e.generation == entry.generation);
        }
        if let Some(at) = self.unknown.get(id) {
            if self.within(at, self.settings.unknown_for) {
                self.counters.negative_hits.bump();
                return Some(None);
            }
            self.unknown.remove_if(id, |a| *a == at);
        }
        None
    }

    /// Lend the cached record for `id` to `read` if there is a fresh one (or a fresh
    /// "unknown"); `None` otherwise.
    pub(crate) fn lend<R>(
        &self,
        id: &TokenId,
        read: impl FnOnce(Option<&TokenRecord>) -> R,
    ) -> Option<R> {
        self.cached(id).map(|answer| read(answer.as_deref()))
    }

    /// The counters a miss notes before it reads the store.
    pub(crate) fn snapshot(&self, id: &TokenId) -> Snapshot {
        Snapshot {
            epoch: self.epoch.load(Ordering::SeqCst),
            stripe: self.stripe(id).load(Ordering::SeqCst),
        }
    }

    /// Whether no invalidation touched `id` since `snapshot`.
    fn unchanged(&self, id: &TokenId, snapshot: Snapshot) -> bool {
        self.epoch.load(Ordering::SeqCst) == snapshot.epoch
            && self.stripe(id).load(Ordering::SeqCst) == snapshot.stripe
    }

    fn stripe(&self, id: &TokenId) -> &AtomicU64 {
        let b = id.as_bytes();
        &self.stripes[usize::from(b[0] ^ b[15]) % STRIPES]
    }

    /// Cache that the store does not know `id`, unless an invalidation of `id` came after
    /// `snapshot` (then a token with this id may have been inserted meanwhile) or the caches
    /// are not trusted.
    fn remember_unknown(&self, id: &TokenId, snapshot: Snapshot) {
        if !self.trusted() || !self.unchanged(id, snapshot) {
            return;
        }
        let now = self.clock.recent_unix_nanos();
        self.unknown.insert(*id, now);
        if !self.unchanged(id, snapshot) {
            self.unknown.remove_if(id, |at| *at == now);
        }
    }

    /// Answer a miss for `id` with one read of the store (`read`), shared by every miss of
    /// the same id meanwhile (they wait for it: single flight), and cache the answer.
    pub(crate) async fn load<F, Fut>(
        &self,
        id: &TokenId,
        read: F,
    ) -> Result<Option<Arc<TokenRecord>>, StoreError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<Arc<TokenRecord>>, StoreError>>,
    {
        let guard = loop {
            match self.found.get_value_or_guard_async(id).await {
                // Another miss read it and cached it while this one waited.
                Ok(entry) if self.within(entry.read_at, self.settings.max_age) => {
                    self.counters.coalesced.bump();
                    return Ok(Some(entry.record));
                }
                Ok(aged) => {
                    self.found
                        .remove_if(id, |e| e.generation == aged.generation);
                }
                Err(guard) => break guard,
            }
        };
        // The miss this one waited for may have found nothing (an unknown id is not kept
        // in the records' cache, so it hands the read on rather than filling it).
        if let Some(at) = self.unknown.get(id)
            && self.within(at, self.settings.unknown_for)
        {
            self.counters.coalesced.bump();
            return Ok(None);
        }
        // Registered before the snapshot: an invalidation of many tokens that comes later
        // removes this read's placeholder, and one that came earlier moved the counters
        // before they were noted (so this read starts after it).
        let _loading = Loading::start(self, *id);
        let snapshot = self.snapshot(id);
        self.counters.store_reads.bump();
        let answer = read().await?;
        match &answer {
            Some(record) if self.trusted() && self.unchanged(id, snapshot) => {
                let generation = self.generations.fetch_add(1, Ordering::Relaxed);
                let entry = Entry {
                    record: Arc::clone(record),
                    read_at: self.clock.recent_unix_nanos(),
                    generation,
                };
                let _ = guard.insert(entry);
                if !self.unchanged(id, snapshot) {
                    self.found.remove_if(id, |e| e.generation == generation);
                }
            }
            // Not cached: the waiters (who joined before any invalidation) read again.
            Some(_) => drop(guard),
            None => {
                // Noted before the waiters wake, so they find it instead of reading again.
                self.remember_unknown(id, snapshot);
                drop(guard);
            }
        }
        Ok(answer)
    }

    /// The record cached for `id` is no longer right: bump its stripe, then drop it.
    pub(crate) fn invalidate(&self, id: &TokenId) {
        self.stripe(id).fetch_add(1, Ordering::SeqCst);
        self.found.remove(id);
        self.unknown.remove(id);
    }

    /// Nothing cached may be right any more: bump the epoch, then drop everything.
    pub(crate) fn invalidate_all(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.found.clear();
        self.unknown.clear();
    }

    /// Drop the cached records `stale` picks (and every cached "unknown", which a change of
    /// many records may have made wrong), after bumping the epoch.
    pub(crate) fn invalidate_where(&self, stale: impl Fn(&TokenRecord) -> bool) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.found.retain(|_, e| !stale(&e.record));
        // `retain` keeps placeholders: remove those of misses in flight, whose reads may
        // have begun before the change.
        let loading: Vec<TokenId> = self
            .loading
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .copied()
            .collect();
        for id in &loading {
            self.found.remove(id);
        }
        self.unknown.clear();
    }

    /// Note a cached verification's last use: moved forward in the cached record (so the
    /// next verification does not think it due again) and queued for the next batch.
    /// Returns whether it moved forward, or `None` if `id` is not cached (the caller then
    /// writes it through).
    pub(crate) fn note_last_use(&self, id: &TokenId, at: OffsetDateTime) -> Option<bool> {
        if !self.trusted() {
            return None;
        }
        let moved = match self.found.entry(id, Some(Duration::ZERO), |_, entry| {
            let moved = entry.record.last_used_at.is_none_or(|t| t < at);
            if moved {
                // The current version of the record, whichever that is, gains the last use.
                let mut record = TokenRecord::clone(&entry.record);
                record.last_used_at = Some(at);
                entry.record = Arc::new(record);
            }
            EntryAction::Retain(moved)
        }) {
            EntryResult::Retained(moved) => moved,
            _ => return None,
        };
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        if pending.len() >= self.settings.max_entries && !pending.contains_key(id) {
            // A full queue: this one is written through by the caller.
            return None;
        }
        let queued = pending.entry(*id).or_insert(at);
        *queued = (*queued).max(at);
        Some(moved)
    }

    /// The last use of `id` queued or being written, if any.
    fn unwritten(&self, id: &TokenId) -> Option<OffsetDateTime> {
        let queued = self
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .copied();
        let writing = self
            .flushing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .copied();
        queued.max(writing)
    }

    /// `record` with any unwritten last use applied, as the store will have it once written.
    pub(crate) fn with_pending(&self, record: &mut TokenRecord) {
        if let Some(at) = self.unwritten(&record.id) {
            record.last_used_at = Some(record.last_used_at.map_or(at, |t| t.max(at)));
        }
    }

    /// Whether a last use of `id` is queued or being written.
    pub(crate) fn has_pending(&self, id: &TokenId) -> bool {
        self.unwritten(id).is_some()
    }

    /// Every queued last use, moved out of the queue into the batch being written (where
    /// reads still see them until [`written`](Self::written)).
    pub(crate) fn take_pending(&self) -> Vec<(TokenId, OffsetDateTime)> {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let mut flushing = self.flushing.lock().unwrap_or_else(PoisonError::into_inner);
        let batch: Vec<_> = pending.drain().collect();
        flushing.extend(batch.iter().copied());
        batch
    }

    /// The batch taken by [`take_pending`](Self::take_pending) was written, or (`failed`)
    /// was not and is queued again (unless newer last uses are queued, or the queue is full).
    pub(crate) fn written(&self, batch: Vec<(TokenId, OffsetDateTime)>, failed: bool) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let mut flushing = self.flushing.lock().unwrap_or_else(PoisonError::into_inner);
        for (id, at) in batch {
            flushing.remove(&id);
            if failed && (pending.len() < self.settings.max_entries || pending.contains_key(&id)) {
                let queued = pending.entry(id).or_insert(at);
                *queued = (*queued).max(at);
            }
        }
    }

    /// How many records are cached, and their weight in bytes.
    pub(crate) fn size(&self) -> (u64, u64) {
        (self.found.len() as u64, self.found.weight())
    }
}
