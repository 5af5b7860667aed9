//! [`TokenStore`]: the storage trait every backend implements.

use std::future::Future;
use std::sync::Arc;

use time::OffsetDateTime;

use super::{ListFilter, ListPage, RevokeOutcome};
use crate::error::StoreError;
use crate::record::TokenRecord;
use crate::token::TokenId;

/// Storage for token records.
///
/// Implementations must be safe to share between tasks and must keep these rules, which the
/// conformance suite (`api_tokens::testkit`, feature `testkit`) checks; the
/// [store guide](crate::store#implementing-a-store) shows a whole store that keeps them:
///
/// - `insert` fails with [`StoreErrorKind::DuplicateId`](crate::StoreErrorKind::DuplicateId) on an existing id and never overwrites;
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
    /// Store a new record. Fails with [`StoreErrorKind::DuplicateId`](crate::StoreErrorKind::DuplicateId) if the id exists.
    fn insert(&self, record: &TokenRecord) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The record with this id, if any. This is the verify path: one lookup.
    ///
    /// The record is shared (`Arc`) so that a store holding records in memory hands one out
    /// without copying it; a database store wraps the row it read.
    fn get(
        &self,
        id: &TokenId,
    ) -> impl Future<Output = Result<Option<Arc<TokenRecord>>, StoreError>> + Send;

    /// The record with this id **if the store can answer at once**, without waiting (a store
    /// in memory, a cache hit); `None` if it would have to wait, and the caller then awaits
    /// [`get`](Self::get). Verification tries this first.
    ///
    /// Optional: the default answers `None`. A store that implements it must answer exactly
    /// what `get` would. It spares a store behind [`DynTokenStore`](crate::DynTokenStore)
    /// the boxed future of `get`.
    fn get_now(&self, id: &TokenId) -> Option<Result<Option<Arc<TokenRecord>>, StoreError>> {
        let _ = id;
        None
    }

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

    fn get_now(&self, id: &TokenId) -> Option<Result<Option<Arc<TokenRecord>>, StoreError>> {
        (**self).get_now(id)
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
