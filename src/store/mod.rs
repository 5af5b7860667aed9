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
//! A store keeps [`TokenRecord`]s by [`TokenId`]. Every rule about tokens
//! is decided by the crate; what a store must give is **atomicity**. Each write method
//! reads, decides and writes as one step (one lock, one transaction, or one conditional
//! statement), so that any interleaving of concurrent calls leaves what some sequential
//! order of them would have left:
//!
//! - `insert` never overwrites: an existing id is
//!   [`StoreError::duplicate_id`](crate::StoreError::duplicate_id);
//! - `get` is the verify path: one lookup by id, nothing else;
//! - `record_last_use` only moves `last_used_at` forward;
//! - `update` reads the record, lets the [`Change`] decide on a copy, and writes the copy
//!   back if it approved, with no other write to that record in between;
//! - `rotate` is `update` plus inserting the successor, both or neither, and no
//!   `revoke_all` of the same owner may interleave with it;
//! - `revoke_all` revokes, in one step, every not-yet-revoked record that [`RevokeAll`]
//!   selects, and counts them;
//! - `purge` deletes only records revoked or expired before the given instant;
//! - once a write returns, every later `get` sees it; timestamps read back exactly as
//!   written (UTC, microseconds).
//!
//! Failures are [`StoreError`](crate::StoreError)s: say which
//! [`StoreErrorKind`](crate::StoreErrorKind) (an unreachable backend is `Unavailable`, a row
//! you cannot read is `Corrupt`) and keep the backend's error as the source. A store that
//! talks to a network should also bound every call by a deadline, and answer
//! `Unavailable` when it passes.
//!
//! Here is a whole store, one `Mutex` around a `HashMap`, that passes the conformance suite:
//!
//! ```
//! use std::collections::HashMap;
//! use std::collections::hash_map::Entry;
//! use std::sync::{Arc, Mutex, MutexGuard};
//!
//! use api_tokens::store::{Change, ListFilter, ListPage, RevokeAll};
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
//! /// Let `change` decide on a copy of the record `id`; keep the copy if it approves.
//! fn apply(map: &mut HashMap<TokenId, Arc<TokenRecord>>, id: &TokenId, change: &mut Change<'_>) -> Option<bool> {
//!     let current = map.get_mut(id)?;
//!     let mut copy = TokenRecord::clone(current);
//!     let approved = change.apply(&mut copy);
//!     if approved {
//!         *current = Arc::new(copy);
//!     }
//!     Some(approved)
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
//!     async fn update(&self, id: &TokenId, change: &mut Change<'_>) -> Result<bool, StoreError> {
//!         Ok(apply(&mut self.map(), id, change).is_some())
//!     }
//!
//!     async fn rotate(
//!         &self,
//!         id: &TokenId,
//!         change: &mut Change<'_>,
//!         successor: &TokenRecord,
//!     ) -> Result<bool, StoreError> {
//!         let mut map = self.map();
//!         if map.contains_key(&successor.id) {
//!             return Err(StoreError::duplicate_id());
//!         }
//!         match apply(&mut map, id, change) {
//!             Some(true) => {
//!                 map.insert(successor.id, Arc::new(successor.clone()));
//!                 Ok(true)
//!             }
//!             found => Ok(found.is_some()),
//!         }
//!     }
//!
//!     async fn revoke_all(&self, all: &RevokeAll<'_>) -> Result<u64, StoreError> {
//!         let mut count = 0;
//!         for r in self.map().values_mut().filter(|r| all.selects(r)) {
//!             let r = Arc::make_mut(r);
//!             r.revoked_at = Some(all.at);
//!             r.revocation_reason = all.reason.map(Into::into);
//!             count += 1;
//!         }
//!         Ok(count)
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
//! # tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_time().build().unwrap().block_on(
//! api_tokens::testkit::run_all(|| async { MapStore::default() })
//! # );
//! ```
//!
//! The other methods are optional. `read_now` lends a record to verification without
//! waiting or copying, and `get_now` answers a read without waiting, for stores that can (the
//! first spares verification a copy and a shared reference count, both spare it a future;
//! the default `read_now` lends what `get_now` answers). `read_counted_now`, which
//! verification calls, lends the record as a [`RecordRef`](crate::RecordRef) (by default
//! `RecordRef::from` what `read_now` lends; the memory store lends its compact form) and
//! also the [`RateCell`](crate::RateCell) a store in memory keeps beside each record, so that an
//! in-process limiter counts a rate-limited token on a cache line verification has just
//! read (the default lends none, and the limiter counts by key; a store that keeps cells
//! must move each one across every replacement of its record, as the cell's documentation
//! says). `insert_capped` and
//! `rotate_capped`, an insert and a rotation that respect a cap on an owner's active tokens
//! (counted in the same atomic step), are needed only when the
//! [`TokenPolicy`](crate::TokenPolicy) sets one; `insert_child` (checking the creator with
//! [`ChildRules::creator_allows`]), `revoke_descendants` and `update_descendants` only for
//! tokens created by tokens ([`NewToken::child_of`](crate::NewToken::child_of));
//! `list_expiring` only for [`ApiTokens::list_expiring`](crate::ApiTokens::list_expiring)
//! (expiry notices); `record_last_uses` writes many last uses at once (the default writes
//! them one by one). Without one of the first five, the operation that needs it fails with
//! a clear [`StoreErrorKind::Unsupported`](crate::StoreErrorKind::Unsupported) error, and
//! the conformance cases that need it accept that answer. The record's newer fields
//! (`created_by`, `suspended_at`, `metadata`, `allowed_ips`) are plain values to keep and
//! give back, like the others.
//!
//! Methods return `impl Future + Send`, so they may be written as `async fn` and no
//! `async-trait` is needed. A store behind an `Arc` is a store too, and
//! [`DynTokenStore`](crate::DynTokenStore) hides a store's type from handlers and
//! extractors.

use time::OffsetDateTime;

use crate::record::TokenRecord;
use crate::token::TokenId;

#[cfg(feature = "cache")]
pub(crate) mod cached;
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
    /// Only tokens of this issuer (the token prefix).
    pub prefix: &'a str,
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
    /// A filter for `owner`'s active tokens of issuer `prefix` at `now`: the first page, of
    /// [`DEFAULT_PER_PAGE`](crate::limits::DEFAULT_PER_PAGE).
    pub fn new(prefix: &'a str, owner: &'a str, now: OffsetDateTime) -> Self {
        Self {
            prefix,
            owner,
            tenant: None,
            include_inactive: false,
            now,
            offset: 0,
            limit: crate::limits::DEFAULT_PER_PAGE,
        }
    }

    /// Whether `record` passes this filter (ignoring offset and limit).
    pub fn matches(&self, record: &TokenRecord) -> bool {
        *record.owner == *self.owner
            && *record.prefix == *self.prefix
            && self
                .tenant
                .is_none_or(|t| record.tenant.as_deref() == Some(t))
            && (self.include_inactive || record.is_active(self.now))
    }
}

/// Which records [`TokenStore::list_expiring`](crate::TokenStore::list_expiring) returns:
/// every owner's tokens of one issuer that are not revoked and expire after `now` and no
/// later than `until`, soonest first (then by id).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ExpiringFilter<'a> {
    /// Only tokens of this issuer (the token prefix).
    pub prefix: &'a str,
    /// Tokens that expire after this instant...
    pub now: OffsetDateTime,
    /// ...and no later than this one.
    pub until: OffsetDateTime,
    /// Records to skip (soonest first).
    pub offset: u64,
    /// Most records to return.
    pub limit: u32,
}

impl<'a> ExpiringFilter<'a> {
    pub(crate) fn new(prefix: &'a str, now: OffsetDateTime, until: OffsetDateTime) -> Self {
        Self {
            prefix,
            now,
            until,
            offset: 0,
            limit: crate::limits::DEFAULT_PER_PAGE,
        }
    }

    /// Whether `record` passes this filter (ignoring offset and limit).
    pub fn matches(&self, record: &TokenRecord) -> bool {
        *record.prefix == *self.prefix
            && record.revoked_at.is_none()
            && record
                .expires_at
                .is_some_and(|at| at > self.now && at <= self.until)
    }

    /// The page this filter asks for out of every record that matches it, sorted soonest
    /// first. For stores that filter in memory.
    pub fn page_of(&self, mut records: Vec<TokenRecord>) -> ListPage {
        records.sort_unstable_by_key(|r| (r.expires_at, r.id));
        let total = records.len() as u64;
        let start = usize::try_from(self.offset)
            .unwrap_or(usize::MAX)
            .min(records.len());
        let end = start.saturating_add(self.limit as usize).min(records.len());
        records.truncate(end);
        records.drain(..start);
        ListPage { records, total }
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

/// A decision about one record, made by the crate and applied by a store inside its
/// atomic step ([`TokenStore::update`](crate::TokenStore::update),
/// [`TokenStore::rotate`](crate::TokenStore::rotate)).
///
/// [`apply`](Self::apply) is given a copy of the current record, may change it, and says
/// whether to write the copy back. A store calls it at most once per call, while nothing
/// else can write that record.
pub struct Change<'a> {
    decide: &'a mut (dyn FnMut(&mut TokenRecord) -> bool + Send + 'a),
}

impl<'a> Change<'a> {
    /// A change decided by `decide`.
    pub(crate) fn new(decide: &'a mut (dyn FnMut(&mut TokenRecord) -> bool + Send + 'a)) -> Self {
        Self { decide }
    }

    /// Decide on `record` (a copy of the stored one), changing it if needed. `true`: write
    /// the copy back; `false`: leave the stored record as it was.
    pub fn apply(&mut self, record: &mut TokenRecord) -> bool {
        (self.decide)(record)
    }
}

impl std::fmt::Debug for Change<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Change")
    }
}

/// What a token created by another must keep to, checked by
/// [`TokenStore::insert_child`](crate::TokenStore::insert_child) against the creator's
/// record as it is inside the store's atomic step (not as it was when the creator was
/// verified, which an edit or a suspension may have changed since).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ChildRules {
    /// The owner's cap on active tokens of the issuer, if any.
    pub cap: Option<u32>,
    /// The time of the insert.
    pub now: OffsetDateTime,
    /// Whether the child may expire after its creator
    /// ([`TokenPolicy::children_may_outlive_creators`](crate::TokenPolicy::children_may_outlive_creators)).
    pub may_outlive_creator: bool,
}

impl ChildRules {
    pub(crate) fn new(cap: Option<u32>, now: OffsetDateTime, may_outlive_creator: bool) -> Self {
        Self {
            cap,
            now,
            may_outlive_creator,
        }
    }

    /// Whether `creator` (the current record of `child.created_by`) may create `child`: of
    /// the same owner and issuer, active at `now` (not revoked, not expired), not suspended,
    /// holding every scope of the child and (unless the child may outlive it) expiring no
    /// earlier than the child. Stores call this inside their atomic step.
    pub fn creator_allows(&self, creator: &TokenRecord, child: &TokenRecord) -> bool {
        let outlives = match (creator.expires_at, child.expires_at) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(limit), Some(at)) => at > limit,
        };
        child.created_by == Some(creator.id)
            && *creator.owner == *child.owner
            && *creator.prefix == *child.prefix
            && creator.is_active(self.now)
            && creator.suspended_at.is_none()
            && creator.scopes.contains_all(&child.scopes)
            && (self.may_outlive_creator || !outlives)
    }
}

/// Which records [`TokenStore::update_descendants`](crate::TokenStore::update_descendants)
/// changes: the tokens created by one token, and by those, of one owner and issuer.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Descendants<'a> {
    /// The token whose descendants are changed (not itself).
    pub of: TokenId,
    /// Only tokens of this issuer (the token prefix).
    pub prefix: &'a str,
    /// Only tokens of this owner.
    pub owner: &'a str,
}

impl<'a> Descendants<'a> {
    pub(crate) fn new(of: TokenId, prefix: &'a str, owner: &'a str) -> Self {
        Self { of, prefix, owner }
    }
}

/// What [`TokenStore::consume_use`](crate::TokenStore::consume_use) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UseOutcome {
    /// One use was consumed; this many are left.
    Consumed {
        /// Uses left after this one.
        remaining: u64,
    },
    /// None was left (after any refill due): nothing was written.
    Exhausted,
    /// The token does not count its uses: nothing was written (a token that is gone is
    /// [`Exhausted`](Self::Exhausted)).
    NotCounted,
}

/// What [`TokenStore::insert_child`](crate::TokenStore::insert_child) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChildInsert {
    /// The record was stored.
    Inserted,
    /// The creator is missing, of another owner or issuer, revoked, expired or suspended, or
    /// no longer holds what the child would carry ([`ChildRules::creator_allows`]): nothing
    /// was written.
    CreatorNotActive,
    /// The owner's cap on active tokens was reached: nothing was written.
    CapReached,
}

/// Which records [`TokenStore::revoke_all`](crate::TokenStore::revoke_all) revokes, and how.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RevokeAll<'a> {
    /// Tokens of this issuer (the token prefix).
    pub prefix: &'a str,
    /// Tokens of this owner.
    pub owner: &'a str,
    /// Only this tenant's tokens, if set.
    pub tenant: Option<&'a str>,
    /// When they are revoked.
    pub at: OffsetDateTime,
    /// Why, if a reason was given.
    pub reason: Option<&'a str>,
}

impl<'a> RevokeAll<'a> {
    /// Revoke `owner`'s tokens of issuer `prefix` (only `tenant`'s, if given) at `at`.
    pub(crate) fn new(
        prefix: &'a str,
        owner: &'a str,
        tenant: Option<&'a str>,
        at: OffsetDateTime,
        reason: Option<&'a str>,
    ) -> Self {
        Self {
            prefix,
            owner,
            tenant,
            at,
            reason,
        }
    }

    /// Whether `record` is one to revoke: the owner's, the issuer's, the tenant's if one is
    /// given, and not revoked yet.
    pub fn selects(&self, record: &TokenRecord) -> bool {
        record.revoked_at.is_none()
            && *record.owner == *self.owner
            && *record.prefix == *self.prefix
            && self
                .tenant
                .is_none_or(|t| record.tenant.as_deref() == Some(t))
    }
}
