//! [`MemoryStore`]: the default store, in process memory.

use std::borrow::Borrow;
use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use time::OffsetDateTime;

use super::token_store::TokenStore;
use super::{Change, ListFilter, ListPage, RevokeAll};
use crate::error::StoreError;
use crate::record::TokenRecord;
use crate::token::TokenId;

mod index;

use index::Index;

/// Number of independently locked shards; a power of two.
const SHARDS: usize = 64;

/// A thread-safe store in process memory: for single-instance services, tests and examples.
/// Tokens are lost when the process exits.
///
/// Records live in 64 shards, each behind its own read-write lock and picked by the token id,
/// so verification takes one shard's read lock and never a global lock, and gets the record
/// as an `Arc` (one reference-count increment, no copy). Writes replace a record
/// copy-on-write, so a verification in flight keeps the snapshot it read.
///
/// Every write but last use (inserts, updates, rotations, revoke-all, purge) holds one
/// mutex, which makes each of them atomic with respect to the others, and listing reads
/// under it too. Owners, tenants, prefixes and scope sets are kept once however many tokens
/// share them, and per-owner indexes make a page of a listing cost O(page + log n).
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
#[derive(Default)]
pub struct MemoryStore {
    shards: Shards,
    writes: Mutex<Index>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("tokens", &self.len())
            .finish_non_exhaustive()
    }
}

struct Shards(Box<[RwLock<Shard>]>);

impl Default for Shards {
    fn default() -> Self {
        Self((0..SHARDS).map(|_| RwLock::default()).collect())
    }
}

/// A shard: records keyed by their own id, so each slot holds one pointer.
type Shard = HashSet<Entry, BuildHasherDefault<IdHasher>>;

/// A stored record, hashed and compared by its id.
struct Entry(Arc<TokenRecord>);

impl Borrow<TokenId> for Entry {
    fn borrow(&self) -> &TokenId {
        &self.0.id
    }
}

impl Hash for Entry {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.id.hash(state);
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.0.id == other.0.id
    }
}

impl Eq for Entry {}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store with room for `tokens` tokens before it has to grow.
    pub fn with_capacity(tokens: usize) -> Self {
        let store = Self::default();
        let per_shard = tokens.div_ceil(SHARDS);
        for shard in store.shards.0.iter() {
            write(shard).reserve(per_shard);
        }
        store
    }

    /// How many records the store holds (active or not).
    pub fn len(&self) -> usize {
        self.shards.0.iter().map(|s| read(s).len()).sum()
    }

    /// Whether the store holds no records.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn shard(&self, id: &TokenId) -> &RwLock<Shard> {
        &self.shards.0[usize::from(id.as_bytes()[15]) & (SHARDS - 1)]
    }

    fn lookup(&self, id: &TokenId) -> Option<Arc<TokenRecord>> {
        read(self.shard(id)).get(id).map(|e| Arc::clone(&e.0))
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
        if read(self.shard(&successor.id)).contains(&successor.id) {
            return Err(StoreError::duplicate_id());
        }
        // Counted before the change, under the same lock; the old token's own place is
        // freed only if the change ends its life now.
        let limit = cap.map(|(cap, now)| {
            let active = index.active(&successor.prefix, &successor.owner, now);
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
        match self.update_locked(&mut index, id, &mut Change::new(&mut decide)) {
            None => Ok(None),
            Some(true) => self
                .insert_locked(&mut index, successor)
                .map(|()| Some(true)),
            Some(false) => Ok(Some(!capped)),
        }
    }

    /// The lock every write but last use holds, with the indexes it guards.
    fn writes(&self) -> MutexGuard<'_, Index> {
        self.writes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Insert `record` (interned), holding `index`.
    fn insert_locked(&self, index: &mut Index, record: &TokenRecord) -> Result<(), StoreError> {
        let mut shard = write(self.shard(&record.id));
        if shard.contains(&record.id) {
            return Err(StoreError::duplicate_id());
        }
        let stored = index.intern(record.clone());
        index.add(&stored);
        shard.insert(Entry(Arc::new(stored)));
        Ok(())
    }

    /// Let `change` decide on a copy of the record `id` and store the copy if it approves,
    /// holding `index`. `None` if there is no such record.
    fn update_locked(
        &self,
        index: &mut Index,
        id: &TokenId,
        change: &mut Change<'_>,
    ) -> Option<bool> {
        let mut shard = write(self.shard(id));
        let current = Arc::clone(&shard.get(id)?.0);
        let mut copy = TokenRecord::clone(&current);
        if !change.apply(&mut copy) {
            return Some(false);
        }
        copy.id = current.id; // the id is the key; a change cannot move a record
        let copy = index.intern(copy);
        index.remove(&current);
        index.add(&copy);
        shard.replace(Entry(Arc::new(copy)));
        Some(true)
    }
}

// The critical sections below never panic half-way through a change, so a poisoned lock
// still guards consistent data.
fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
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
        if index.active(&record.prefix, &record.owner, now) >= cap as usize {
            return Ok(false);
        }
        self.insert_locked(&mut index, record).map(|()| true)
    }

    async fn get(&self, id: &TokenId) -> Result<Option<Arc<TokenRecord>>, StoreError> {
        Ok(self.lookup(id))
    }

    fn get_now(&self, id: &TokenId) -> Option<Result<Option<Arc<TokenRecord>>, StoreError>> {
        Some(Ok(self.lookup(id)))
    }

    async fn list(&self, filter: &ListFilter<'_>) -> Result<ListPage, StoreError> {
        let mut index = self.writes();
        let key = (filter.prefix, filter.owner, filter.tenant);
        let (ids, total) = index.page(
            key,
            filter.now,
            !filter.include_inactive,
            filter.offset,
            filter.limit,
        );
        let records = ids
            .iter()
            .filter_map(|id| self.lookup(id))
            .map(|r| TokenRecord::clone(&r))
            .collect();
        Ok(ListPage { records, total })
    }

    async fn record_last_use(&self, id: &TokenId, at: OffsetDateTime) -> Result<bool, StoreError> {
        // Only this record changes and no index depends on last use: the shard's lock is
        // enough, and verification never waits for the writes lock.
        let mut shard = write(self.shard(id));
        let Some(current) = shard
            .get(id)
            .filter(|e| e.0.last_used_at.is_none_or(|t| t < at))
        else {
            return Ok(false);
        };
        let mut copy = TokenRecord::clone(&current.0);
        copy.last_used_at = Some(at);
        shard.replace(Entry(Arc::new(copy)));
        Ok(true)
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
        for id in index.unrevoked(all.prefix, all.owner, all.tenant) {
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

    async fn purge(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        let mut index = self.writes();
        let mut removed = Vec::new();
        for shard in self.shards.0.iter() {
            write(shard).retain(|Entry(r)| {
                let dead = r.revoked_at.is_some_and(|t| t < before)
                    || r.expires_at.is_some_and(|t| t < before);
                if dead {
                    removed.push(Arc::clone(r));
                }
                !dead
            });
        }
        for r in &removed {
            index.remove(r);
        }
        let count = removed.len() as u64;
        drop(removed);
        index.forget_unused();
        Ok(count)
    }
}

/// Token ids are uniformly random and chosen by the issuer, so a multiply-fold of their bytes
/// spreads them as well as SipHash at a fraction of the cost. Ids presented by clients only
/// look records up; they never choose where a record is stored.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word))
                .wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}
