//! What is done to a token reaches what came from it: the tokens it created are suspended,
//! narrowed and cut with it, its successors are revoked with it when it leaks, and neither
//! rotation nor a concurrent edit lets a token escape those rules.
//!
//! Stores without `insert_child` hold no created tokens; the cases that need one stop
//! there (`StoreErrorKind::Unsupported`).

use time::Duration;

use crate::testkit::fixtures::{Kit, epoch, kit, kit_slow, kit_with};
use crate::{
    AuthError, Error, Expiry, Issued, LeakOutcome, NewToken, StoreErrorKind, TokenEdit,
    TokenPolicy, TokenStore,
};

/// A login of alice's with every scope, expiring in `days`, and a token it created.
async fn family<S: TokenStore>(k: &Kit<S>, days: i64) -> Option<(String, Issued, Issued)> {
    let (login, _) = k
        .issue(
            NewToken::new("alice", "login")
                .scopes(["a", "b", "c"])
                .expires(Expiry::InDays(days)),
        )
        .await;
    let who = k.tokens.verify(&login).await.expect("the login verifies");
    let issued = k
        .tokens
        .issue(NewToken::child_of(&who, "script").scopes(["a", "b"]))
        .await;
    let child = match issued {
        Err(Error::Store(e)) if e.kind() == StoreErrorKind::Unsupported => return None,
        other => other.expect("a child"),
    };
    let script = k
        .tokens
        .verify(child.plaintext.expose_secret())
        .await
        .expect("the child verifies");
    let grandchild = k
        .tokens
        .issue(NewToken::child_of(&script, "job").scopes(["a", "b"]))
        .await
        .expect("a grandchild");
    Some((login, child, grandchild))
}

/// Suspending a token suspends what it created (the same outward 401), resuming it resumes
/// them, and a token suspended on its own stays suspended; a suspended token creates
/// nothing.
pub async fn suspension_reaches_created_tokens<S: TokenStore>(store: S) {
    let k = kit(store);
    let Some((login, child, grandchild)) = family(&k, 30).await else {
        return;
    };
    let (c, g) = (child.record.id, grandchild.record.id);
    let login_id = child.record.created_by.expect("created");
    k.tokens
        .suspend("alice", g)
        .await
        .expect("suspend the job alone");
    k.clock.advance(Duration::seconds(1));
    k.tokens
        .suspend("alice", login_id)
        .await
        .expect("suspend the login");
    for t in [&login, child.plaintext.expose_secret()] {
        let err = k.tokens.verify(t).await.expect_err("suspended");
        assert!(matches!(err, AuthError::Suspended { .. }), "{err:?}");
    }
    k.tokens
        .resume("alice", login_id)
        .await
        .expect("resume the login");
    k.tokens
        .verify(child.plaintext.expose_secret())
        .await
        .expect("resumed with its creator");
    let job = k
        .tokens
        .verify(grandchild.plaintext.expose_secret())
        .await
        .expect_err("suspended on its own before");
    assert!(matches!(job, AuthError::Suspended { .. }), "{job:?}");
    let stored = k.store().get(&g).await.expect("get").expect("kept");
    assert_eq!(
        stored.suspended_at,
        Some(epoch()),
        "its own suspension is kept"
    );

    let script = k
        .tokens
        .verify(child.plaintext.expose_secret())
        .await
        .expect("verifies");
    k.tokens
        .suspend("alice", c)
        .await
        .expect("suspend the script");
    let refused = k
        .tokens
        .issue(NewToken::child_of(&script, "late").scopes(["a"]))
        .await;
    assert!(
        matches!(refused, Err(Error::Auth(AuthError::Invalid))),
        "a suspended creator creates nothing: {refused:?}"
    );
}

/// Narrowing a token's scopes or shortening its life narrows and cuts what it created.
pub async fn narrowing_reaches_created_tokens<S: TokenStore>(store: S) {
    let k = kit(store);
    let Some((_, child, grandchild)) = family(&k, 30).await else {
        return;
    };
    let sooner = epoch() + Duration::days(5);
    k.tokens
        .edit(
            "alice",
            child.record.id,
            &TokenEdit::new().scopes(["a"]).expires_at(sooner),
        )
        .await
        .expect("narrow the script");
    let job = k
        .store()
        .get(&grandchild.record.id)
        .await
        .expect("get")
        .expect("kept");
    assert_eq!(
        job.scopes.iter().collect::<Vec<_>>(),
        ["a"],
        "narrowed with it"
    );
    assert_eq!(job.expires_at, Some(sooner), "cut with it");
    let who = k
        .tokens
        .verify(grandchild.plaintext.expose_secret())
        .await
        .expect("still valid");
    assert!(who.has_scope("a") && !who.has_scope("b"));
}

/// A created token's successor never outlives the creator, and a suspended token, or one
/// idle past the timeout, cannot be rotated: rotation never revives a token.
pub async fn rotation_never_revives_or_outlives<S: TokenStore>(store: S) {
    let policy = TokenPolicy::default().idle_timeout(Some(Duration::days(30)));
    let k = kit_with(store, policy);
    let Some((_, child, _)) = family(&k, 10).await else {
        return;
    };
    let creator_expiry = epoch() + Duration::days(10);
    k.clock.advance(Duration::days(9));
    let successor = k
        .tokens
        .rotate("alice", child.record.id, Duration::ZERO)
        .await
        .expect("rotate on day 9");
    assert_eq!(
        successor.record.expires_at,
        Some(creator_expiry),
        "cut to its creator's expiry"
    );
    k.tokens
        .suspend("alice", successor.record.id)
        .await
        .expect("suspend");
    let rotated = k
        .tokens
        .rotate("alice", successor.record.id, Duration::ZERO)
        .await;
    assert!(matches!(rotated, Err(Error::NotActive)), "{rotated:?}");

    let (idle, idle_record) = k
        .issue(NewToken::new("bob", "idle").expires(Expiry::InDays(365)))
        .await;
    k.clock.advance(Duration::days(31));
    assert!(matches!(
        k.tokens.verify(&idle).await,
        Err(AuthError::Idle { .. })
    ));
    let rotated = k.tokens.rotate("bob", idle_record.id, Duration::ZERO).await;
    assert!(matches!(rotated, Err(Error::NotActive)), "{rotated:?}");
}

/// A leaked token's successors are revoked with it: whoever found it could have rotated it.
pub async fn leaked_tokens_take_their_successors_with_them<S: TokenStore>(store: S) {
    let k = kit(store);
    let (leaked, record) = k.issue(NewToken::new("alice", "ci")).await;
    let next = k
        .tokens
        .rotate("alice", record.id, Duration::hours(1))
        .await
        .expect("rotated by the thief");
    let last = k
        .tokens
        .rotate("alice", next.record.id, Duration::hours(1))
        .await
        .expect("and again");
    let reports = k.tokens.revoke_leaked(&[&leaked]).await.expect("revoke");
    assert_eq!(reports[0].outcome, LeakOutcome::WasLive);
    assert_eq!(reports[0].successors_revoked, 2);
    for t in [
        next.plaintext.expose_secret(),
        last.plaintext.expose_secret(),
    ] {
        assert!(matches!(
            k.tokens.verify(t).await,
            Err(AuthError::Revoked { .. })
        ));
    }
}

/// An edit that lands while a rotation is under way is not lost: the successor carries it.
/// (The store's reads are slowed so the edit lands between the rotation's read and its
/// atomic step.)
pub async fn an_edit_during_a_rotation_is_kept_in_the_successor<S: TokenStore>(store: S) {
    let k = kit_slow(store, std::time::Duration::from_millis(40));
    let (_, record) = k
        .issue(NewToken::new("alice", "ci").scopes(["read", "write"]))
        .await;
    let tokens = k.tokens.clone();
    let rotation =
        tokio::spawn(async move { tokens.rotate("alice", record.id, Duration::hours(1)).await });
    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    k.tokens
        .edit("alice", record.id, &TokenEdit::new().scopes(["read"]))
        .await
        .expect("narrowed meanwhile");
    let successor = rotation.await.expect("task").expect("rotated");
    assert_eq!(
        successor.record.scopes.iter().collect::<Vec<_>>(),
        ["read"],
        "the successor has the edit"
    );
}

/// An expiry that cannot be written in UTC (year 10000 there) is refused, never a panic.
pub async fn far_future_instants_are_refused<S: TokenStore>(store: S) {
    let k = kit_with(store, TokenPolicy::default().max_lifetime(None));
    // 9999-12-31 23:59:59 at UTC-1 (built without the `time` macros, which the
    // library does not enable).
    let beyond = time::PrimitiveDateTime::new(
        time::Date::from_calendar_date(9999, time::Month::December, 31).expect("a real date"),
        time::Time::from_hms(23, 59, 59).expect("a real time"),
    )
    .assume_offset(time::UtcOffset::from_hms(-1, 0, 0).expect("a real offset"));
    let issued = k
        .tokens
        .issue(NewToken::new("alice", "x").expires(Expiry::At(beyond)))
        .await;
    assert!(
        matches!(&issued, Err(e) if e.validation().is_some_and(|v| v.has("expires_at"))),
        "{issued:?}"
    );
    let (_, record) = k.issue(NewToken::new("alice", "y")).await;
    let edited = k
        .tokens
        .edit("alice", record.id, &TokenEdit::new().expires_at(beyond))
        .await;
    assert!(
        matches!(&edited, Err(e) if e.validation().is_some_and(|v| v.has("expires_at"))),
        "{edited:?}"
    );
}
