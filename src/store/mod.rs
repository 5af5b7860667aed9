//! Pluggable, async token storage: the types a [`TokenStore`](crate::TokenStore) is given
//! and returns, and a guide to writing one.
//!
//! `TokenStore` is shaped like storage, not like the domain: it inserts, reads and updates
//! records, and every rule about tokens (validation, hashing, expiry, scopes, when to record
//! last use) lives in [`ApiTokens`](crate::ApiTokens). That keeps a new backend small and
//! makes every backend behave the same, which the conformance suite (feature `testkit`)
//! checks.
//!
//! | store | feature | for |
//! |---|---|---|
//! | [`MemoryStore`](crate::MemoryStore) | (always) | single-instance services, tests, examples |
//! | `SqliteStore` | `sqlite` | a single-node service that wants a file |
//! | `PostgresStore` | `postgres` | services with more than one instance |
//! | [`DynTokenStore`](crate::DynTokenStore) | (always) | any of the above, behind one type |
//!
//! # Implementing a store
//!
//! A store keeps [`TokenRecord`]s by [`TokenId`](crate::TokenId). The
//! rules below are what make the crate's guarantees hold; each write method **reads,
//! decides and writes as one atomic step** (one lock, one transaction, or one conditional
//! statement such as `UPDATE … WHERE revoked_at IS NULL`), so that two racing calls can
//! never both win:
//!
//! - `insert` never overwrites: an existing id is
//!   [`StoreError::duplicate_id`](crate::StoreError::duplicate_id);
//! - `get` is the verify path: one lookup by id, nothing else;
//! - `record_last_use` only moves `last_used_at` forward;
//! - `revoke` changes a record only if it belongs to the owner and is not yet revoked, and
//!   reports which of [`RevokeOutcome`] happened; a revoked record stays revoked;
//! - `revoke_all` revokes only not-yet-revoked records and counts them;
//! - `shorten_expiry` only moves `expires_at` earlier, and never touches a revoked record;
//! - `purge` deletes only records revoked or expired before the given instant;
//! - once a write returns, every later `get` sees it; timestamps read back exactly as
//!   written (UTC, microseconds).
//!
//! Failures are [`StoreError`](crate::StoreError)s: say which
//! [`StoreErrorKind`](crate::StoreErrorKind) (an unreachable backend is `Unavailable`, a row
//! you cannot read is `Corrupt`) and keep the backend's error as the source.
//!
//! Here is a whole store, one `Mutex` around a `HashMap`, that passes the conformance suite:
//!
//! ```
//! use std::collections::HashMap;
//! use std::collections::hash_map::Entry;
//! use std::sync::{Arc, Mutex, MutexGuard};
//!
//! use api_tokens::store::{ListFilter, ListPage, RevokeOutcome};
//! use api_tokens::{StoreError, TokenId, TokenRecord, TokenStore};
//! use time::OffsetDateTime;
//!
//! /// Every record behind one lock: each method reads, decides and writes while holding it.
//! #[derive(Default)]
//! struct MapStore(Mutex<HashMap<TokenId, Arc<TokenRecord>>>);
//!
//! impl MapStore {
//!     fn map(&self) -> MutexGuard<'_, HashMap<TokenId, Arc<TokenRecord>>> {
//!         self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
//!     }
//! }
//!
//! impl TokenStore for MapStore {
//!     async fn insert(&self, record: &TokenRecord) -> Result<(), StoreError> {
//!         match self.map().entry(record.id) {
//!             Entry::Occupied(_) => Err(StoreError::duplicate_id()),
//!             Entry::Vacant(slot) => {
//!                 slot.insert(Arc::new(record.clone()));
//!                 Ok(())
//!             }
//!         }
//!     }
//!
//!     async fn get(&self, id: &TokenId) -> Result<Option<Arc<TokenRecord>>, StoreError> {
//!         Ok(self.map().get(id).cloned())
//!     }
//!
//!     async fn list(&self, filter: &ListFilter<'_>) -> Result<ListPage, StoreError> {
//!         let map = self.map();
//!         let matching = map.values().filter(|r| filter.matches(r)).map(|r| (**r).clone());
//!         Ok(ListPage::from_matching(matching.collect(), filter))
//!     }
//!
//!     async fn record_last_use(&self, id: &TokenId, at: OffsetDateTime) -> Result<bool, StoreError> {
//!         let mut map = self.map();
//!         match map.get_mut(id) {
//!             Some(r) if r.last_used_at.is_none_or(|t| t < at) => {
//!                 Arc::make_mut(r).last_used_at = Some(at); // copy-on-write
//!                 Ok(true)
//!             }
//!             _ => Ok(false),
//!         }
//!     }
//!
//!     async fn revoke(
//!         &self,
//!         id: &TokenId,
//!         owner: &str,
//!         at: OffsetDateTime,
//!         reason: Option<&str>,
//!     ) -> Result<RevokeOutcome, StoreError> {
//!         let mut map = self.map();
//!         let Some(r) = map.get_mut(id).filter(|r| *r.owner == *owner) else {
//!             return Ok(RevokeOutcome::NotFound);
//!         };
//!         if let Some(when) = r.revoked_at {
//!             return Ok(RevokeOutcome::AlreadyRevoked(when));
//!         }
//!         let r = Arc::make_mut(r);
//!         r.revoked_at = Some(at);
//!         r.revocation_reason = reason.map(Into::into);
//!         Ok(RevokeOutcome::Revoked)
//!     }
//!
//!     async fn revoke_all(
//!         &self,
//!         owner: &str,
//!         tenant: Option<&str>,
//!         at: OffsetDateTime,
//!         reason: Option<&str>,
//!     ) -> Result<u64, StoreError> {
//!         let mut count = 0;
//!         for r in self.map().values_mut() {
//!             let applies = *r.owner == *owner
//!                 && r.revoked_at.is_none()
//!                 && tenant.is_none_or(|t| r.tenant.as_deref() == Some(t));
//!             if applies {
//!                 let r = Arc::make_mut(r);
//!                 r.revoked_at = Some(at);
//!                 r.revocation_reason = reason.map(Into::into);
//!                 count += 1;
//!             }
//!         }
//!         Ok(count)
//!     }
//!
//!     async fn shorten_expiry(&self, id: &TokenId, at: OffsetDateTime) -> Result<bool, StoreError> {
//!         let mut map = self.map();
//!         match map.get_mut(id) {
//!             Some(r) if r.revoked_at.is_none() && r.expires_at.is_none_or(|e| at < e) => {
//!                 Arc::make_mut(r).expires_at = Some(at);
//!                 Ok(true)
//!             }
//!             _ => Ok(false),
//!         }
//!     }
//!
//!     async fn purge(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
//!         let mut map = self.map();
//!         let size = map.len();
//!         map.retain(|_, r| {
//!             !(r.revoked_at.is_some_and(|t| t < before) || r.expires_at.is_some_and(|t| t < before))
//!         });
//!         Ok((size - map.len()) as u64)
//!     }
//! }
//!
//! // In your tests: `api_tokens::conformance_tests!(async { MapStore::default() });`
//! // defines one test per rule. Here, the same cases run one after another:
//! # #[cfg(feature = "testkit")]
//! # tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap().block_on(
//! api_tokens::testkit::run_all(|| async { MapStore::default() })
//! # );
//! ```
//!
//! Methods return `impl Future + Send`, so they may be written as `async fn` and no
//! `async-trait` is needed. A store behind an `Arc` is a store too, and
//! [`DynTokenStore`](crate::DynTokenStore) hides a store's type from handlers and
//! extractors.

use time::OffsetDateTime;

use crate::record::TokenRecord;

pub(crate) mod dynamic;
pub(crate) mod memory;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) mod sql;
#[cfg(feature = "sqlite")]
pub(crate) mod sqlite;
pub(crate) mod token_store;

/// Which of an owner's records [`TokenStore::list`](crate::TokenStore::list) returns.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ListFilter<'a> {
    /// Only this owner's tokens.
    pub owner: &'a str,
    /// Only this tenant's tokens, if set.
    pub tenant: Option<&'a str>,
    /// Include revoked and expired tokens.
    pub include_inactive: bool,
    /// "Now", for deciding what has expired.
    pub now: OffsetDateTime,
    /// Records to skip (in newest-first order).
    pub offset: u64,
    /// Most records to return.
    pub limit: u32,
}

impl<'a> ListFilter<'a> {
    /// A filter for `owner`'s active tokens at `now`, first page of 20.
    pub fn new(owner: &'a str, now: OffsetDateTime) -> Self {
        Self {
            owner,
            tenant: None,
            include_inactive: false,
            now,
            offset: 0,
            limit: 20,
        }
    }

    /// Whether `record` passes this filter (ignoring offset and limit).
    pub fn matches(&self, record: &TokenRecord) -> bool {
        *record.owner == *self.owner
            && self
                .tenant
                .is_none_or(|t| record.tenant.as_deref() == Some(t))
            && (self.include_inactive || record.is_active(self.now))
    }
}

/// One page of [`TokenStore::list`](crate::TokenStore::list).
#[derive(Debug, Clone, Default)]
pub struct ListPage {
    /// The records, newest first (`created_at` descending, then id descending).
    pub records: Vec<TokenRecord>,
    /// How many records match the filter, over all pages.
    pub total: u64,
}

impl ListPage {
    /// The page `filter` asks for out of every record that matches it: sorted newest first
    /// (`created_at`, then id, descending), `offset` skipped, at most `limit` kept, and the
    /// total counted. For stores that filter in memory.
    pub fn from_matching(mut records: Vec<TokenRecord>, filter: &ListFilter<'_>) -> Self {
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
        Self { records, total }
    }
}

/// What [`TokenStore::revoke`](crate::TokenStore::revoke) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeOutcome {
    /// The token was active or expired and is now revoked.
    Revoked,
    /// The token had already been revoked, at this time; nothing changed.
    AlreadyRevoked(OffsetDateTime),
    /// No token with this id belongs to this owner.
    NotFound,
}
