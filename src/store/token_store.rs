//! [`TokenStore`]: the storage trait every backend implements.

use std::future::Future;
use std::sync::Arc;

use time::OffsetDateTime;

use super::{
    Change, ChildInsert, ChildRules, Descendants, ExpiringFilter, ListFilter, ListPage, RevokeAll,
    UseOutcome,
};
use crate::error::{StoreError, StoreErrorKind};
use crate::record::{RateCell, RecordRef, TokenRecord};
use crate::token::TokenId;

/// Storage for token records.
///
/// Implementations must be safe to share between tasks and keep the rules the
/// [store guide](crate::store#implementing-a-store) states (each write is one atomic
/// step), which the conformance suite (`api_tokens::testkit`, feature `testkit`) checks.
///
/// Methods return `impl Future + Send`, so implementations may use `async fn` and no
/// `async-trait` is needed. The trait is implemented for `Arc<T>`.
pub trait TokenStore: Send + Sync + 'static {
    /// Store a new record. Fails with
    /// [`StoreErrorKind::DuplicateId`](crate::StoreErrorKind::DuplicateId) if the id exists.
    fn insert(&self, record: &TokenRecord) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Store a new record only if its owner has fewer than `cap` active tokens of its
    /// issuer at `now` (not revoked, not expired); `false` if the cap is reached, and then
    /// nothing is written. The count and the insert are one atomic step.
    ///
    /// Optional: only a [`TokenPolicy`](crate::TokenPolicy) with
    /// `max_active_per_owner` calls it. The default fails, saying the store cannot.
    fn insert_capped(
        &self,
        record: &TokenRecord,
        cap: u32,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        let _ = (record, cap, now);
        std::future::ready(Err(StoreError::new(
            StoreErrorKind::Unsupported,
            "this store cannot cap an owner's active tokens; implement \
             `TokenStore::insert_capped` or turn `max_active_per_owner` off",
        )))
    }

    /// Store a new record created by another token (`record.created_by` is set), only if
    /// [`rules.creator_allows`](ChildRules::creator_allows) the creator's current record
    /// (same owner and issuer, active at `rules.now`, not suspended, holding the child's
    /// scopes and, unless the child may outlive it, expiring no earlier) and, with a
    /// `rules.cap`, the owner has fewer than `cap` active tokens of its issuer. The checks
    /// and the insert are one atomic step, which no
    /// [`revoke_descendants`](Self::revoke_descendants) or
    /// [`update_descendants`](Self::update_descendants) of the same owner interleaves with:
    /// a token created while its creator is being revoked, suspended or narrowed is either
    /// refused or changed with the others.
    ///
    /// Optional: only [`NewToken::child_of`](crate::NewToken::child_of) calls it. The default
    /// fails, saying the store cannot. A store that implements it must implement
    /// `revoke_descendants` and `update_descendants` too.
    fn insert_child(
        &self,
        record: &TokenRecord,
        rules: &ChildRules,
    ) -> impl Future<Output = Result<ChildInsert, StoreError>> + Send {
        let _ = (record, rules);
        std::future::ready(Err(StoreError::new(
            StoreErrorKind::Unsupported,
            "this store cannot record which token created another; implement \
             `TokenStore::insert_child` (and `revoke_descendants`) or issue without a creator",
        )))
    }

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

    /// Lend the record with this id to `read` **if the store can answer at once**, and
    /// return what `read` returns; `None` (without calling `read`) if it would have to wait.
    /// Verification calls [`read_counted_now`](Self::read_counted_now), which by default
    /// lends what this lends.
    ///
    /// Optional: the default lends what [`get_now`](Self::get_now) answers. A store that
    /// keeps records in memory implements it (or
    /// [`read_counted_now`](Self::read_counted_now), which verification calls) to lend a
    /// record in place, without cloning it or counting a reference, so that verifications
    /// of one token on many threads write nothing they share. It must lend exactly what
    /// `get` would answer.
    fn read_now<R>(
        &self,
        id: &TokenId,
        read: impl FnOnce(Option<&TokenRecord>) -> R,
    ) -> Option<Result<R, StoreError>> {
        self.get_now(id)
            .map(|answer| answer.map(|record| read(record.as_deref())))
    }

    /// [`read_now`](Self::read_now), lending the record as a [`RecordRef`] (which a store
    /// may keep in a form of its own: the memory store's is compact) and also the
    /// [`RateCell`] the store keeps with the record for its rate limit, if it keeps one:
    /// verification calls this one, and an in-process limiter then counts on the cell rather
    /// than in a table of its own.
    ///
    /// Optional: the default lends what [`read_now`](Self::read_now) lends
    /// (`RecordRef::from(record)`) and no cell (the limiter counts by key). A store that
    /// keeps cells lends the one that counts for the token's bucket: a rotated token counts
    /// on its successor's cell (a successor inherits its predecessor's count), and it lends
    /// none where it has no such cell. It must keep each count across replacements of the
    /// record (see [`RateCell`]).
    fn read_counted_now<R>(
        &self,
        id: &TokenId,
        read: impl FnOnce(Option<RecordRef<'_>>, Option<&RateCell>) -> R,
    ) -> Option<Result<R, StoreError>> {
        self.read_now(id, |record| read(record.map(RecordRef::from), None))
    }

    /// One page of an owner's records, newest first, and the total that match.
    fn list(
        &self,
        filter: &ListFilter<'_>,
    ) -> impl Future<Output = Result<ListPage, StoreError>> + Send;

    /// One page of the tokens [`ExpiringFilter`] selects (every owner's, soonest expiry
    /// first), and the total that match: for expiry notices. Stores should index it
    /// (the SQL stores keep `(prefix, expires_at, id)` of tokens not revoked).
    ///
    /// Optional: the default fails, saying the store cannot (only
    /// [`ApiTokens::list_expiring`](crate::ApiTokens::list_expiring) calls it). A store
    /// that filters in memory can answer with [`ExpiringFilter::page_of`].
    fn list_expiring(
        &self,
        filter: &ExpiringFilter<'_>,
    ) -> impl Future<Output = Result<ListPage, StoreError>> + Send {
        let _ = filter;
        std::future::ready(Err(StoreError::new(
            StoreErrorKind::Unsupported,
            "this store cannot list tokens by expiry; implement `TokenStore::list_expiring`",
        )))
    }

    /// Set `last_used_at` to `at` if it is unset or earlier. Returns whether it changed.
    fn record_last_use(
        &self,
        id: &TokenId,
        at: OffsetDateTime,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// [`record_last_use`](Self::record_last_use) for many tokens at once: set each token's
    /// `last_used_at` to its instant if unset or earlier. Returns how many changed. An id that
    /// is not stored is skipped.
    ///
    /// Optional: the default calls `record_last_use` once per token. The SQL stores write
    /// them all in one statement; a `CachedStore` (feature `cache`) batches the last
    /// uses of its cached verifications through here.
    fn record_last_uses(
        &self,
        uses: &[(TokenId, OffsetDateTime)],
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        async move {
            let mut changed = 0;
            for (id, at) in uses {
                changed += u64::from(self.record_last_use(id, *at).await?);
            }
            Ok(changed)
        }
    }

    /// In one atomic step: read the record `id`, let `change` decide on a copy of it, and
    /// write the copy back if `change` approves. Returns whether the record exists (when it
    /// does not, `change` is not called).
    ///
    /// Revocation, expiry changes and every other change to one token go through here.
    fn update(
        &self,
        id: &TokenId,
        change: &mut Change<'_>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// [`update`](Self::update) the record `id` and, if `change` approves, insert
    /// `successor` too: both or neither, in one atomic step that no `revoke_all` of the same
    /// owner interleaves with. Returns whether the record `id` exists. An existing
    /// successor id fails with `DuplicateId` and changes nothing.
    fn rotate(
        &self,
        id: &TokenId,
        change: &mut Change<'_>,
        successor: &TokenRecord,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// [`rotate`](Self::rotate) under a cap on the owner's active tokens: if `change`
    /// approves but the owner would then hold `cap` or more active tokens of the successor's
    /// issuer at `now` besides the successor (the old token counts while it stays active,
    /// e.g. during a grace period), nothing is written. All in one atomic step.
    ///
    /// Returns `None` if there is no record `id`, `Some(false)` if the cap stopped the
    /// rotation, `Some(true)` otherwise (the change decided, and was written if it approved).
    ///
    /// Optional, like [`insert_capped`](Self::insert_capped): only a policy with
    /// `max_active_per_owner` calls it. The default fails, saying the store cannot.
    fn rotate_capped(
        &self,
        id: &TokenId,
        change: &mut Change<'_>,
        successor: &TokenRecord,
        cap: u32,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<Option<bool>, StoreError>> + Send {
        let _ = (id, change, successor, cap, now);
        std::future::ready(Err(StoreError::new(
            StoreErrorKind::Unsupported,
            "this token store cannot rotate under a cap on active tokens; implement \
             TokenStore::rotate_capped or unset TokenPolicy::max_active_per_owner",
        )))
    }

    /// Revoke every record [`RevokeAll::selects`] in one step. Returns how many.
    fn revoke_all(
        &self,
        all: &RevokeAll<'_>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Revoke, in one step, every not-yet-revoked record of `all`'s owner and issuer that
    /// `of` created, directly or through tokens it created (and their rotations'
    /// successors), as `all` says (`at`, `reason`; `all.tenant` is ignored). Returns how
    /// many. Atomic with respect to [`insert_child`](Self::insert_child) and `rotate` for
    /// the same owner.
    ///
    /// Optional: the default revokes nothing and answers 0, which is right for a store that
    /// does not implement `insert_child` (it holds no created tokens).
    fn revoke_descendants(
        &self,
        of: &TokenId,
        all: &RevokeAll<'_>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        let _ = (of, all);
        std::future::ready(Ok(0))
    }

    /// Apply `change` to every descendant of `which.of` (the tokens it created, those they
    /// created, and so on, of `which.owner` and `which.prefix`), each in turn, all in one
    /// atomic step that no [`insert_child`](Self::insert_child) of the same owner
    /// interleaves with. Returns how many records the change wrote. Suspending a token or
    /// narrowing it reaches what it created through here.
    ///
    /// Optional: the default changes nothing and answers 0, which is right for a store that
    /// does not implement `insert_child` (it holds no created tokens).
    fn update_descendants(
        &self,
        which: &Descendants<'_>,
        change: &mut Change<'_>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        let _ = (which, change);
        std::future::ready(Ok(0))
    }

    /// Consume one use of the token `id` at `now` if it [counts its uses](crate::UsageLimit):
    /// refill it first if a new period has begun ([`UsageLimit::consume`](crate::UsageLimit::consume)
    /// says how), then take one if any is left, as one atomic step (a conditional
    /// decrement: of racing calls for the last use, exactly one gets it). Verification calls
    /// it only for tokens with a usage limit; tokens without one pay no write.
    ///
    /// Optional: the default fails, saying the store cannot; a store that does not
    /// implement it cannot hold usage-limited tokens (their verification fails closed).
    fn consume_use(
        &self,
        id: &TokenId,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<UseOutcome, StoreError>> + Send {
        let _ = (id, now);
        std::future::ready(Err(StoreError::new(
            StoreErrorKind::Unsupported,
            "this store cannot count a token's uses; implement `TokenStore::consume_use` \
             or issue tokens without a usage limit",
        )))
    }

    /// Delete records revoked before `before` or expired before `before`. Returns how many.
    fn purge(&self, before: OffsetDateTime)
    -> impl Future<Output = Result<u64, StoreError>> + Send;
}

impl<T: TokenStore> TokenStore for Arc<T> {
    fn insert(&self, record: &TokenRecord) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).insert(record)
    }

    fn insert_capped(
        &self,
        record: &TokenRecord,
        cap: u32,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).insert_capped(record, cap, now)
    }

    fn insert_child(
        &self,
        record: &TokenRecord,
        rules: &ChildRules,
    ) -> impl Future<Output = Result<ChildInsert, StoreError>> + Send {
        (**self).insert_child(record, rules)
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

    fn read_now<R>(
        &self,
        id: &TokenId,
        read: impl FnOnce(Option<&TokenRecord>) -> R,
    ) -> Option<Result<R, StoreError>> {
        (**self).read_now(id, read)
    }

    fn read_counted_now<R>(
        &self,
        id: &TokenId,
        read: impl FnOnce(Option<RecordRef<'_>>, Option<&RateCell>) -> R,
    ) -> Option<Result<R, StoreError>> {
        (**self).read_counted_now(id, read)
    }

    fn list(
        &self,
        filter: &ListFilter<'_>,
    ) -> impl Future<Output = Result<ListPage, StoreError>> + Send {
        (**self).list(filter)
    }

    fn list_expiring(
        &self,
        filter: &ExpiringFilter<'_>,
    ) -> impl Future<Output = Result<ListPage, StoreError>> + Send {
        (**self).list_expiring(filter)
    }

    fn record_last_use(
        &self,
        id: &TokenId,
        at: OffsetDateTime,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).record_last_use(id, at)
    }

    fn record_last_uses(
        &self,
        uses: &[(TokenId, OffsetDateTime)],
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        (**self).record_last_uses(uses)
    }

    fn update(
        &self,
        id: &TokenId,
        change: &mut Change<'_>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).update(id, change)
    }

    fn rotate(
        &self,
        id: &TokenId,
        change: &mut Change<'_>,
        successor: &TokenRecord,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).rotate(id, change, successor)
    }

    fn rotate_capped(
        &self,
        id: &TokenId,
        change: &mut Change<'_>,
        successor: &TokenRecord,
        cap: u32,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<Option<bool>, StoreError>> + Send {
        (**self).rotate_capped(id, change, successor, cap, now)
    }

    fn revoke_all(
        &self,
        all: &RevokeAll<'_>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        (**self).revoke_all(all)
    }

    fn revoke_descendants(
        &self,
        of: &TokenId,
        all: &RevokeAll<'_>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        (**self).revoke_descendants(of, all)
    }

    fn update_descendants(
        &self,
        which: &Descendants<'_>,
        change: &mut Change<'_>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        (**self).update_descendants(which, change)
    }

    fn consume_use(
        &self,
        id: &TokenId,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<UseOutcome, StoreError>> + Send {
        (**self).consume_use(id, now)
    }

    fn purge(
        &self,
        before: OffsetDateTime,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        (**self).purge(before)
    }
}
