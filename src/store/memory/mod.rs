//! [`MemoryStore`]: the default store, in process memory.

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasherDefault;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use time::OffsetDateTime;

use super::token_store::TokenStore;
use super::{
    Change, ChildInsert, ChildRules, Descendants, ExpiringFilter, ListFilter, ListPage, RevokeAll,
    UseOutcome,
};
use crate::error::StoreError;
use crate::record::{CompactRecord, Micros, MovedCount, RateCell, RecordRef, TokenRecord};
use crate::token::{IdHasher, TokenId};

mod index;
mod positions;
mod stored;

use index::Index;
use stored::{Count, Replaced, Stored, cell_of, replace};

/// A thread-safe store in process memory: for single-instance services, tests and examples.
/// Tokens are lost when the process exits.
///
/// Records live in a lock-free hash table ([`papaya`]): a verification reads its record in
/// place, under an epoch guard that touches only the reading thread's own state, so it takes
/// no lock, counts no reference and copies nothing, and threads verifying the same token
/// never write to a cache line they share. Writes replace a record copy-on-write (a
/// verification in flight keeps the version it read), and the old version is freed once no
/// reader can still see it.
///
/// Records are kept compact (144 bytes where a [`TokenRecord`] takes 352): times as 8-byte
/// microseconds, the fields most tokens leave unset (revocation, suspension, metadata,
/// address allowlist, usage limit, description, revocation reason, successor, creator)
/// behind one pointer, and owner, tenant, scopes and prefix behind one pointer to a copy
/// shared by every token with the same four. So, like the SQL stores, it keeps times to the
/// microsecond and gives them back in UTC.
///
/// Every write but last use (inserts, updates, rotations, revoke-all, purge) holds one
/// mutex, which makes each of them atomic with respect to the others, and listing reads
/// under it too. Listing active tokens, and counting them for a cap, first moves the
/// issuer's tokens that expired since the last such call out of their owners' active
/// listings (each token once as time goes forward, under that mutex): after a long quiet
/// spell, that one call pays for every token that expired meanwhile. A last-use write is
/// one compare-and-swap on its record, so verification
/// never waits for that mutex, and a change made under the mutex is applied to the latest
/// version of the record (never losing a last use written meanwhile). Owners, tenants,
/// prefixes and scope sets are kept once however many tokens share them, and per-owner
/// indexes make a page of a listing cost O(page + log n) (O(page + log² n) with inactive
/// tokens included).
///
/// Each entry also holds the [`RateCell`] its token's rate limit counts on (lent by
/// [`read_counted_now`](TokenStore::read_counted_now), counted by
/// `MemoryRateLimiter`, feature `rate-limit`), moved to every new version of the
/// record; a rotated token counts on its latest successor's. So that such a chain never
/// splits, a purge keeps an ended record while a live rate-limited token's chain of
/// rotations runs through it.
///
/// ```
/// use api_tokens::{ApiTokens, MemoryStore, NewToken};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let tokens = ApiTokens::new(MemoryStore::new(), "dz")?;
/// let issued = tokens.issue(NewToken::new("user_1", "ci")).await?;
/// let principal = tokens.verify(issued.plaintext.expose_secret()).await?;
/// assert_eq!(principal.owner(), "user_1");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub struct MemoryStore {
    records: Records,
    writes: Mutex<Index>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

/// The records by id, each stored (with its rate count) in its table entry right after its
/// key.
type Records = papaya::HashMap<TokenId, Stored, BuildHasherDefault<IdHasher>>;

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("tokens", &self.len())
            .finish_non_exhaustive()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store with room for `tokens` tokens before it has to grow.
    pub fn with_capacity(tokens: usize) -> Self {
        Self {
            // A resize is finished by the insert that starts it (all inserts are serialised
            // anyway), so that reads never have to search two tables: an incremental resize
            // would be finished only by later writes, which a read-mostly store may not see
            // for a long time.
            records: papaya::HashMap::builder()
                .hasher(BuildHasherDefault::default())
                .capacity(tokens)
                .resize_mode(papaya::ResizeMode::Blocking)
                .build(),
            writes: Mutex::default(),
        }
    }

    /// How many records the store holds (active or not).
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether the store holds no records.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A copy of the record `id`.
    fn lookup(&self, id: &TokenId) -> Option<TokenRecord> {
        self.records.pin().get(id).map(|s| s.record.to_record())
    }

    /// Apply `change` to every descendant of `of` (walking through revoked ones too: their
    /// children are descendants), under the writes lock; how many it wrote.
    fn change_descendants(&self, of: &TokenId, change: &mut Change<'_>) -> u64 {
        let mut index = self.writes();
        let mut count = 0;
        let mut frontier = vec![*of];
        let mut seen = HashSet::new();
        while let Some(parent) = frontier.pop() {
            for id in index.children(&parent) {
                if !seen.insert(id) {
                    continue;
                }
                frontier.push(id);
                if self.update_locked(&mut index, &id, change) == Some(true) {
                    count += 1;
                }
            }
        }
        count
    }

    /// `rotate`, and `rotate_capped` when `cap` is given, under the writes lock: `None` if
    /// there is no record `id`, `Some(false)` if the cap stopped the rotation (nothing
    /// written).
    fn rotate_under(
        &self,
        id: &TokenId,
        change: &mut Change<'_>,
        successor: &TokenRecord,
        cap: Option<(u32, OffsetDateTime)>,
    ) -> Result<Option<bool>, StoreError> {
        let mut index = self.writes();
        // Every insert holds the writes lock too, so the successor's id stays free until
        // it is inserted below.
        if self.records.pin().contains_key(&successor.id) {
            return Err(StoreError::duplicate_id());
        }
        if successor.id == *id {
            // Not stored (just checked): nothing to rotate. Inserting the successor first
            // would freeze the very entry the change then waits on, for ever.
            return Ok(None);
        }
        // Counted before the change, under the same lock; the old token's own place is
        // freed only if the change ends its life now.
        let limit = cap.map(|(cap, now)| {
            let active = self.active(&mut index, successor, now);
            (cap as usize, now, active)
        });
        let mut capped = false;
        let mut decide = |r: &mut TokenRecord| {
            let was_active = limit.is_some_and(|(_, now, _)| r.is_active(now));
            if !change.apply(r) {
                return false;
            }
            if let Some((cap, now, active)) = limit {
                let freed = usize::from(was_active && !r.is_active(now));
                capped = active.saturating_sub(freed) >= cap;
            }
            !capped
        };
        // The successor goes in first, its count frozen: once the old token names it, a
        // check of the old token counts on the successor's cell, which must exist, and which
        // takes the old token's count once the old version is frozen and replaced.
        self.insert_stored(&mut index, successor, RateCell::frozen())?;
        let records = self.records.pin();
        // Thawed afresh if the change panics: never left frozen.
        let successor_cell = stored::ThawOnDrop(records.get(&successor.id).map(|s| &s.rate));
        let changed = self.change_locked(
            &records,
            &mut index,
            id,
            Count::Handed,
            &mut Change::new(&mut decide),
        );
        let successor_cell = successor_cell.disarm();
        match changed {
            Some(Some(Written { moved, old_rate })) => {
                // A successor with another limit than its predecessor's starts afresh.
                let moved = if stored::rate_of(successor.rate_limit) == old_rate {
                    moved
                } else {
                    MovedCount::FRESH
                };
                if let Some(cell) = successor_cell {
                    cell.thaw(moved);
                }
                Ok(Some(true))
            }
            declined => {
                // Nobody holds the successor's plaintext yet: it goes as if never inserted.
                if let Some(removed) = records.remove(&successor.id) {
                    index.remove(&removed.record);
                }
                Ok(declined.map(|_| !capped))
            }
        }
    }

    /// How many of the tokens of `record`'s owner and issuer are active at `now`, holding
    /// `index`.
    fn active(&self, index: &mut Index, record: &TokenRecord, now: OffsetDateTime) -> usize {
        let records = self.records.pin();
        index.active(&record.prefix, &record.owner, now, stored::finder(&records))
    }

    /// The lock every write but last use holds, with the indexes it guards.
    fn writes(&self) -> MutexGuard<'_, Index> {
        self.writes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Insert `record`, holding `index`.
    fn insert_locked(&self, index: &mut Index, record: &TokenRecord) -> Result<(), StoreError> {
        self.insert_stored(index, record, RateCell::new())
    }

    /// Insert `record` with the count `rate`, holding `index`.
    fn insert_stored(
        &self,
        index: &mut Index,
        record: &TokenRecord,
        rate: RateCell,
    ) -> Result<(), StoreError> {
        let records = self.records.pin();
        // One probe of the table; the record is made compact (its shared fields interned)
        // only if its id is free. Readers of the index hold the writes lock, as this does,
        // so none sees the record in the table before it is indexed.
        let inserted = records.try_insert_with(record.id, || Stored {
            rate,
            record: index.compact(record),
        });
        match inserted {
            Ok(stored) => {
                index.add(&stored.record);
                Ok(())
            }
            Err(_) => Err(StoreError::duplicate_id()),
        }
    }

    /// Let `change` decide on a copy of the record `id` and store the copy if it approves,
    /// holding `index`. `None` if there is no such record.
    fn update_locked(
        &self,
        index: &mut Index,
        id: &TokenId,
        change: &mut Change<'_>,
    ) -> Option<bool> {
        let records = self.records.pin();
        self.change_locked(&records, index, id, Count::Kept, change)
            .map(|written| written.is_some())
    }

    /// [`update_locked`](Self::update_locked) on a pinned table, answering (when the copy
    /// was stored) the count the old version held and the rate it counted for.
    fn change_locked<G: papaya::Guard>(
        &self,
        records: &stored::Pinned<'_, G>,
        index: &mut Index,
        id: &TokenId,
        count: Count,
        change: &mut Change<'_>,
    ) -> Option<Option<Written>> {
        // A compare-and-swap on the latest version: if a last-use write lands between the
        // read and the swap, the change is decided again on the version that has it (the
        // changes the service makes decide the same way twice).
        let outcome = replace(records, id, count, |current| {
            let mut copy = current.to_record();
            if !change.apply(&mut copy) {
                return Err(());
            }
            copy.id = current.id; // the id is the key; a change cannot move a record
            Ok(index.compact(&copy))
        });
        match outcome {
            Replaced::Updated { old, new, moved } => {
                index.remove(old);
                index.add(new);
                Some(Some(Written {
                    moved,
                    old_rate: stored::rate_of(old.rate_limit),
                }))
            }
            Replaced::Declined(()) => Some(None),
            Replaced::Missing => None,
        }
    }
}

impl TokenStore for MemoryStore {
    async fn insert(&self, record: &TokenRecord) -> Result<(), StoreError> {
        self.insert_locked(&mut self.writes(), record)
    }

    async fn insert_capped(
        &self,
        record: &TokenRecord,
        cap: u32,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mut index = self.writes();
        if self.active(&mut index, record, now) >= cap as usize {
            return Ok(false);
        }
        self.insert_locked(&mut index, record).map(|()| true)
    }

    async fn insert_child(
        &self,
        record: &TokenRecord,
        rules: &ChildRules,
    ) -> Result<ChildInsert, StoreError> {
        let mut index = self.writes();
        // Every change to the creator holds the writes lock too, so it stays as read here
        // until the child is inserted.
        let creator_allows = record.created_by.is_some_and(|creator| {
            self.records
                .pin()
                .get(&creator)
                .is_some_and(|c| rules.creator_allows(&c.record.to_record(), record))
        });
        if !creator_allows {
            return Ok(ChildInsert::CreatorNotActive);
        }
        let now = rules.now;
        if rules
            .cap
            .is_some_and(|cap| self.active(&mut index, record, now) >= cap as usize)
        {
            return Ok(ChildInsert::CapReached);
        }
        self.insert_locked(&mut index, record)
            .map(|()| ChildInsert::Inserted)
    }

    async fn get(&self, id: &TokenId) -> Result<Option<Arc<TokenRecord>>, StoreError> {
        Ok(self.lookup(id).map(Arc::new))
    }

    fn get_now(&self, id: &TokenId) -> Option<Result<Option<Arc<TokenRecord>>, StoreError>> {
        Some(Ok(self.lookup(id).map(Arc::new)))
    }

    /// A copy of the record is lent (the store keeps records compact).
    fn read_now<R>(
        &self,
        id: &TokenId,
        read: impl FnOnce(Option<&TokenRecord>) -> R,
    ) -> Option<Result<R, StoreError>> {
        Some(Ok(read(self.lookup(id).as_ref())))
    }

    /// The record (compact) and the cell its rate limit counts on, lent in place, under the
    /// reading thread's epoch guard.
    fn read_counted_now<R>(
        &self,
        id: &TokenId,
        read: impl FnOnce(Option<RecordRef<'_>>, Option<&RateCell>) -> R,
    ) -> Option<Result<R, StoreError>> {
        let records = self.records.pin();
        Some(Ok(match records.get(id) {
            None => read(None, None),
            Some(stored) => read(
                Some(RecordRef::compact(&stored.record)),
                cell_of(&records, stored),
            ),
        }))
    }

    async fn list(&self, filter: &ListFilter<'_>) -> Result<ListPage, StoreError> {
        let mut index = self.writes();
        let key = (filter.prefix, filter.owner, filter.tenant);
        let records = self.records.pin();
        let (ids, total) = index.page(
            key,
            filter.now,
            (!filter.include_inactive, filter.offset, filter.limit),
            stored::finder(&records),
        );
        drop(records);
        let records = ids.iter().filter_map(|id| self.lookup(id)).collect();
        Ok(ListPage { records, total })
    }

    async fn list_expiring(&self, filter: &ExpiringFilter<'_>) -> Result<ListPage, StoreError> {
        let index = self.writes();
        let (ids, total) = index.expiring(
            filter.prefix,
            filter.now,
            filter.until,
            filter.offset,
            filter.limit,
        );
        let records = ids.iter().filter_map(|id| self.lookup(id)).collect();
        Ok(ListPage { records, total })
    }

    async fn record_last_use(&self, id: &TokenId, at: OffsetDateTime) -> Result<bool, StoreError> {
        // Only this record changes and no index depends on last use: one compare-and-swap,
        // and verification never waits for the writes lock.
        let records = self.records.pin();
        let at = Micros::of(at);
        let outcome = replace(&records, id, Count::Kept, |r| {
            // No time (`NONE`) is below every time.
            if r.last_used_at >= at {
                return Err(());
            }
            let mut copy = r.clone();
            copy.last_used_at = at;
            Ok(copy)
        });
        Ok(matches!(outcome, Replaced::Updated { .. }))
    }

    async fn update(&self, id: &TokenId, change: &mut Change<'_>) -> Result<bool, StoreError> {
        Ok(self.update_locked(&mut self.writes(), id, change).is_some())
    }

    async fn rotate(
        &self,
        id: &TokenId,
        change: &mut Change<'_>,
        successor: &TokenRecord,
    ) -> Result<bool, StoreError> {
        Ok(self.rotate_under(id, change, successor, None)?.is_some())
    }

    async fn rotate_capped(
        &self,
        id: &TokenId,
        change: &mut Change<'_>,
        successor: &TokenRecord,
        cap: u32,
        now: OffsetDateTime,
    ) -> Result<Option<bool>, StoreError> {
        self.rotate_under(id, change, successor, Some((cap, now)))
    }

    async fn revoke_all(&self, all: &RevokeAll<'_>) -> Result<u64, StoreError> {
        let mut index = self.writes();
        let mut count = 0;
        let records = self.records.pin();
        let unrevoked = index.unrevoked(
            (all.prefix, all.owner, all.tenant),
            stored::finder(&records),
        );
        drop(records);
        for id in unrevoked {
            let mut revoke = |r: &mut TokenRecord| {
                let selected = all.selects(r);
                if selected {
                    r.revoked_at = Some(all.at);
                    r.revocation_reason = all.reason.map(Box::from);
                }
                selected
            };
            if self.update_locked(&mut index, &id, &mut Change::new(&mut revoke)) == Some(true) {
                count += 1;
            }
        }
        Ok(count)
    }

    async fn revoke_descendants(
        &self,
        of: &TokenId,
        all: &RevokeAll<'_>,
    ) -> Result<u64, StoreError> {
        let mut revoke = |r: &mut TokenRecord| {
            let selected =
                r.revoked_at.is_none() && *r.owner == *all.owner && *r.prefix == *all.prefix;
            if selected {
                r.revoked_at = Some(all.at);
                r.revocation_reason = all.reason.map(Box::from);
            }
            selected
        };
        Ok(self.change_descendants(of, &mut Change::new(&mut revoke)))
    }

    /// One compare-and-swap on the record, like a last use: no lock.
    async fn consume_use(
        &self,
        id: &TokenId,
        now: OffsetDateTime,
    ) -> Result<UseOutcome, StoreError> {
        let records = self.records.pin();
        let mut remaining = 0;
        let outcome = replace(&records, id, Count::Kept, |current| {
            let Some(&(mut usage)) = current.usage() else {
                return Err(UseOutcome::NotCounted);
            };
            if !usage.consume(now) {
                return Err(UseOutcome::Exhausted);
            }
            remaining = usage.remaining;
            let mut copy = current.clone();
            if let Some(rare) = copy.rare.as_deref_mut() {
                rare.usage = Some(usage); // there, since it counts uses
            }
            Ok(copy)
        });
        Ok(match outcome {
            Replaced::Updated { .. } => UseOutcome::Consumed { remaining },
            Replaced::Declined(outcome) => outcome,
            // Gone (purged) since it was read: nothing to count, and nothing to allow.
            Replaced::Missing => UseOutcome::Exhausted,
        })
    }

    async fn update_descendants(
        &self,
        which: &Descendants<'_>,
        change: &mut Change<'_>,
    ) -> Result<u64, StoreError> {
        let mut selected = |r: &mut TokenRecord| {
            *r.owner == *which.owner && *r.prefix == *which.prefix && change.apply(r)
        };
        Ok(self.change_descendants(&which.of, &mut Change::new(&mut selected)))
    }

    async fn purge(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        let mut index = self.writes();
        let records = self.records.pin();
        // `retain` decides again on a record that a last-use write replaced meanwhile, so
        // the removed records are collected by id, each once.
        let mut removed = HashMap::new();
        let before = crate::record::unix_micros(before);
        let ended = |r: &CompactRecord| r.ended_before(before);
        // A live rate-limited token counts on its latest successor's cell: the records its
        // chain of rotations runs through stay until it ends too (rotations hold the writes
        // lock, so no chain changes meanwhile).
        let mut chained = HashSet::new();
        for (_, stored) in records.iter() {
            if stored.record.rate_limit.is_none() || ended(&stored.record) {
                continue;
            }
            let mut next = stored.record.successor();
            while let Some(id) = next.filter(|id| chained.insert(*id)) {
                next = records.get(&id).and_then(|s| s.record.successor());
            }
        }
        records.retain(|id, stored| {
            let r = &stored.record;
            let dead = ended(r) && !chained.contains(id);
            if dead {
                removed.insert(*id, r.clone());
            }
            !dead
        });
        drop(records);
        for r in removed.values() {
            index.remove(r);
        }
        let count = removed.len() as u64;
        drop(removed);
        // Shared strings of removed records that the table has not freed yet are forgotten
        // by the next purge.
        index.forget_unused();
        Ok(count)
    }
}

/// A change stored by `change_locked`: the count the old version held, and the rate it
/// counted for.
struct Written {
    moved: MovedCount,
    old_rate: Option<(u32, u32)>,
}
