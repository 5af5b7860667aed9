//! A store that fails makes every operation fail closed with a typed, 5xx error; a record
//! that vanishes between two steps (a purge in between) fails nothing it should not.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use api_tokens::store::{Change, ListFilter, ListPage, RevokeAll};
use api_tokens::{
    ApiTokens, AuthError, Error, LastUseFailure, ListRequest, ManualClock, MemoryStore, NewToken,
    StoreError, StoreErrorKind, TokenId, TokenRecord, TokenStore,
};
use time::{Duration, OffsetDateTime};

/// A `MemoryStore` that can be switched to fail every call as unavailable, or only its
/// last-use writes (as a full disk or a held write lock would).
#[derive(Default)]
struct Flaky {
    inner: MemoryStore,
    down: AtomicBool,
    last_use_down: AtomicBool,
    last_use_attempts: AtomicU64,
    /// Purge what ended before this instant just before the next update of this token (a
    /// purge running between a read and a write).
    purge_before_update: std::sync::Mutex<Option<(TokenId, OffsetDateTime)>>,
}

fn unavailable() -> StoreError {
    StoreError::new(StoreErrorKind::Unavailable, "the test store is down")
        .with_source(std::io::Error::other("connection refused"))
}

impl Flaky {
    fn check(&self) -> Result<(), StoreError> {
        match self.down.load(Ordering::SeqCst) {
            true => Err(unavailable()),
            false => Ok(()),
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
        self.last_use_attempts.fetch_add(1, Ordering::SeqCst);
        if self.last_use_down.load(Ordering::SeqCst) {
            return Err(StoreError::new(
                StoreErrorKind::Unavailable,
                "the database or disk is full",
            ));
        }
        self.inner.record_last_use(id, at).await
    }
    async fn update(&self, id: &TokenId, change: &mut Change<'_>) -> Result<bool, StoreError> {
        self.check()?;
        let purge = {
            let mut armed = self.purge_before_update.lock().unwrap();
            match *armed {
                Some((target, before)) if target == *id => armed.take().map(|_| before),
                _ => None,
            }
        };
        if let Some(before) = purge {
            self.inner.purge(before).await?;
        }
        self.inner.update(id, change).await
    }
    async fn rotate(
        &self,
        id: &TokenId,
        change: &mut Change<'_>,
        successor: &TokenRecord,
    ) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.rotate(id, change, successor).await
    }
    async fn revoke_all(&self, all: &RevokeAll<'_>) -> Result<u64, StoreError> {
        self.check()?;
        self.inner.revoke_all(all).await
    }
    async fn purge(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        self.check()?;
        self.inner.purge(before).await
    }
}

/// A token whose last use is older than the interval, over a store whose last-use writes
/// fail: the policy decides whether the request is served.
async fn stale_token(policy: LastUseFailure) -> (ApiTokens<Flaky>, String, ManualClock) {
    let clock = ManualClock::new(OffsetDateTime::UNIX_EPOCH + Duration::days(20_000));
    let tokens = ApiTokens::builder(Flaky::default(), "dz")
        .clock(clock.clone())
        .last_use_failure(policy)
        .build()
        .unwrap();
    let issued = tokens.issue(NewToken::new("alice", "ci")).await.unwrap();
    tokens.store().last_use_down.store(true, Ordering::SeqCst);
    (tokens, issued.plaintext.expose_secret().to_owned(), clock)
}

#[tokio::test]
async fn a_failed_last_use_write_fails_the_request_by_default() {
    let (tokens, plain, _) = stale_token(LastUseFailure::default()).await;
    let err = tokens.verify(&plain).await.unwrap_err();
    assert!(matches!(err, AuthError::Store(_)), "{err:?}");
    assert_eq!(err.status(), 503);
}

#[tokio::test]
async fn serving_despite_a_failed_last_use_write_retries_it_later() {
    let (tokens, plain, clock) = stale_token(LastUseFailure::ServeRequest).await;
    for _ in 0..3 {
        tokens
            .verify(&plain)
            .await
            .expect("served though last use could not be written");
        clock.advance(Duration::seconds(1));
    }
    assert_eq!(
        tokens.store().last_use_attempts.load(Ordering::SeqCst),
        3,
        "each verification retried the write the previous one could not make"
    );
    tokens.store().last_use_down.store(false, Ordering::SeqCst);
    let who = tokens.verify(&plain).await.expect("verifies");
    let stored = tokens
        .store()
        .inner
        .get(&who.token_id())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.last_used_at,
        Some(tokens.now()),
        "written once the store recovered"
    );
    // Revocation is never weakened: a store that cannot be read still fails closed.
    tokens.store().down.store(true, Ordering::SeqCst);
    assert_eq!(tokens.verify(&plain).await.unwrap_err().status(), 503);
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
    assert!(
        matches!(err, Error::Store(_)),
        "a store failure while verifying for an operation is Error::Store: {err:?}"
    );
    assert_eq!(
        err.store_error().map(|e| e.kind()),
        Some(StoreErrorKind::Unavailable)
    );
    // Built by hand the other way, the accessor still finds it.
    let nested = Error::Auth(AuthError::Store(StoreError::new(
        StoreErrorKind::Unavailable,
        "down",
    )));
    assert_eq!(
        nested.store_error().map(|e| e.kind()),
        Some(StoreErrorKind::Unavailable)
    );
    assert!(Error::NotFound.store_error().is_none());
    assert!(AuthError::Invalid.store_error().is_none());

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
    assert_eq!(
        (Error::AlreadyRotated.status(), Error::AlreadyRotated.code()),
        (409, "already_rotated")
    );
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
    // An idle timeout no longer than the last-use interval could expire a token in use.
    let idle = |timeout: Duration, interval: Duration| {
        ApiTokens::builder(MemoryStore::new(), "dz")
            .policy(TokenPolicy::default().idle_timeout(Some(timeout)))
            .last_use_interval(interval)
            .build()
    };
    for (timeout, interval) in [
        (Duration::minutes(5), Duration::minutes(5)),
        (Duration::minutes(5), Duration::hours(1)),
    ] {
        let err = idle(timeout, interval).unwrap_err();
        assert!(
            matches!(err, ConfigError::Policy(_)) && err.to_string().contains("last-use interval"),
            "{timeout} with last use every {interval}: {err}"
        );
    }
    idle(
        Duration::minutes(5) + Duration::seconds(1),
        Duration::minutes(5),
    )
    .expect("an idle timeout longer than the interval");
}

/// A leaked token that a thief rotated, purged (it had ended) between the leak response's
/// read and its revocation: the batch still answers, and the successor the thief holds is
/// revoked.
#[tokio::test]
async fn a_leaked_token_purged_meanwhile_still_loses_its_successor() {
    let clock = ManualClock::new(OffsetDateTime::UNIX_EPOCH + Duration::days(20_000));
    let tokens = ApiTokens::builder(Flaky::default(), "dz")
        .clock(clock.clone())
        .build()
        .unwrap();
    let leaked = tokens.issue(NewToken::new("alice", "ci")).await.unwrap();
    let rotated = tokens
        .rotate("alice", leaked.record.id, Duration::ZERO)
        .await
        .unwrap();
    let successor = rotated.plaintext.expose_secret().to_owned();
    tokens
        .verify(&successor)
        .await
        .expect("the thief's successor works");
    clock.advance(Duration::seconds(1));
    *tokens.store().purge_before_update.lock().unwrap() = Some((leaked.record.id, tokens.now()));

    let reports = tokens
        .revoke_leaked(&[leaked.plaintext.expose_secret()])
        .await
        .expect("a purge in between fails no batch");
    assert!(reports[0].outcome.is_ours(), "{:?}", reports[0].outcome);
    assert_eq!(
        reports[0].successors_revoked, 1,
        "the successor is followed"
    );
    assert!(
        tokens
            .store()
            .inner
            .get(&leaked.record.id)
            .await
            .unwrap()
            .is_none(),
        "the leaked token was purged in between"
    );
    let err = tokens.verify(&successor).await.unwrap_err();
    assert!(
        matches!(err, AuthError::Revoked { .. } | AuthError::Invalid),
        "{err:?}"
    );
}
