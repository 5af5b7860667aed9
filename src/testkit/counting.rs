//! [`CountingStore`]: a store wrapper that counts the calls made to the store it wraps, so a
//! test can show how many reads and writes an operation cost.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use time::OffsetDateTime;

use crate::store::{ListFilter, ListPage, RevokeOutcome};
use crate::{StoreError, TokenId, TokenRecord, TokenStore};

/// How many times each [`TokenStore`] method was called on a [`CountingStore`].
#[derive(Debug, Default)]
pub struct Calls {
    /// `insert` calls.
    pub insert: AtomicU64,
    /// `get` calls, and `get_now` calls the store answered.
    pub get: AtomicU64,
    /// `list` calls.
    pub list: AtomicU64,
    /// `record_last_use` calls.
    pub record_last_use: AtomicU64,
    /// `revoke` calls.
    pub revoke: AtomicU64,
    /// `revoke_all` calls.
    pub revoke_all: AtomicU64,
    /// `shorten_expiry` calls.
    pub shorten_expiry: AtomicU64,
    /// `purge` calls.
    pub purge: AtomicU64,
}

impl Calls {
    /// Every write call (all but `get` and `list`).
    pub fn writes(&self) -> u64 {
        [
            &self.insert,
            &self.record_last_use,
            &self.revoke,
            &self.revoke_all,
            &self.shorten_expiry,
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

/// A store that counts the calls made to the store it wraps.
#[derive(Debug)]
pub struct CountingStore<S> {
    inner: S,
    calls: Arc<Calls>,
}

impl<S> CountingStore<S> {
    /// Wrap `inner`.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            calls: Arc::default(),
        }
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
    async fn get(&self, id: &TokenId) -> Result<Option<Arc<TokenRecord>>, StoreError> {
        bump(&self.calls.get);
        self.inner.get(id).await
    }
    /// Counted with `get` when the store answers at once: a read is a read.
    fn get_now(&self, id: &TokenId) -> Option<Result<Option<Arc<TokenRecord>>, StoreError>> {
        let answer = self.inner.get_now(id);
        if answer.is_some() {
            bump(&self.calls.get);
        }
        answer
    }
    async fn list(&self, filter: &ListFilter<'_>) -> Result<ListPage, StoreError> {
        bump(&self.calls.list);
        self.inner.list(filter).await
    }
    async fn record_last_use(&self, id: &TokenId, at: OffsetDateTime) -> Result<bool, StoreError> {
        bump(&self.calls.record_last_use);
        self.inner.record_last_use(id, at).await
    }
    async fn revoke(
        &self,
        id: &TokenId,
        owner: &str,
        at: OffsetDateTime,
        reason: Option<&str>,
    ) -> Result<RevokeOutcome, StoreError> {
        bump(&self.calls.revoke);
        self.inner.revoke(id, owner, at, reason).await
    }
    async fn revoke_all(
        &self,
        owner: &str,
        tenant: Option<&str>,
        at: OffsetDateTime,
        reason: Option<&str>,
    ) -> Result<u64, StoreError> {
        bump(&self.calls.revoke_all);
        self.inner.revoke_all(owner, tenant, at, reason).await
    }
    async fn shorten_expiry(&self, id: &TokenId, at: OffsetDateTime) -> Result<bool, StoreError> {
        bump(&self.calls.shorten_expiry);
        self.inner.shorten_expiry(id, at).await
    }
    async fn purge(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        bump(&self.calls.purge);
        self.inner.purge(before).await
    }
}
