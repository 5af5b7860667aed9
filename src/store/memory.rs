//! [`MemoryStore`]: the default store, in process memory.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use time::OffsetDateTime;

use super::{ListFilter, ListPage, RevokeOutcome, StoreError, TokenStore};
use crate::record::TokenRecord;
use crate::token::TokenId;

/// Number of independently locked shards; a power of two.
const SHARDS: usize = 64;

/// A thread-safe store in process memory: for single-instance services, tests and examples.
/// Tokens are lost when the process exits.
///
/// Records live in 64 shards, each behind its own read-write lock and picked by the token id,
/// so verification takes one shard's read lock and never a global lock, and gets the record
/// as an `Arc` (one reference-count increment, no copy). Writes replace a record copy-on-write,
/// so a verification in flight keeps the snapshot it read. An index by owner
/// keeps listing and revoke-all proportional to the owner's tokens, not to all tokens.
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
#[derive(Debug)]
pub struct MemoryStore {
    shards: Box<[RwLock<Shard>]>,
    by_owner: RwLock<HashMap<Arc<str>, Vec<TokenId>>>,
}

type Shard = HashMap<TokenId, Arc<TokenRecord>, BuildHasherDefault<IdHasher>>;

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            by_owner: RwLock::default(),
        }
    }

    /// How many records the store holds (active or not).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| read(s).len()).sum()
    }

    /// Whether the store holds no records.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn shard(&self, id: &TokenId) -> &RwLock<Shard> {
        &self.shards[usize::from(id.as_bytes()[15]) & (SHARDS - 1)]
    }

    fn owner_ids(&self, owner: &str) -> Vec<TokenId> {
        read(&self.by_owner).get(owner).cloned().unwrap_or_default()
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
        {
            let mut shard = write(self.shard(&record.id));
            if shard.contains_key(&record.id) {
                return Err(StoreError::duplicate_id());
            }
            shard.insert(record.id, Arc::new(record.clone()));
        }
        write(&self.by_owner)
            .entry(record.owner.clone())
            .or_default()
            .push(record.id);
        Ok(())
    }

    async fn get(&self, id: &TokenId) -> Result<Option<Arc<TokenRecord>>, StoreError> {
        Ok(read(self.shard(id)).get(id).cloned())
    }

    async fn list(&self, filter: &ListFilter<'_>) -> Result<ListPage, StoreError> {
        let mut records: Vec<TokenRecord> = self
            .owner_ids(filter.owner)
            .iter()
            .filter_map(|id| {
                read(self.shard(id))
                    .get(id)
                    .filter(|r| filter.matches(r))
                    .map(|r| TokenRecord::clone(r))
            })
            .collect();
        records.sort_unstable_by_key(|r| std::cmp::Reverse((r.created_at, r.id)));
        let total = records.len() as u64;
        let start = usize::try_from(filter.offset)
            .unwrap_or(usize::MAX)
            .min(records.len());
        let end = start
            .saturating_add(filter.limit as usize)
            .min(records.len());
        records.truncate(end);
        records.drain(..start);
        Ok(ListPage { records, total })
    }

    async fn record_last_use(&self, id: &TokenId, at: OffsetDateTime) -> Result<bool, StoreError> {
        let mut shard = write(self.shard(id));
        Ok(match shard.get_mut(id) {
            Some(r) if r.last_used_at.is_none_or(|t| t < at) => {
                Arc::make_mut(r).last_used_at = Some(at);
                true
            }
            _ => false,
        })
    }

    async fn revoke(
        &self,
        id: &TokenId,
        owner: &str,
        at: OffsetDateTime,
        reason: Option<&str>,
    ) -> Result<RevokeOutcome, StoreError> {
        let mut shard = write(self.shard(id));
        Ok(match shard.get_mut(id) {
            Some(r) if *r.owner == *owner => match r.revoked_at {
                Some(when) => RevokeOutcome::AlreadyRevoked(when),
                None => {
                    let r = Arc::make_mut(r);
                    r.revoked_at = Some(at);
                    r.revocation_reason = reason.map(Arc::from);
                    RevokeOutcome::Revoked
                }
            },
            _ => RevokeOutcome::NotFound,
        })
    }

    async fn revoke_all(
        &self,
        owner: &str,
        tenant: Option<&str>,
        at: OffsetDateTime,
        reason: Option<&str>,
    ) -> Result<u64, StoreError> {
        let reason: Option<Arc<str>> = reason.map(Arc::from);
        let mut count = 0;
        for id in self.owner_ids(owner) {
            let mut shard = write(self.shard(&id));
            if let Some(r) = shard.get_mut(&id) {
                if r.revoked_at.is_none() && tenant.is_none_or(|t| r.tenant.as_deref() == Some(t)) {
                    let r = Arc::make_mut(r);
                    r.revoked_at = Some(at);
                    r.revocation_reason = reason.clone();
                    count += 1;
                }
            }
        }
        Ok(count)
    }

    async fn shorten_expiry(&self, id: &TokenId, at: OffsetDateTime) -> Result<bool, StoreError> {
        let mut shard = write(self.shard(id));
        Ok(match shard.get_mut(id) {
            Some(r) if r.revoked_at.is_none() && r.expires_at.is_none_or(|e| at < e) => {
                Arc::make_mut(r).expires_at = Some(at);
                true
            }
            _ => false,
        })
    }

    async fn purge(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        let mut removed: Vec<(Arc<str>, TokenId)> = Vec::new();
        for shard in self.shards.iter() {
            write(shard).retain(|id, r| {
                let dead = r.revoked_at.is_some_and(|t| t < before)
                    || r.expires_at.is_some_and(|t| t < before);
                if dead {
                    removed.push((r.owner.clone(), *id));
                }
                !dead
            });
        }
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
        }
        Ok(removed.len() as u64)
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
