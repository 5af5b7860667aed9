//! A store that fails makes every operation fail closed with a typed, 5xx error.

use std::sync::atomic::{AtomicBool, Ordering};

use api_tokens::store::{ListFilter, ListPage, RevokeOutcome};
use api_tokens::{
    ApiTokens, AuthError, Error, ListRequest, MemoryStore, NewToken, StoreError, StoreErrorKind,
    TokenId, TokenRecord, TokenStore,
};
use time::{Duration, OffsetDateTime};

/// A `MemoryStore` that can be switched to fail every call as unavailable.
#[derive(Default)]
struct Flaky {
    inner: MemoryStore,
    down: AtomicBool,
}

impl Flaky {
    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            Err(
                StoreError::new(StoreErrorKind::Unavailable, "the test store is down")
                    .with_source(std::io::Error::other("connection refused")),
            )
        } else {
            Ok(())
        }
    }
}

impl TokenStore for Flaky {
    async fn insert(&self, record: &TokenRecord) -> Result<(), StoreError> {
        self.check()?;
        self.inner.insert(record).await
    }
    async fn get(&self, id: &TokenId) -> Result<Option<std::sync::Arc<TokenRecord>>, StoreError> {
        self.check()?;
        self.inner.get(id).await
    }
    async fn list(&self, filter: &ListFilter<'_>) -> Result<ListPage, StoreError> {
        self.check()?;
        self.inner.list(filter).await
    }
    async fn record_last_use(&self, id: &TokenId, at: OffsetDateTime) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.record_last_use(id, at).await
    }
    async fn revoke(
        &self,
        id: &TokenId,
        owner: &str,
        at: OffsetDateTime,
        reason: Option<&str>,
    ) -> Result<RevokeOutcome, StoreError> {
        self.check()?;
        self.inner.revoke(id, owner, at, reason).await
    }
    async fn revoke_all(
        &self,
        owner: &str,
        tenant: Option<&str>,
        at: OffsetDateTime,
        reason: Option<&str>,
    ) -> Result<u64, StoreError> {
        self.check()?;
        self.inner.revoke_all(owner, tenant, at, reason).await
    }
    async fn shorten_expiry(&self, id: &TokenId, at: OffsetDateTime) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.shorten_expiry(id, at).await
    }
    async fn purge(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        self.check()?;
        self.inner.purge(before).await
    }
}

#[tokio::test]
async fn an_unavailable_store_fails_closed_and_recovers() {
    let tokens = ApiTokens::new(Flaky::default(), "dz").unwrap();
    let issued = tokens.issue(NewToken::new("alice", "ci")).await.unwrap();
    let plain = issued.plaintext.expose_secret();
    tokens.store().down.store(true, Ordering::SeqCst);

    let err = tokens.verify(plain).await.unwrap_err();
    assert!(matches!(err, AuthError::Store(_)), "{err:?}");
    assert_eq!((err.status(), err.code()), (503, "store_unavailable"));
    let source = std::error::Error::source(&err).expect("the store error is the source");
    assert!(source.to_string().contains("connection refused"));
    assert!(!err.to_string().contains(plain) && !format!("{err:?}").contains(plain));

    let err = tokens
        .issue(NewToken::new("alice", "ci2"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Store(_)) && err.status() == 503,
        "{err:?}"
    );
    let err = tokens
        .revoke("alice", issued.record.id, None)
        .await
        .unwrap_err();
    assert_eq!(err.status(), 503);
    let err = tokens.list(&ListRequest::new("alice")).await.unwrap_err();
    assert_eq!(err.status(), 503);
    let err = tokens.purge(Duration::days(1)).await.unwrap_err();
    assert_eq!(err.status(), 503);
    let err = tokens.revoke_presented(plain, None).await.unwrap_err();
    assert_eq!(err.status(), 503);

    tokens.store().down.store(false, Ordering::SeqCst);
    tokens.verify(plain).await.expect("the store came back");
}

#[tokio::test]
async fn garbage_needs_no_store_even_when_it_is_down() {
    let tokens = ApiTokens::new(Flaky::default(), "dz").unwrap();
    tokens.store().down.store(true, Ordering::SeqCst);
    let err = tokens.verify("dz_garbage").await.unwrap_err();
    assert!(matches!(err, AuthError::Malformed(_)), "{err:?}");
    assert_eq!((err.status(), err.code()), (401, "invalid_token"));
}

#[test]
fn statuses_and_codes() {
    assert_eq!(AuthError::Missing.status(), 401);
    assert_eq!(
        AuthError::InsufficientScope { missing: vec![] }.code(),
        "insufficient_scope"
    );
    assert_eq!(Error::NotFound.status(), 404);
    assert_eq!(Error::NotActive.status(), 409);
    let dup = Error::Store(StoreError::duplicate_id());
    assert_eq!((dup.status(), dup.code()), (500, "duplicate_id"));
}

#[test]
fn bad_configuration_is_reported_at_build() {
    use api_tokens::{ConfigError, TokenPolicy};
    assert!(matches!(
        ApiTokens::new(MemoryStore::new(), "has space"),
        Err(ConfigError::Prefix { .. })
    ));
    let err = ApiTokens::builder(MemoryStore::new(), "dz")
        .secret_bytes(8)
        .build()
        .unwrap_err();
    assert!(matches!(err, ConfigError::SecretLength { .. }), "{err}");
    let policy = TokenPolicy::default().default_lifetime(Duration::days(400));
    let err = ApiTokens::builder(MemoryStore::new(), "dz")
        .policy(policy)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("exceeds the maximum"), "{err}");
    let err = ApiTokens::builder(MemoryStore::new(), "dz")
        .last_use_interval(Duration::seconds(-1))
        .build()
        .unwrap_err();
    assert!(matches!(err, ConfigError::Policy(_)));
}
