//! A cap on each owner's active tokens (the policy's `max_active_per_owner`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use time::Duration;

use crate::testkit::fixtures::{kit_slow_with, kit_with};
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

/// Under a cap of 2, a rotation that keeps the old token alive (a grace period) needs a free
/// place, so rotations cannot multiply live tokens; a rotation without grace replaces the
/// token in place. A refused rotation changes nothing. A store without `insert_capped` or
/// `rotate_capped` refuses clearly and writes nothing.
pub async fn rotation_respects_the_active_token_cap<S: TokenStore>(store: S) {
    let k = kit_with(store, TokenPolicy::default().max_active_per_owner(Some(2)));
    let unsupported =
        |e: &Error| matches!(e, Error::Store(s) if s.kind() == StoreErrorKind::Unsupported);
    let a = match k.tokens.issue(NewToken::new("alice", "a")).await {
        Err(e) if unsupported(&e) => return,
        other => other.expect("the first token").record,
    };
    let (_, b) = k.issue(NewToken::new("alice", "b")).await;
    let active = |k: &crate::testkit::fixtures::Kit<S>| {
        let tokens = k.tokens.clone();
        async move {
            let page = tokens.list(&ListRequest::new("alice")).await.expect("list");
            page.meta.total
        }
    };
    match k.tokens.rotate("alice", a.id, Duration::days(1)).await {
        Err(e) if unsupported(&e) => {
            let all = ListRequest::new("alice").include_inactive(true);
            assert_eq!(k.tokens.list(&all).await.expect("list").meta.total, 2);
            return;
        }
        Err(e) => {
            assert!(matches!(e, Error::TooManyTokens { limit: 2 }), "{e:?}");
        }
        Ok(_) => panic!("a rotation with grace went past the cap"),
    }
    let untouched = k.tokens.get("alice", a.id).await.expect("get");
    assert_eq!(
        untouched.replaced_by, None,
        "a refused rotation changes nothing"
    );
    assert_eq!(untouched.expires_at, a.expires_at);
    assert_eq!(active(&k).await, 2);

    // Without grace the old token ends as the new one starts: allowed at the cap.
    let c = k
        .tokens
        .rotate("alice", a.id, Duration::ZERO)
        .await
        .expect("a rotation in place");
    assert_eq!(active(&k).await, 2);

    // With a free place, a rotation with grace is allowed; then the cap holds again.
    k.tokens.revoke("alice", b.id, None).await.expect("revoke");
    let d = k
        .tokens
        .rotate("alice", c.record.id, Duration::days(1))
        .await
        .expect("a free place");
    assert_eq!(active(&k).await, 2);
    let err = k
        .tokens
        .rotate("alice", d.record.id, Duration::days(1))
        .await
        .expect_err("the cap is reached");
    assert!(matches!(err, Error::TooManyTokens { limit: 2 }), "{err:?}");
    assert_eq!(active(&k).await, 2);
}

/// Under a cap of 3 with 2 active tokens, two rotations with grace race (reads slowed to
/// widen the window) for the one free place: exactly one wins, the other is refused, and
/// 3 tokens are active.
pub async fn rotations_racing_for_the_last_place_under_the_cap<S: TokenStore>(store: S) {
    let policy = TokenPolicy::default().max_active_per_owner(Some(3));
    let k = kit_slow_with(store, std::time::Duration::from_millis(20), policy);
    for round in 0..3 {
        let owner = format!("racer{round}");
        let a = match k.tokens.issue(NewToken::new(&owner, "a")).await {
            Err(Error::Store(e)) if e.kind() == StoreErrorKind::Unsupported => return,
            other => other.expect("the first token").record,
        };
        let (_, b) = k.issue(NewToken::new(&owner, "b")).await;
        let rotate = |id| {
            let (tokens, owner) = (k.tokens.clone(), owner.clone());
            tokio::spawn(async move { tokens.rotate(&owner, id, Duration::hours(1)).await })
        };
        let (ra, rb) = (rotate(a.id), rotate(b.id));
        let results = [ra.await.expect("task"), rb.await.expect("task")];
        if results
            .iter()
            .any(|r| matches!(r, Err(Error::Store(e)) if e.kind() == StoreErrorKind::Unsupported))
        {
            return;
        }
        let won = results.iter().filter(|r| r.is_ok()).count();
        let capped = results
            .iter()
            .filter(|r| matches!(r, Err(Error::TooManyTokens { limit: 3 })))
            .count();
        assert_eq!((won, capped), (1, 1), "round {round}: {results:?}");
        let listed = k
            .tokens
            .list(&ListRequest::new(&owner))
            .await
            .expect("list");
        assert_eq!(listed.meta.total, 3, "round {round}");
    }
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
