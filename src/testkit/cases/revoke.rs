//! Revocation and purging.

use time::Duration;

use crate::testkit::fixtures::{epoch, kit, record};
use crate::{AuthError, Error, Expiry, ListRequest, NewToken, TokenStore};

/// Revoke one token by id: immediate, recorded, owner-scoped and reported when repeated.
pub async fn revoke_by_id<S: TokenStore>(store: S) {
    let k = kit(store);
    let (a1, r1) = k.issue(NewToken::new("alice", "one")).await;
    let (a2, _) = k.issue(NewToken::new("alice", "two")).await;
    k.tokens.verify(&a1).await.expect("valid before");

    let err = k
        .tokens
        .revoke("mallory", r1.id, None)
        .await
        .expect_err("not mallory's");
    assert!(
        matches!(err, Error::NotFound),
        "another owner's id is not found: {err:?}"
    );
    k.tokens
        .verify(&a1)
        .await
        .expect("still valid after a foreign revoke");
    let unknown = k
        .tokens
        .revoke("alice", record("a", epoch()).id, None)
        .await;
    assert!(matches!(unknown, Err(Error::NotFound)));

    k.clock.advance(Duration::seconds(10));
    k.tokens
        .revoke("alice", r1.id, Some("  leaked  "))
        .await
        .expect("revoke");
    let err = k.tokens.verify(&a1).await.expect_err("revoked");
    assert!(
        matches!(err, AuthError::Revoked { revoked_at } if revoked_at == epoch() + Duration::seconds(10)),
        "{err:?}"
    );
    assert_eq!(err.status(), 401);
    k.tokens
        .verify(&a2)
        .await
        .expect("the owner's other token still works");

    let stored = k.store().get(&r1.id).await.expect("get").expect("kept");
    assert_eq!(stored.revoked_at, Some(epoch() + Duration::seconds(10)));
    assert_eq!(stored.revocation_reason.as_deref(), Some("leaked"));

    k.clock.advance(Duration::seconds(10));
    let again = k
        .tokens
        .revoke("alice", r1.id, Some("again"))
        .await
        .expect_err("already");
    assert!(
        matches!(again, Error::AlreadyRevoked { revoked_at } if revoked_at == epoch() + Duration::seconds(10))
    );
    let stored = k.store().get(&r1.id).await.expect("get").expect("kept");
    assert_eq!(
        stored.revocation_reason.as_deref(),
        Some("leaked"),
        "the first revocation stands"
    );
}

/// Revoke the token in use: only that token, and it fails from the next request on.
pub async fn revoke_the_presented_token<S: TokenStore>(store: S) {
    let k = kit(store);
    let (a1, r1) = k.issue(NewToken::new("alice", "one")).await;
    let (a2, _) = k.issue(NewToken::new("alice", "two")).await;
    let who = k
        .tokens
        .revoke_presented(&a1, None)
        .await
        .expect("revoke itself");
    assert_eq!(who.token_id(), r1.id);
    assert!(matches!(
        k.tokens.verify(&a1).await,
        Err(AuthError::Revoked { .. })
    ));
    k.tokens
        .verify(&a2)
        .await
        .expect("other tokens keep working");
    let err = k
        .tokens
        .revoke_presented(&a1, None)
        .await
        .expect_err("gone");
    assert_eq!(
        err.status(),
        401,
        "a revoked token cannot authenticate a revoke: {err:?}"
    );
    let err = k
        .tokens
        .revoke_presented("garbage", None)
        .await
        .expect_err("garbage");
    assert_eq!(err.status(), 401);
}

/// Revoke all of an owner's tokens (optionally one tenant's) in one call.
pub async fn revoke_all_of_an_owner<S: TokenStore>(store: S) {
    let k = kit(store);
    let mut alice = Vec::new();
    for i in 0..3 {
        alice.push(
            k.issue(NewToken::new("alice", format!("a{i}")).tenant("t1"))
                .await
                .0,
        );
    }
    let (other_tenant, _) = k.issue(NewToken::new("alice", "t2").tenant("t2")).await;
    let (bob, _) = k.issue(NewToken::new("bob", "b")).await;
    let (_, done) = k.issue(NewToken::new("alice", "already")).await;
    k.tokens
        .revoke("alice", done.id, None)
        .await
        .expect("revoke");

    assert_eq!(
        k.tokens
            .revoke_all("alice", Some("t1"), Some("offboarding"))
            .await
            .expect("revoke all"),
        3
    );
    k.tokens
        .verify(&other_tenant)
        .await
        .expect("other tenant untouched");
    assert_eq!(
        k.tokens
            .revoke_all("alice", None, None)
            .await
            .expect("revoke all"),
        1
    );
    assert_eq!(
        k.tokens
            .revoke_all("alice", None, None)
            .await
            .expect("revoke all"),
        0
    );
    for t in alice.iter().chain([&other_tenant]) {
        assert!(matches!(
            k.tokens.verify(t).await,
            Err(AuthError::Revoked { .. })
        ));
    }
    k.tokens
        .verify(&bob)
        .await
        .expect("another owner's token is untouched");
    let done = k.store().get(&done.id).await.expect("get").expect("kept");
    assert_eq!(
        done.revocation_reason, None,
        "an earlier revocation is not overwritten"
    );
}

/// Nothing brings a revoked token back: not rotation, not shortening its expiry, not a
/// later revoke-all, not a later revocation.
pub async fn revocation_cannot_be_undone<S: TokenStore>(store: S) {
    let k = kit(store);
    let (plain, rec) = k.issue(NewToken::new("alice", "one")).await;
    k.tokens
        .revoke("alice", rec.id, None)
        .await
        .expect("revoke");
    k.clock.advance(Duration::days(1));
    k.store()
        .record_last_use(&rec.id, k.tokens.now())
        .await
        .expect("last use");
    assert!(matches!(
        k.tokens.rotate("alice", rec.id, Duration::ZERO).await,
        Err(Error::NotActive)
    ));
    assert_eq!(
        k.tokens
            .revoke_all("alice", None, Some("later"))
            .await
            .expect("revoke all"),
        0
    );
    assert!(matches!(
        k.tokens.revoke("alice", rec.id, Some("again")).await,
        Err(Error::AlreadyRevoked { .. })
    ));
    let stored = k.store().get(&rec.id).await.expect("get").expect("kept");
    assert_eq!(stored.revoked_at, Some(epoch()));
    assert_eq!(
        stored.revocation_reason, None,
        "the first revocation stands"
    );
    assert!(matches!(
        k.tokens.verify(&plain).await,
        Err(AuthError::Revoked { .. })
    ));
}

/// Purge deletes only records revoked or expired before the retention, and counts them.
pub async fn purge_removes_only_long_dead_records<S: TokenStore>(store: S) {
    let k = kit(store);
    let (_, old_revoked) = k.issue(NewToken::new("alice", "r")).await;
    let (_, old_expired) = k
        .issue(NewToken::new("alice", "e").expires(Expiry::InDays(1)))
        .await;
    let (live, live_rec) = k.issue(NewToken::new("alice", "live")).await;
    k.tokens
        .revoke("alice", old_revoked.id, None)
        .await
        .expect("revoke");
    k.clock.advance(Duration::days(40));
    let (_, new_revoked) = k.issue(NewToken::new("alice", "nr")).await;
    k.tokens
        .revoke("alice", new_revoked.id, None)
        .await
        .expect("revoke");
    assert_eq!(k.tokens.purge(Duration::days(30)).await.expect("purge"), 2);
    assert!(k.store().get(&old_revoked.id).await.expect("get").is_none());
    assert!(k.store().get(&old_expired.id).await.expect("get").is_none());
    assert!(
        k.store().get(&new_revoked.id).await.expect("get").is_some(),
        "inside retention"
    );
    assert!(k.store().get(&live_rec.id).await.expect("get").is_some());
    k.tokens
        .verify(&live)
        .await
        .expect("live tokens are untouched");
    assert_eq!(k.tokens.purge(Duration::days(30)).await.expect("purge"), 0);
    let all = k
        .tokens
        .list(&ListRequest::new("alice").include_inactive(true))
        .await
        .expect("list");
    assert_eq!(
        all.meta.total, 2,
        "the purged records are gone from listings too"
    );
}
