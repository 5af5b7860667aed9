//! A cap on each owner's active tokens (the policy's `max_active_per_owner`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use time::Duration;

use crate::testkit::fixtures::kit_with;
use crate::{Error, Expiry, ListRequest, NewToken, StoreErrorKind, TokenPolicy, TokenStore};

/// With a cap of 3, a fourth active token is refused with 422 `too_many_tokens`; revoked
/// and expired tokens do not count, nor do other owners'. A store without `insert_capped`
/// refuses clearly and writes nothing.
pub async fn the_active_token_cap_is_enforced<S: TokenStore>(store: S) {
    let k = kit_with(store, TokenPolicy::default().max_active_per_owner(Some(3)));
    match k.tokens.issue(NewToken::new("alice", "t0")).await {
        Err(Error::Store(e)) if e.kind() == StoreErrorKind::Unsupported => {
            let all = ListRequest::new("alice").include_inactive(true);
            let listed = k.tokens.list(&all).await.expect("list");
            assert_eq!(listed.meta.total, 0, "an unsupported cap writes nothing");
            return;
        }
        other => {
            other.expect("the first token");
        }
    }
    k.issue(NewToken::new("alice", "t1")).await;
    let (_, short) = k
        .issue(NewToken::new("alice", "t2").expires(Expiry::After(Duration::hours(1))))
        .await;
    let err = k
        .tokens
        .issue(NewToken::new("alice", "t3"))
        .await
        .expect_err("the cap is reached");
    assert!(matches!(err, Error::TooManyTokens { limit: 3 }), "{err:?}");
    assert_eq!((err.status(), err.code()), (422, "too_many_tokens"));
    k.issue(NewToken::new("bob", "b0")).await;
    k.clock.advance(Duration::hours(1));
    let (_, replacement) = k.issue(NewToken::new("alice", "t3")).await;
    assert_ne!(replacement.id, short.id, "an expired token frees a place");
    k.tokens
        .revoke("alice", replacement.id, None)
        .await
        .expect("revoke");
    k.issue(NewToken::new("alice", "t4")).await;
    let all = ListRequest::new("alice").include_inactive(true);
    assert_eq!(k.tokens.list(&all).await.expect("list").meta.total, 5);
}

/// 16 tasks race to issue tokens for one owner under a cap of 5: exactly 5 succeed.
pub async fn the_active_token_cap_holds_under_contention<S: TokenStore>(store: S) {
    let k = kit_with(store, TokenPolicy::default().max_active_per_owner(Some(5)));
    let (issued, refused) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let mut tasks = Vec::new();
    for t in 0..16 {
        let (tokens, issued, refused) = (k.tokens.clone(), issued.clone(), refused.clone());
        tasks.push(tokio::spawn(async move {
            match tokens.issue(NewToken::new("alice", format!("t{t}"))).await {
                Ok(_) => issued.fetch_add(1, Ordering::SeqCst),
                Err(Error::TooManyTokens { .. }) => refused.fetch_add(1, Ordering::SeqCst),
                Err(Error::Store(e)) if e.kind() == StoreErrorKind::Unsupported => 0,
                Err(e) => panic!("unexpected error: {e:?}"),
            };
        }));
    }
    for t in tasks {
        t.await.expect("issuer task");
    }
    let listed = k
        .tokens
        .list(&ListRequest::new("alice"))
        .await
        .expect("list");
    if issued.load(Ordering::SeqCst) + refused.load(Ordering::SeqCst) == 0 {
        assert_eq!(listed.meta.total, 0, "an unsupported cap writes nothing");
        return;
    }
    assert_eq!(issued.load(Ordering::SeqCst), 5, "the cap was exceeded");
    assert_eq!(refused.load(Ordering::SeqCst), 11);
    assert_eq!(listed.meta.total, 5);
}
