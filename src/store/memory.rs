//! [`MemoryStore`]: the default store, in process memory.

use std::borrow::Borrow;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use time::OffsetDateTime;

use super::token_store::TokenStore;
use super::{ListFilter, ListPage, RevokeOutcome};
use crate::error::StoreError;
use crate::record::{Scopes, TokenRecord};
use crate::token::TokenId;

/// Number of independently locked shards; a power of two.
const SHARDS: usize = 64;

/// A thread-safe store in process memory: for single-instance services, tests and examples.
/// Tokens are lost when the process exits.
///
/// Records live in 64 shards, each behind its own read-write lock and picked by the token id,
/// so verification takes one shard's read lock and never a global lock, and gets the record
/// as an `Arc` (one reference-count increment, no copy). Writes replace a record copy-on-write,
/// so a verification in flight keeps the snapshot it read. Owners, tenants, prefixes and scope
/// sets are kept once however many tokens share them, and an index by owner keeps listing
/// and revoke-all proportional to the owner's tokens, not to all tokens.
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
#[derive(Debug, Default)]
pub struct MemoryStore {
    shards: Shards,
    by_owner: RwLock<HashMap<Arc<str>, Vec<TokenId>>>,
    strings: RwLock<HashSet<Arc<str>>>,
    scope_sets: RwLock<HashSet<Scopes>>,
}

#[derive(Debug)]
struct Shards(Box<[RwLock<Shard>]>);

impl Default for Shards {
    fn default() -> Self {
        Self((0..SHARDS).map(|_| RwLock::default()).collect())
    }
}

/// A shard: records keyed by their own id, so each slot holds one pointer.
type Shard = HashSet<Entry, BuildHasherDefault<IdHasher>>;

/// A stored record, hashed and compared by its id.
#[derive(Debug)]
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

    fn owner_ids(&self, owner: &str) -> Vec<TokenId> {
        read(&self.by_owner).get(owner).cloned().unwrap_or_default()
    }

    /// The one shared copy of `s`.
    fn intern(&self, s: &Arc<str>) -> Arc<str> {
        intern(&self.strings, s)
    }

    /// The one shared copy of a scope set.
    fn intern_scopes(&self, scopes: &Scopes) -> Scopes {
        intern(&self.scope_sets, scopes)
    }

    /// If `decide` approves (`Ok`), store a copy of the record `id` with `change` applied;
    /// either way return what `decide` said, or `None` if there is no such record.
    fn update<T>(
        &self,
        id: &TokenId,
        decide: impl FnOnce(&TokenRecord) -> Result<T, T>,
        change: impl FnOnce(&mut TokenRecord),
    ) -> Option<T> {
        let mut shard = write(self.shard(id));
        let current = &shard.get(id)?.0;
        match decide(current) {
            Ok(outcome) => {
                let mut record = TokenRecord::clone(current);
                change(&mut record);
                shard.replace(Entry(Arc::new(record)));
                Some(outcome)
            }
            Err(outcome) => Some(outcome),
        }
    }
}

/// The copy of `value` in `set`, added if it is not there yet.
fn intern<T: Clone + Eq + Hash>(set: &RwLock<HashSet<T>>, value: &T) -> T {
    if let Some(found) = read(set).get(value) {
        return found.clone();
    }
    let mut set = write(set);
    match set.get(value) {
        Some(found) => found.clone(),
        None => {
            set.insert(value.clone());
            value.clone()
        }
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
        let mut stored = record.clone();
        stored.owner = self.intern(&record.owner);
        stored.tenant = record.tenant.as_ref().map(|t| self.intern(t));
        stored.prefix = self.intern(&record.prefix);
        stored.scopes = self.intern_scopes(&record.scopes);
        let owner = Arc::clone(&stored.owner);
        {
            let mut shard = write(self.shard(&record.id));
            if shard.contains(&record.id) {
                return Err(StoreError::duplicate_id());
            }
            shard.insert(Entry(Arc::new(stored)));
        }
        write(&self.by_owner)
            .entry(owner)
            .or_default()
            .push(record.id);
        Ok(())
    }

    async fn get(&self, id: &TokenId) -> Result<Option<Arc<TokenRecord>>, StoreError> {
        Ok(self.lookup(id))
    }

    fn get_now(&self, id: &TokenId) -> Option<Result<Option<Arc<TokenRecord>>, StoreError>> {
        Some(Ok(self.lookup(id)))
    }

    async fn list(&self, filter: &ListFilter<'_>) -> Result<ListPage, StoreError> {
        let matching = self
            .owner_ids(filter.owner)
            .iter()
            .filter_map(|id| {
                read(self.shard(id))
                    .get(id)
                    .filter(|e| filter.matches(&e.0))
                    .map(|e| TokenRecord::clone(&e.0))
            })
            .collect();
        Ok(ListPage::from_matching(matching, filter))
    }

    async fn record_last_use(&self, id: &TokenId, at: OffsetDateTime) -> Result<bool, StoreError> {
        Ok(self
            .update(
                id,
                |r| {
                    if r.last_used_at.is_none_or(|t| t < at) {
                        Ok(true)
                    } else {
                        Err(false)
                    }
                },
                |r| r.last_used_at = Some(at),
            )
            .unwrap_or(false))
    }

    async fn revoke(
        &self,
        id: &TokenId,
        owner: &str,
        at: OffsetDateTime,
        reason: Option<&str>,
    ) -> Result<RevokeOutcome, StoreError> {
        Ok(self
            .update(
                id,
                |r| match r.revoked_at {
                    _ if *r.owner != *owner => Err(RevokeOutcome::NotFound),
                    Some(when) => Err(RevokeOutcome::AlreadyRevoked(when)),
                    None => Ok(RevokeOutcome::Revoked),
                },
                |r| {
                    r.revoked_at = Some(at);
                    r.revocation_reason = reason.map(Box::from);
                },
            )
            .unwrap_or(RevokeOutcome::NotFound))
    }

    async fn revoke_all(
        &self,
        owner: &str,
        tenant: Option<&str>,
        at: OffsetDateTime,
        reason: Option<&str>,
    ) -> Result<u64, StoreError> {
        let mut count = 0;
        for id in self.owner_ids(owner) {
            let revoked = self.update(
                &id,
                |r| {
                    let applies = r.revoked_at.is_none()
                        && tenant.is_none_or(|t| r.tenant.as_deref() == Some(t));
                    if applies { Ok(true) } else { Err(false) }
                },
                |r| {
                    r.revoked_at = Some(at);
                    r.revocation_reason = reason.map(Box::from);
                },
            );
            count += u64::from(revoked == Some(true));
        }
        Ok(count)
    }

    async fn shorten_expiry(&self, id: &TokenId, at: OffsetDateTime) -> Result<bool, StoreError> {
        Ok(self
            .update(
                id,
                |r| {
                    if r.revoked_at.is_none() && r.expires_at.is_none_or(|e| at < e) {
                        Ok(true)
                    } else {
                        Err(false)
                    }
                },
                |r| r.expires_at = Some(at),
            )
            .unwrap_or(false))
    }

    async fn purge(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        let mut removed: Vec<(Arc<str>, TokenId)> = Vec::new();
        for shard in self.shards.0.iter() {
            write(shard).retain(|Entry(r)| {
                let dead = r.revoked_at.is_some_and(|t| t < before)
                    || r.expires_at.is_some_and(|t| t < before);
                if dead {
                    removed.push((Arc::clone(&r.owner), r.id));
                }
                !dead
            });
        }
        let count = removed.len() as u64;
        if !removed.is_empty() {
            let mut index = write(&self.by_owner);
            for (owner, id) in &removed {
                if let Some(ids) = index.get_mut(owner) {
                    ids.retain(|x| x != id);
                    if ids.is_empty() {
                        index.remove(owner);
                    }
                }
            }
            drop(index);
            drop(removed);
            // Forget shared values that no record uses any more.
            write(&self.strings).retain(|s| Arc::strong_count(s) > 1);
            write(&self.scope_sets).retain(|s| s.ref_count() > 1);
        }
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
