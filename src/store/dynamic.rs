//! [`DynTokenStore`]: any store behind one type, so handlers and extractors need not name it.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use time::OffsetDateTime;

use super::token_store::TokenStore;
use super::{
    Change, ChildInsert, ChildRules, Descendants, ExpiringFilter, ListFilter, ListPage, RevokeAll,
    UseOutcome,
};
use crate::error::StoreError;
use crate::record::{RateCell, RecordRef, TokenRecord};
use crate::token::TokenId;

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Any [`TokenStore`], with its type erased: `ApiTokens<DynTokenStore>` is one type whether
/// the tokens live in memory, SQLite or PostgreSQL, so handlers, extractors and application
/// state need no type parameter for the store.
///
/// What it costs: a read the store answers at once ([`TokenStore::read_now`], which
/// [`MemoryStore`](crate::MemoryStore) does) is one virtual call; every other call is a
/// virtual call and one boxed future (an allocation), which is nothing beside a database
/// round trip but is measurable on a store in memory that does not answer `read_now`. The
/// README's Performance section gives both figures. Cloning is one reference-count
/// increment.
///
/// ```
/// use api_tokens::{ApiTokens, DynTokenStore, MemoryStore, NewToken};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// // The store is chosen at startup (say, from configuration); the type stays the same.
/// let store = DynTokenStore::new(MemoryStore::new());
/// let tokens: ApiTokens<DynTokenStore> = ApiTokens::new(store, "dz")?;
/// let issued = tokens.issue(NewToken::new("user_1", "ci")).await?;
/// tokens.verify(issued.plaintext.expose_secret()).await?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct DynTokenStore(Arc<dyn ErasedStore>);

impl DynTokenStore {
    /// Erase the type of `store`.
    pub fn new(store: impl TokenStore) -> Self {
        Self(Arc::new(store))
    }
}

impl fmt::Debug for DynTokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DynTokenStore")
    }
}

/// [`TokenStore`] with boxed futures, so it can be a trait object.
trait ErasedStore: Send + Sync + 'static {
    fn insert<'a>(&'a self, record: &'a TokenRecord) -> BoxFuture<'a, ()>;
    fn insert_capped<'a>(
        &'a self,
        record: &'a TokenRecord,
        cap: u32,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, bool>;
    fn insert_child<'a>(
        &'a self,
        record: &'a TokenRecord,
        rules: &'a ChildRules,
    ) -> BoxFuture<'a, ChildInsert>;
    fn get(&self, id: TokenId) -> BoxFuture<'_, Option<Arc<TokenRecord>>>;
    fn get_now(&self, id: &TokenId) -> Option<Result<Option<Arc<TokenRecord>>, StoreError>>;
    fn read_counted_now(
        &self,
        id: &TokenId,
        read: &mut dyn FnMut(Option<RecordRef<'_>>, Option<&RateCell>),
    ) -> Option<Result<(), StoreError>>;
    fn list<'a>(&'a self, filter: &'a ListFilter<'a>) -> BoxFuture<'a, ListPage>;
    fn list_expiring<'a>(&'a self, filter: &'a ExpiringFilter<'a>) -> BoxFuture<'a, ListPage>;
    fn record_last_use<'a>(&'a self, id: &'a TokenId, at: OffsetDateTime) -> BoxFuture<'a, bool>;
    fn record_last_uses<'a>(&'a self, uses: &'a [(TokenId, OffsetDateTime)]) -> BoxFuture<'a, u64>;
    fn update<'a, 'c: 'a>(
        &'a self,
        id: &'a TokenId,
        change: &'a mut Change<'c>,
    ) -> BoxFuture<'a, bool>;
    fn rotate<'a, 'c: 'a>(
        &'a self,
        id: &'a TokenId,
        change: &'a mut Change<'c>,
        successor: &'a TokenRecord,
    ) -> BoxFuture<'a, bool>;
    fn rotate_capped<'a, 'c: 'a>(
        &'a self,
        id: &'a TokenId,
        change: &'a mut Change<'c>,
        successor: &'a TokenRecord,
        cap: u32,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Option<bool>>;
    fn revoke_all<'a>(&'a self, all: &'a RevokeAll<'a>) -> BoxFuture<'a, u64>;
    fn revoke_descendants<'a>(
        &'a self,
        of: &'a TokenId,
        all: &'a RevokeAll<'a>,
    ) -> BoxFuture<'a, u64>;
    fn update_descendants<'a, 'c: 'a>(
        &'a self,
        which: &'a Descendants<'a>,
        change: &'a mut Change<'c>,
    ) -> BoxFuture<'a, u64>;
    fn consume_use<'a>(&'a self, id: &'a TokenId, now: OffsetDateTime)
    -> BoxFuture<'a, UseOutcome>;
    fn purge(&self, before: OffsetDateTime) -> BoxFuture<'_, u64>;
}

impl<S: TokenStore> ErasedStore for S {
    fn insert<'a>(&'a self, record: &'a TokenRecord) -> BoxFuture<'a, ()> {
        Box::pin(TokenStore::insert(self, record))
    }
    fn insert_capped<'a>(
        &'a self,
        record: &'a TokenRecord,
        cap: u32,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, bool> {
        Box::pin(TokenStore::insert_capped(self, record, cap, now))
    }
    fn insert_child<'a>(
        &'a self,
        record: &'a TokenRecord,
        rules: &'a ChildRules,
    ) -> BoxFuture<'a, ChildInsert> {
        Box::pin(TokenStore::insert_child(self, record, rules))
    }
    fn get(&self, id: TokenId) -> BoxFuture<'_, Option<Arc<TokenRecord>>> {
        Box::pin(async move { TokenStore::get(self, &id).await })
    }
    fn get_now(&self, id: &TokenId) -> Option<Result<Option<Arc<TokenRecord>>, StoreError>> {
        TokenStore::get_now(self, id)
    }
    fn read_counted_now(
        &self,
        id: &TokenId,
        read: &mut dyn FnMut(Option<RecordRef<'_>>, Option<&RateCell>),
    ) -> Option<Result<(), StoreError>> {
        TokenStore::read_counted_now(self, id, read)
    }
    fn list<'a>(&'a self, filter: &'a ListFilter<'a>) -> BoxFuture<'a, ListPage> {
        Box::pin(TokenStore::list(self, filter))
    }
    fn list_expiring<'a>(&'a self, filter: &'a ExpiringFilter<'a>) -> BoxFuture<'a, ListPage> {
        Box::pin(TokenStore::list_expiring(self, filter))
    }
    fn record_last_use<'a>(&'a self, id: &'a TokenId, at: OffsetDateTime) -> BoxFuture<'a, bool> {
        Box::pin(TokenStore::record_last_use(self, id, at))
    }
    fn record_last_uses<'a>(&'a self, uses: &'a [(TokenId, OffsetDateTime)]) -> BoxFuture<'a, u64> {
        Box::pin(TokenStore::record_last_uses(self, uses))
    }
    fn update<'a, 'c: 'a>(
        &'a self,
        id: &'a TokenId,
        change: &'a mut Change<'c>,
    ) -> BoxFuture<'a, bool> {
        Box::pin(TokenStore::update(self, id, change))
    }
    fn rotate<'a, 'c: 'a>(
        &'a self,
        id: &'a TokenId,
        change: &'a mut Change<'c>,
        successor: &'a TokenRecord,
    ) -> BoxFuture<'a, bool> {
        Box::pin(TokenStore::rotate(self, id, change, successor))
    }
    fn rotate_capped<'a, 'c: 'a>(
        &'a self,
        id: &'a TokenId,
        change: &'a mut Change<'c>,
        successor: &'a TokenRecord,
        cap: u32,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Option<bool>> {
        Box::pin(TokenStore::rotate_capped(
            self, id, change, successor, cap, now,
        ))
    }
    fn revoke_all<'a>(&'a self, all: &'a RevokeAll<'a>) -> BoxFuture<'a, u64> {
        Box::pin(TokenStore::revoke_all(self, all))
    }
    fn revoke_descendants<'a>(
        &'a self,
        of: &'a TokenId,
        all: &'a RevokeAll<'a>,
    ) -> BoxFuture<'a, u64> {
        Box::pin(TokenStore::revoke_descendants(self, of, all))
    }
    fn update_descendants<'a, 'c: 'a>(
        &'a self,
        which: &'a Descendants<'a>,
        change: &'a mut Change<'c>,
    ) -> BoxFuture<'a, u64> {
        Box::pin(TokenStore::update_descendants(self, which, change))
    }
    fn consume_use<'a>(
        &'a self,
        id: &'a TokenId,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, UseOutcome> {
        Box::pin(TokenStore::consume_use(self, id, now))
    }
    fn purge(&self, before: OffsetDateTime) -> BoxFuture<'_, u64> {
        Box::pin(TokenStore::purge(self, before))
    }
}

impl TokenStore for DynTokenStore {
    async fn insert(&self, record: &TokenRecord) -> Result<(), StoreError> {
        self.0.insert(record).await
    }

    async fn insert_capped(
        &self,
        record: &TokenRecord,
        cap: u32,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        self.0.insert_capped(record, cap, now).await
    }

    async fn insert_child(
        &self,
        record: &TokenRecord,
        rules: &ChildRules,
    ) -> Result<ChildInsert, StoreError> {
        self.0.insert_child(record, rules).await
    }

    // The verify path: the boxed future is returned as it is, not wrapped in another
    // (the id is copied in, so the future borrows only the store).
    fn get(
        &self,
        id: &TokenId,
    ) -> impl Future<Output = Result<Option<Arc<TokenRecord>>, StoreError>> + Send {
        self.0.get(*id)
    }

    fn get_now(&self, id: &TokenId) -> Option<Result<Option<Arc<TokenRecord>>, StoreError>> {
        self.0.get_now(id)
    }

    fn read_now<R>(
        &self,
        id: &TokenId,
        read: impl FnOnce(Option<&TokenRecord>) -> R,
    ) -> Option<Result<R, StoreError>> {
        // Lent in place when the store lends a `TokenRecord`; a copy of any other form.
        TokenStore::read_counted_now(self, id, |record, _| match record {
            None => read(None),
            Some(lent) => match lent.as_full() {
                Some(full) => read(Some(full)),
                None => read(Some(&lent.to_record())),
            },
        })
    }

    fn read_counted_now<R>(
        &self,
        id: &TokenId,
        read: impl FnOnce(Option<RecordRef<'_>>, Option<&RateCell>) -> R,
    ) -> Option<Result<R, StoreError>> {
        // The erased store takes a `FnMut` that it calls at most once.
        let (mut read, mut out) = (Some(read), None);
        let answer = self.0.read_counted_now(id, &mut |record, cell| {
            if let Some(read) = read.take() {
                out = Some(read(record, cell));
            }
        });
        match answer? {
            Ok(()) => out.map(Ok),
            Err(e) => Some(Err(e)),
        }
    }

    async fn list(&self, filter: &ListFilter<'_>) -> Result<ListPage, StoreError> {
        self.0.list(filter).await
    }

    async fn list_expiring(&self, filter: &ExpiringFilter<'_>) -> Result<ListPage, StoreError> {
        self.0.list_expiring(filter).await
    }

    async fn record_last_use(&self, id: &TokenId, at: OffsetDateTime) -> Result<bool, StoreError> {
        self.0.record_last_use(id, at).await
    }

    async fn record_last_uses(
        &self,
        uses: &[(TokenId, OffsetDateTime)],
    ) -> Result<u64, StoreError> {
        self.0.record_last_uses(uses).await
    }

    async fn update(&self, id: &TokenId, change: &mut Change<'_>) -> Result<bool, StoreError> {
        self.0.update(id, change).await
    }

    async fn rotate(
        &self,
        id: &TokenId,
        change: &mut Change<'_>,
        successor: &TokenRecord,
    ) -> Result<bool, StoreError> {
        self.0.rotate(id, change, successor).await
    }

    async fn rotate_capped(
        &self,
        id: &TokenId,
        change: &mut Change<'_>,
        successor: &TokenRecord,
        cap: u32,
        now: OffsetDateTime,
    ) -> Result<Option<bool>, StoreError> {
        self.0.rotate_capped(id, change, successor, cap, now).await
    }

    async fn revoke_all(&self, all: &RevokeAll<'_>) -> Result<u64, StoreError> {
        self.0.revoke_all(all).await
    }

    async fn revoke_descendants(
        &self,
        of: &TokenId,
        all: &RevokeAll<'_>,
    ) -> Result<u64, StoreError> {
        self.0.revoke_descendants(of, all).await
    }

    async fn update_descendants(
        &self,
        which: &Descendants<'_>,
        change: &mut Change<'_>,
    ) -> Result<u64, StoreError> {
        self.0.update_descendants(which, change).await
    }

    async fn consume_use(
        &self,
        id: &TokenId,
        now: OffsetDateTime,
    ) -> Result<UseOutcome, StoreError> {
        self.0.consume_use(id, now).await
    }

    async fn purge(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        self.0.purge(before).await
    }
}
