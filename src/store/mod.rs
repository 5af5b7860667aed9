//! Pluggable, async token storage.
//!
//! [`TokenStore`] is shaped like storage, not like the domain: it inserts, reads and updates
//! records, and every rule about tokens (validation, hashing, expiry, scopes, when to record
//! last use) lives in [`ApiTokens`](crate::ApiTokens). That keeps a new backend small and makes
//! every backend behave the same, which the [conformance suite](crate::testkit) checks.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use time::OffsetDateTime;

use crate::record::TokenRecord;
use crate::token::TokenId;

pub mod memory;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) mod sql;
#[cfg(feature = "sqlite")]
pub mod sqlite;

/// What went wrong in a store, in terms a caller can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// A record with this id already exists; nothing was written.
    DuplicateId,
    /// The backend cannot be reached, is restarting, or has no free connection. Retrying
    /// later may succeed.
    Unavailable,
    /// The backend returned data this crate cannot read (a damaged row, a foreign schema).
    Corrupt,
    /// Any other backend failure.
    Other,
}

/// A store failure. The backend's own error, if any, is kept as [`source`](StdError::source)
/// so that this type never names a backend's types and backends can be upgraded freely.
pub struct StoreError {
    kind: StoreErrorKind,
    message: &'static str,
    source: Option<Box<dyn StdError + Send + Sync + 'static>>,
}

impl StoreError {
    /// An error of `kind`, with a short fixed description of what was being done.
    pub fn new(kind: StoreErrorKind, message: &'static str) -> Self {
        Self {
            kind,
            message,
            source: None,
        }
    }

    /// Attach the backend's error as the source.
    pub fn with_source(mut self, source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// A record with this id already exists.
    pub fn duplicate_id() -> Self {
        Self::new(
            StoreErrorKind::DuplicateId,
            "a token with this id already exists",
        )
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }

    /// The HTTP status: 503 while the backend is unavailable, 500 otherwise.
    pub fn status(&self) -> u16 {
        match self.kind {
            StoreErrorKind::Unavailable => 503,
            _ => 500,
        }
    }

    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self.kind {
            StoreErrorKind::Unavailable => "store_unavailable",
            StoreErrorKind::DuplicateId => "duplicate_id",
            _ => "store_error",
        }
    }
}

impl fmt::Debug for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreError")
            .field("kind", &self.kind)
            .field("message", &self.message)
            .field("source", &self.source)
            .finish()
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message)?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl StdError for StoreError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

/// Which of an owner's records [`TokenStore::list`] returns.
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

/// One page of [`TokenStore::list`].
#[derive(Debug, Clone, Default)]
pub struct ListPage {
    /// The records, newest first (`created_at` descending, then id descending).
    pub records: Vec<TokenRecord>,
    /// How many records match the filter, over all pages.
    pub total: u64,
}

/// What [`TokenStore::revoke`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeOutcome {
    /// The token was active or expired and is now revoked.
    Revoked,
    /// The token had already been revoked, at this time; nothing changed.
    AlreadyRevoked(OffsetDateTime),
    /// No token with this id belongs to this owner.
    NotFound,
}

/// Storage for token records.
///
/// Implementations must be safe to share between tasks and must keep these rules, which the
/// [conformance suite](crate::testkit) checks:
///
/// - `insert` fails with [`StoreErrorKind::DuplicateId`] on an existing id and never overwrites;
/// - `record_last_use` only moves `last_used_at` forward;
/// - `revoke` changes a record only if it is not yet revoked, atomically, so two racing revokes
///   cannot both win; a revoked record stays revoked;
/// - `shorten_expiry` only moves `expires_at` earlier;
/// - once a write returns, every later `get` sees it;
/// - timestamps read back exactly as written (microsecond precision, UTC).
///
/// Methods return `impl Future + Send`, so implementations may use `async fn` and no
/// `async-trait` is needed. The trait is implemented for `Arc<T>`.
pub trait TokenStore: Send + Sync + 'static {
    /// Store a new record. Fails with [`StoreErrorKind::DuplicateId`] if the id exists.
    fn insert(&self, record: &TokenRecord) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The record with this id, if any. This is the verify path: one lookup.
    ///
    /// The record is shared (`Arc`) so that a store holding records in memory hands one out
    /// without copying it; a database store wraps the row it read.
    fn get(
        &self,
        id: &TokenId,
    ) -> impl Future<Output = Result<Option<Arc<TokenRecord>>, StoreError>> + Send;

    /// One page of an owner's records, newest first, and the total that match.
    fn list(
        &self,
        filter: &ListFilter<'_>,
    ) -> impl Future<Output = Result<ListPage, StoreError>> + Send;

    /// Set `last_used_at` to `at` if it is unset or earlier. Returns whether it changed.
    fn record_last_use(
        &self,
        id: &TokenId,
        at: OffsetDateTime,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Revoke the token `id` of `owner` at `at`, unless it is already revoked.
    fn revoke(
        &self,
        id: &TokenId,
        owner: &str,
        at: OffsetDateTime,
        reason: Option<&str>,
    ) -> impl Future<Output = Result<RevokeOutcome, StoreError>> + Send;

    /// Revoke every not-yet-revoked token of `owner` (only of `tenant`, if given). Returns how
    /// many were revoked.
    fn revoke_all(
        &self,
        owner: &str,
        tenant: Option<&str>,
        at: OffsetDateTime,
        reason: Option<&str>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Set `expires_at` to `at` if the token is not revoked and `at` is earlier than its
    /// current expiry (or it had none). Returns whether it changed.
    fn shorten_expiry(
        &self,
        id: &TokenId,
        at: OffsetDateTime,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Delete records revoked before `before` or expired before `before`. Returns how many.
    fn purge(&self, before: OffsetDateTime)
    -> impl Future<Output = Result<u64, StoreError>> + Send;
}

impl<T: TokenStore> TokenStore for Arc<T> {
    fn insert(&self, record: &TokenRecord) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).insert(record)
    }

    fn get(
        &self,
        id: &TokenId,
    ) -> impl Future<Output = Result<Option<Arc<TokenRecord>>, StoreError>> + Send {
        (**self).get(id)
    }

    fn list(
        &self,
        filter: &ListFilter<'_>,
    ) -> impl Future<Output = Result<ListPage, StoreError>> + Send {
        (**self).list(filter)
    }

    fn record_last_use(
        &self,
        id: &TokenId,
        at: OffsetDateTime,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).record_last_use(id, at)
    }

    fn revoke(
        &self,
        id: &TokenId,
        owner: &str,
        at: OffsetDateTime,
        reason: Option<&str>,
    ) -> impl Future<Output = Result<RevokeOutcome, StoreError>> + Send {
        (**self).revoke(id, owner, at, reason)
    }

    fn revoke_all(
        &self,
        owner: &str,
        tenant: Option<&str>,
        at: OffsetDateTime,
        reason: Option<&str>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        (**self).revoke_all(owner, tenant, at, reason)
    }

    fn shorten_expiry(
        &self,
        id: &TokenId,
        at: OffsetDateTime,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).shorten_expiry(id, at)
    }

    fn purge(
        &self,
        before: OffsetDateTime,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        (**self).purge(before)
    }
}
