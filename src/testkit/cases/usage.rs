//! Usage limits: a token's uses are counted in the store, one per successful verification,
//! atomically (of racing verifications for the last use, exactly one gets it), and refilled
//! at the start of each period.
//!
//! `TokenStore::consume_use` is optional: a store without it fails the verification of a
//! usage-limited token closed (`StoreErrorKind::Unsupported`), which the cases accept and
//! then stop.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use time::Duration;

use crate::store::UseOutcome;
use crate::testkit::fixtures::{epoch, kit, record};
use crate::{
    AuthError, Error, NewToken, Refill, RefillInterval, StoreErrorKind, TokenStore, UsageLimit,
};

/// Whether `result` is a store saying it cannot count uses.
fn unsupported(result: &Result<crate::Principal, AuthError>) -> bool {
    matches!(result, Err(AuthError::Store(e)) if e.kind() == StoreErrorKind::Unsupported)
}

/// Each verification consumes one use; with none left the token is refused with
/// `UsageExceeded` (429) until its refill; tokens without a limit are never counted.
pub async fn usage_limits_are_counted_and_refilled<S: TokenStore>(store: S) {
    let k = kit(store);
    let usage = UsageLimit::new(2)
        .expect("usage")
        .refill(Refill::new(RefillInterval::Daily, 3).expect("refill"));
    let (token, record) = k
        .issue(NewToken::new("alice", "metered").usage(usage))
        .await;
    let first = k.tokens.verify(&token).await;
    if unsupported(&first) {
        return;
    }
    first.expect("first use");
    k.tokens.verify(&token).await.expect("second use");
    let err = k.tokens.verify(&token).await.expect_err("none left");
    assert!(matches!(err, AuthError::UsageExceeded), "{err:?}");
    assert_eq!((err.status(), err.code()), (429, "usage_exceeded"));
    let stored = k.store().get(&record.id).await.expect("get").expect("kept");
    assert_eq!(stored.usage.as_ref().map(|u| u.remaining), Some(0));
    let info = k.tokens.get("alice", record.id).await.expect("get");
    assert_eq!(
        info.usage.map(|u| u.remaining),
        Some(0),
        "shown in the listing"
    );

    k.clock.advance(Duration::days(1));
    for _ in 0..3 {
        k.tokens.verify(&token).await.expect("refilled to 3");
    }
    assert!(matches!(
        k.tokens.verify(&token).await,
        Err(AuthError::UsageExceeded)
    ));

    let (free, free_record) = k.issue(NewToken::new("alice", "free")).await;
    for _ in 0..5 {
        k.tokens.verify(&free).await.expect("not counted");
    }
    assert!(
        k.store()
            .get(&free_record.id)
            .await
            .expect("get")
            .expect("kept")
            .usage
            .is_none()
    );
    for bad in [0, crate::limits::MAX_USES + 1] {
        assert!(UsageLimit::new(bad).is_err(), "{bad}");
    }
}

/// The store's conditional decrement: uses go down one at a time, never below zero, and a
/// token without a usage limit is not counted.
pub async fn consuming_a_use_is_a_conditional_decrement<S: TokenStore>(store: S) {
    let mut r = record("alice", epoch());
    r.usage = Some(Box::new(UsageLimit::new(2).expect("usage")));
    store.insert(&r).await.expect("insert");
    let first = store.consume_use(&r.id, epoch()).await;
    if matches!(&first, Err(e) if e.kind() == StoreErrorKind::Unsupported) {
        return;
    }
    assert_eq!(
        first.expect("consume"),
        UseOutcome::Consumed { remaining: 1 }
    );
    assert_eq!(
        store.consume_use(&r.id, epoch()).await.expect("consume"),
        UseOutcome::Consumed { remaining: 0 }
    );
    assert_eq!(
        store.consume_use(&r.id, epoch()).await.expect("consume"),
        UseOutcome::Exhausted
    );
    let plain = record("bob", epoch());
    store.insert(&plain).await.expect("insert");
    assert!(matches!(
        store
            .consume_use(&plain.id, epoch())
            .await
            .expect("consume"),
        UseOutcome::NotCounted | UseOutcome::Exhausted
    ));
    let back = store.get(&plain.id).await.expect("get").expect("kept");
    assert!(back.usage.is_none(), "an uncounted token is left as it was");
}

/// Sixteen verifications racing for the last uses: exactly as many succeed as there were
/// uses left, over many rounds.
pub async fn racing_verifications_never_share_the_last_use<S: TokenStore>(store: S) {
    let k = kit(store);
    for round in 0..20 {
        let (token, _) = k
            .issue(NewToken::new("alice", "race").usage(UsageLimit::new(5).expect("usage")))
            .await;
        let ok = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let (tokens, token, ok) = (k.tokens.clone(), token.clone(), Arc::clone(&ok));
            tasks.push(tokio::spawn(async move {
                match tokens.verify(&token).await {
                    Ok(_) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                        true
                    }
                    Err(AuthError::UsageExceeded) => true,
                    Err(AuthError::Store(e)) if e.kind() == StoreErrorKind::Unsupported => false,
                    Err(e) => panic!("round {round}: {e:?}"),
                }
            }));
        }
        let mut supported = true;
        for task in tasks {
            supported &= task.await.expect("task");
        }
        if !supported {
            return;
        }
        assert_eq!(ok.load(Ordering::Relaxed), 5, "round {round}");
    }
}

/// A token with a usage limit creates no tokens, rotating one moves its uses to the
/// successor (rotation never adds uses), and its holder can revoke it with no uses left.
pub async fn usage_limits_cannot_be_escaped<S: TokenStore>(store: S) {
    let k = kit(store);
    let (token, record) = k
        .issue(NewToken::new("alice", "metered").usage(UsageLimit::new(3).expect("usage")))
        .await;
    let who = match k.tokens.verify(&token).await {
        Err(AuthError::Store(e)) if e.kind() == StoreErrorKind::Unsupported => return,
        other => other.expect("a use"),
    };
    let child = k.tokens.issue(NewToken::child_of(&who, "child")).await;
    assert!(
        matches!(&child, Err(Error::Invalid(v)) if v.has("creator")),
        "{child:?}"
    );
    let next = k
        .tokens
        .rotate("alice", record.id, Duration::hours(1))
        .await
        .expect("rotate");
    assert_eq!(next.record.usage.as_ref().map(|u| u.remaining), Some(2));
    assert!(matches!(
        k.tokens.verify(&token).await,
        Err(AuthError::UsageExceeded)
    ));
    for _ in 0..2 {
        k.tokens
            .verify(next.plaintext.expose_secret())
            .await
            .expect("the uses moved");
    }
    assert!(matches!(
        k.tokens.verify(next.plaintext.expose_secret()).await,
        Err(AuthError::UsageExceeded)
    ));
    k.tokens
        .revoke_presented(next.plaintext.expose_secret(), Some("done"))
        .await
        .expect("ending a token is never limited");
    let bad = UsageLimit {
        remaining: u64::MAX,
        refill: None,
        refilled_at: None,
    };
    let refused = k.tokens.issue(NewToken::new("alice", "x").usage(bad)).await;
    assert!(
        matches!(&refused, Err(Error::Invalid(v)) if v.has("remaining")),
        "a hand-built limit is checked too: {refused:?}"
    );
}
