//! A store in memory that does not answer `get_now`, so every read goes through `get`'s
//! future: what a store written like the guide's `MapStore` costs, and what
//! `DynTokenStore` adds to such a store (a boxed future per read).

use std::sync::Arc;

use api_tokens::store::{Change, ListFilter, ListPage, RevokeAll};
use api_tokens::{MemoryStore, StoreError, TokenId, TokenRecord, TokenStore};
use time::OffsetDateTime;

/// `MemoryStore`, every read awaited.
#[derive(Default)]
pub struct Awaited(pub Arc<MemoryStore>);

impl TokenStore for Awaited {
    async fn insert(&self, r: &TokenRecord) -> Result<(), StoreError> {
        self.0.insert(r).await
    }
    async fn get(&self, id: &TokenId) -> Result<Option<Arc<TokenRecord>>, StoreError> {
        self.0.get(id).await
    }
    async fn list(&self, f: &ListFilter<'_>) -> Result<ListPage, StoreError> {
        self.0.list(f).await
    }
    async fn record_last_use(&self, id: &TokenId, at: OffsetDateTime) -> Result<bool, StoreError> {
        self.0.record_last_use(id, at).await
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
    async fn revoke_all(&self, all: &RevokeAll<'_>) -> Result<u64, StoreError> {
        self.0.revoke_all(all).await
    }
    async fn purge(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        self.0.purge(before).await
    }
}
