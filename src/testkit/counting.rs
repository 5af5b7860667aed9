//! [`CountingStore`]: a store wrapper that counts the calls made to the store it wraps, so a
//! test can show how many reads and writes an operation cost.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use time::OffsetDateTime;

use crate::store::{
    Change, ChildInsert, ChildRules, Descendants, ExpiringFilter, ListFilter, ListPage, RevokeAll,
    UseOutcome,
};
use crate::{RateCell, RecordRef, StoreError, TokenId, TokenRecord, TokenStore};

/// How many times each [`TokenStore`] method was called on a [`CountingStore`].
#[derive(Debug, Default)]
pub struct Calls {
    /// `insert`, `insert_capped` and `insert_child` calls.
    pub insert: AtomicU64,
    /// `get` calls, and `get_now` calls the store answered.
    pub get: AtomicU64,
    /// `list` and `list_expiring` calls.
    pub list: AtomicU64,
    /// `record_last_use` calls.
    pub record_last_use: AtomicU64,
    /// `record_last_uses` calls (one batch each, however many tokens it carries).
    pub record_last_uses: AtomicU64,
    /// `update` and `update_descendants` calls.
    pub update: AtomicU64,
    /// `rotate` calls.
    pub rotate: AtomicU64,
    /// `consume_use` calls.
    pub consume_use: AtomicU64,
    /// `revoke_all` and `revoke_descendants` calls.
    pub revoke_all: AtomicU64,
    /// `purge` calls.
    pub purge: AtomicU64,
}

impl Calls {
    /// Every write call (all but `get` and `list`).
    pub fn writes(&self) -> u64 {
        [
            &self.insert,
            &self.record_last_use,
            &self.record_last_uses,
            &self.update,
            &self.rotate,
            &self.revoke_all,
            &self.purge,
        ]
        .iter()
        .map(|c| c.load(Ordering::SeqCst))
        .sum()
    }

    /// Every call.
    pub fn total(&self) -> u64 {
        self.writes() + self.get.load(Ordering::SeqCst) + self.list.load(Ordering::SeqCst)
    }
}

/// A store that counts the calls made to the store it wraps, and can make its reads slow
/// ([`slow_reads`](Self::slow_reads)) to widen the window between a read and a write, where
/// races live.
#[derive(Debug)]
pub struct CountingStore<S> {
    inner: S,
    calls: Arc<Calls>,
    read_delay: Duration,
}

impl<S> CountingStore<S> {
    /// Wrap `inner`.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            calls: Arc::default(),
            read_delay: Duration::ZERO,
        }
    }

    /// Make every `get` wait `delay` before reading (and `get_now` answer "not now", so the
    /// read goes through `get`). Needs a Tokio runtime with its timer enabled.
    pub fn slow_reads(mut self, delay: Duration) -> Self {
        self.read_delay = delay;
        self
    }

    /// The counts so far.
    pub fn calls(&self) -> Arc<Calls> {
        Arc::clone(&self.calls)
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::SeqCst);
}

impl<S: TokenStore> TokenStore for CountingStore<S> {
    async fn insert(&self, record: &TokenRecord) -> Result<(), StoreError> {
        bump(&self.calls.insert);
        self.inner.insert(record).await
    }
    async fn insert_capped(
        &self,
        record: &TokenRecord,
        cap: u32,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        bump(&self.calls.insert);
        self.inner.insert_capped(record, cap, now).await
    }
    async fn insert_child(
        &self,
        record: &TokenRecord,
        rules: &ChildRules,
    ) -> Result<ChildInsert, StoreError> {
        bump(&self.calls.insert);
        self.inner.insert_child(record, rules).await
    }
    async fn get(&self, id: &TokenId) -> Result<Option<Arc<TokenRecord>>, StoreError> {
        bump(&self.calls.get);
        if !self.read_delay.is_zero() {
            tokio::time::sleep(self.read_delay).await;
        }
        self.inner.get(id).await
    }
    /// Counted with `get` when the store answers at once: a read is a read.
    fn get_now(&self, id: &TokenId) -> Option<Result<Option<Arc<TokenRecord>>, StoreError>> {
        if !self.read_delay.is_zero() {
            return None;
        }
        let answer = self.inner.get_now(id);
        if answer.is_some() {
            bump(&self.calls.get);
        }
        answer
    }
    /// Counted with `get` too.
    fn read_now<R>(
        &self,
        id: &TokenId,
        read: impl FnOnce(Option<&TokenRecord>) -> R,
    ) -> Option<Result<R, StoreError>> {
        if !self.read_delay.is_zero() {
            return None;
        }
        let answer = self.inner.read_now(id, read);
        if answer.is_some() {
            bump(&self.calls.get);
        }
        answer
    }
    /// Counted with `get` too.
    fn read_counted_now<R>(
        &self,
        id: &TokenId,
        read: impl FnOnce(Option<RecordRef<'_>>, Option<&RateCell>) -> R,
    ) -> Option<Result<R, StoreError>> {
        if !self.read_delay.is_zero() {
            return None;
        }
        let answer = self.inner.read_counted_now(id, read);
        if answer.is_some() {
            bump(&self.calls.get);
        }
        answer
    }
    async fn list(&self, filter: &ListFilter<'_>) -> Result<ListPage, StoreError> {
        bump(&self.calls.list);
        self.inner.list(filter).await
    }
    async fn list_expiring(&self, filter: &ExpiringFilter<'_>) -> Result<ListPage, StoreError> {
        bump(&self.calls.list);
        self.inner.list_expiring(filter).await
    }
    async fn record_last_use(&self, id: &TokenId, at: OffsetDateTime) -> Result<bool, StoreError> {
        bump(&self.calls.record_last_use);
        self.inner.record_last_use(id, at).await
    }
    async fn record_last_uses(
        &self,
        uses: &[(TokenId, OffsetDateTime)],
    ) -> Result<u64, StoreError> {
        bump(&self.calls.record_last_uses);
        self.inner.record_last_uses(uses).await
    }
    async fn update(&self, id: &TokenId, change: &mut Change<'_>) -> Result<bool, StoreError> {
        bump(&self.calls.update);
        self.inner.update(id, change).await
    }
    async fn rotate(
        &self,
        id: &TokenId,
        change: &mut Change<'_>,
        successor: &TokenRecord,
    ) -> Result<bool, StoreError> {
        bump(&self.calls.rotate);
        self.inner.rotate(id, change, successor).await
    }
    async fn rotate_capped(
        &self,
        id: &TokenId,
        change: &mut Change<'_>,
        successor: &TokenRecord,
        cap: u32,
        now: OffsetDateTime,
    ) -> Result<Option<bool>, StoreError> {
        bump(&self.calls.rotate);
        self.inner
            .rotate_capped(id, change, successor, cap, now)
            .await
    }
    async fn revoke_all(&self, all: &RevokeAll<'_>) -> Result<u64, StoreError> {
        bump(&self.calls.revoke_all);
        self.inner.revoke_all(all).await
    }
    async fn revoke_descendants(
        &self,
        of: &TokenId,
        all: &RevokeAll<'_>,
    ) -> Result<u64, StoreError> {
        bump(&self.calls.revoke_all);
        self.inner.revoke_descendants(of, all).await
    }
    async fn update_descendants(
        &self,
        which: &Descendants<'_>,
        change: &mut Change<'_>,
    ) -> Result<u64, StoreError> {
        bump(&self.calls.update);
        self.inner.update_descendants(which, change).await
    }
    async fn consume_use(
        &self,
        id: &TokenId,
        now: OffsetDateTime,
    ) -> Result<UseOutcome, StoreError> {
        bump(&self.calls.consume_use);
        self.inner.consume_use(id, now).await
    }
    async fn purge(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        bump(&self.calls.purge);
        self.inner.purge(before).await
    }
}
