//! What teams ask of the leaders, on every store: idle expiry, editing, suspension, expiry
//! notices, leak response, metadata, IP allowlists and description limits.

use time::Duration;

use crate::testkit::fixtures::{epoch, kit, kit_with};
use crate::{
    AuthError, Error, ExpiringRequest, Expiry, LeakOutcome, NewToken, Requirements, StoreErrorKind,
    TokenEdit, TokenPolicy, TokenStore,
};

/// A token unused for longer than the idle timeout stops verifying with `Idle` (not
/// `Expired`), counted from its last use, or from its creation if never used.
pub async fn idle_tokens_stop_verifying<S: TokenStore>(store: S) {
    let k = kit_with(
        store,
        TokenPolicy::default().idle_timeout(Some(Duration::days(30))),
    );
    let (used, _) = k.issue(NewToken::new("alice", "used")).await;
    let (unused, _) = k.issue(NewToken::new("alice", "unused")).await;
    k.clock.advance(Duration::days(20));
    k.tokens.verify(&used).await.expect("used at day 20");
    k.clock.advance(Duration::days(20));
    k.tokens
        .verify(&used)
        .await
        .expect("20 days after its last use");
    let err = k.tokens.verify(&unused).await.expect_err("40 days unused");
    assert!(
        matches!(err, AuthError::Idle { idle_since } if idle_since == epoch()),
        "{err:?}"
    );
    assert_eq!(
        (err.status(), err.code(), err.reason()),
        (401, "invalid_token", "idle")
    );
    k.clock.advance(Duration::days(31));
    assert!(matches!(
        k.tokens.verify(&used).await,
        Err(AuthError::Idle { .. })
    ));
}

/// An edit renames, describes, narrows scopes and shortens expiry in one step; widening,
/// lengthening, and editing a revoked or another owner's token are refused.
pub async fn a_token_can_be_narrowed_but_never_widened<S: TokenStore>(store: S) {
    let k = kit(store);
    let (token, record) = k
        .issue(
            NewToken::new("alice", "ci")
                .scopes(["a", "b"])
                .expires(Expiry::InDays(30)),
        )
        .await;
    let sooner = epoch() + Duration::days(10);
    let info = k
        .tokens
        .edit(
            "alice",
            record.id,
            &TokenEdit::new()
                .name("  ci (a)  ")
                .description(Some("reads a".into()))
                .scopes(["a"])
                .expires_at(sooner),
        )
        .await
        .expect("narrowed");
    assert_eq!(&*info.name, "ci (a)");
    assert_eq!(info.description.as_deref(), Some("reads a"));
    assert_eq!(info.scopes.iter().collect::<Vec<_>>(), ["a"]);
    assert_eq!(info.expires_at, Some(sooner));
    let stored = k.store().get(&record.id).await.expect("get").expect("kept");
    assert_eq!((&*stored.name, stored.expires_at), ("ci (a)", Some(sooner)));
    let who = k.tokens.verify(&token).await.expect("still valid");
    assert!(
        who.has_scope("a") && !who.has_scope("b"),
        "verification sees the edit"
    );

    for (edit, field) in [
        (TokenEdit::new().scopes(["a", "b"]), "scopes"),
        (
            TokenEdit::new().expires_at(epoch() + Duration::days(20)),
            "expires_at",
        ),
        (
            TokenEdit::new().expires_at(epoch() - Duration::days(1)),
            "expires_at",
        ),
        (TokenEdit::new().name(""), "name"),
    ] {
        let err = k
            .tokens
            .edit("alice", record.id, &edit)
            .await
            .expect_err(field);
        assert!(
            err.validation().is_some_and(|v| v.has(field)),
            "{field}: {err:?}"
        );
        assert_eq!(err.status(), 422);
    }
    let after = k.store().get(&record.id).await.expect("get").expect("kept");
    assert_eq!(after.scopes.len(), 1, "a refused edit writes nothing");
    let foreign = k
        .tokens
        .edit("bob", record.id, &TokenEdit::new().name("x"))
        .await;
    assert!(matches!(foreign, Err(Error::NotFound)), "{foreign:?}");
    k.tokens
        .revoke("alice", record.id, None)
        .await
        .expect("revoke");
    let revoked = k
        .tokens
        .edit("alice", record.id, &TokenEdit::new().name("x"))
        .await;
    assert!(matches!(revoked, Err(Error::NotActive)), "{revoked:?}");
}

/// A suspended token fails like a revoked one and verifies again once resumed; suspending
/// and resuming are idempotent; a revoked token can be neither (revocation is final).
pub async fn suspension_is_reversible_and_revocation_is_not<S: TokenStore>(store: S) {
    let k = kit(store);
    let (token, record) = k.issue(NewToken::new("alice", "ci")).await;
    k.clock.advance(Duration::seconds(5));
    let info = k.tokens.suspend("alice", record.id).await.expect("suspend");
    let at = epoch() + Duration::seconds(5);
    assert_eq!(info.suspended_at, Some(at));
    let err = k.tokens.verify(&token).await.expect_err("suspended");
    assert!(matches!(err, AuthError::Suspended { suspended_at } if suspended_at == at));
    assert_eq!((err.status(), err.code()), (401, "invalid_token"));
    k.clock.advance(Duration::seconds(5));
    let again = k.tokens.suspend("alice", record.id).await.expect("again");
    assert_eq!(again.suspended_at, Some(at), "the first suspension is kept");
    let resumed = k.tokens.resume("alice", record.id).await.expect("resume");
    assert_eq!(resumed.suspended_at, None);
    k.tokens.verify(&token).await.expect("verifies again");
    k.tokens
        .resume("alice", record.id)
        .await
        .expect("resuming again is a no-op");
    let foreign = k.tokens.suspend("bob", record.id).await;
    assert!(matches!(foreign, Err(Error::NotFound)));

    k.tokens.suspend("alice", record.id).await.expect("suspend");
    k.tokens
        .revoke("alice", record.id, None)
        .await
        .expect("revoke while suspended");
    for result in [
        k.tokens.resume("alice", record.id).await,
        k.tokens.suspend("alice", record.id).await,
    ] {
        assert!(
            matches!(result, Err(Error::AlreadyRevoked { .. })),
            "{result:?}"
        );
    }
    assert!(matches!(
        k.tokens.verify(&token).await,
        Err(AuthError::Revoked { .. })
    ));
}

/// Tokens expiring in a window, of every owner, soonest first, paged: not the revoked, not
/// the expired, not those expiring later or never. A store without `list_expiring` refuses
/// clearly.
pub async fn expiring_tokens_are_listed_soonest_first<S: TokenStore>(store: S) {
    let k = kit_with(store, TokenPolicy::default().allow_never(true));
    let (_, in3) = k
        .issue(NewToken::new("alice", "in 3").expires(Expiry::InDays(3)))
        .await;
    let (_, in1) = k
        .issue(NewToken::new("bob", "in 1").expires(Expiry::InDays(1)))
        .await;
    let (_, in6) = k
        .issue(NewToken::new("carol", "in 6").expires(Expiry::InDays(6)))
        .await;
    k.issue(NewToken::new("alice", "in 30").expires(Expiry::InDays(30)))
        .await;
    k.issue(NewToken::new("alice", "never").expires(Expiry::Never))
        .await;
    let (_, revoked) = k
        .issue(NewToken::new("dave", "revoked").expires(Expiry::InDays(2)))
        .await;
    k.tokens
        .revoke("dave", revoked.id, None)
        .await
        .expect("revoke");
    let (_, gone) = k
        .issue(NewToken::new("erin", "gone").expires(Expiry::After(Duration::hours(1))))
        .await;
    k.clock.advance(Duration::hours(2));
    let _ = gone;

    let week = ExpiringRequest::within(Duration::days(7));
    let page = match k.tokens.list_expiring(&week).await {
        Err(Error::Store(e)) if e.kind() == StoreErrorKind::Unsupported => return,
        other => other.expect("list expiring"),
    };
    let ids: Vec<_> = page.data.iter().map(|t| t.id).collect();
    assert_eq!(
        ids,
        [in1.id, in3.id, in6.id],
        "soonest first, across owners"
    );
    assert_eq!(page.meta.total, 3);
    let second = k
        .tokens
        .list_expiring(&week.per_page(2).page(2))
        .await
        .expect("page 2");
    assert_eq!(
        (
            second.data.iter().map(|t| t.id).collect::<Vec<_>>(),
            second.meta.total
        ),
        (vec![in6.id], 3)
    );
    let day = k
        .tokens
        .list_expiring(&ExpiringRequest::within(Duration::days(1)))
        .await
        .expect("a day");
    assert_eq!(day.data.iter().map(|t| t.id).collect::<Vec<_>>(), [in1.id]);
    for bad in [
        ExpiringRequest::within(Duration::ZERO),
        ExpiringRequest::within(Duration::days(400)),
        week.page(0),
        week.per_page(101),
    ] {
        let err = k.tokens.list_expiring(&bad).await.expect_err("refused");
        assert_eq!(err.status(), 422, "{bad:?}");
    }
}

/// Leaked plaintexts: live tokens are revoked with the reason `leaked` and reported as
/// live; revoked and foreign strings are reported as such and change nothing.
pub async fn leaked_tokens_are_revoked_and_reported<S: TokenStore>(store: S) {
    let k = kit(store);
    let (live, live_r) = k.issue(NewToken::new("alice", "live")).await;
    let (old, old_r) = k.issue(NewToken::new("bob", "old")).await;
    k.tokens
        .revoke("bob", old_r.id, Some("rotated"))
        .await
        .expect("revoke");
    let forged = crate::testkit::fixtures::forge("kit_test", &live_r.id);
    let reports = k
        .tokens
        .revoke_leaked(&[&live, &old, &forged, "not a token at all"])
        .await
        .expect("revoke leaked");
    let outcomes: Vec<_> = reports.iter().map(|r| r.outcome).collect();
    assert_eq!(
        outcomes,
        [
            LeakOutcome::WasLive,
            LeakOutcome::AlreadyRevoked,
            LeakOutcome::NotOurs,
            LeakOutcome::NotOurs,
        ]
    );
    assert_eq!(reports[0].token_id, Some(live_r.id));
    assert_eq!(reports[0].owner.as_deref(), Some("alice"));
    assert_eq!(reports[2].token_id, None, "a forged secret names nothing");
    let stored = k.store().get(&live_r.id).await.expect("get").expect("kept");
    assert_eq!(stored.revocation_reason.as_deref(), Some("leaked"));
    let kept = k.store().get(&old_r.id).await.expect("get").expect("kept");
    assert_eq!(kept.revocation_reason.as_deref(), Some("rotated"));
    assert!(k.tokens.verify(&live).await.is_err());
}

/// Metadata is kept with the token, returned by verification and listings, bounded, and
/// editable; tokens without it have none.
pub async fn metadata_is_kept_bounded_and_returned<S: TokenStore>(store: S) {
    let k = kit(store);
    let meta = serde_json::json!({ "plan": "pro", "team": { "id": 7 } });
    let (token, record) = k
        .issue(NewToken::new("alice", "ci").metadata(meta.clone()))
        .await;
    let who = k.tokens.verify(&token).await.expect("verify");
    let seen: serde_json::Value =
        serde_json::from_str(who.metadata_json().expect("in the principal")).expect("json");
    assert_eq!(seen, meta);
    let listed = k
        .tokens
        .list(&crate::ListRequest::new("alice"))
        .await
        .expect("list");
    assert_eq!(
        listed.data[0].metadata.as_ref().map(|m| m.to_value()),
        Some(meta)
    );
    let stored = k.store().get(&record.id).await.expect("get").expect("kept");
    assert!(stored.metadata.is_some(), "the store keeps it");

    for bad in [
        serde_json::json!("text"),
        serde_json::json!({ "x": "y".repeat(5000) }),
        serde_json::json!({"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}),
    ] {
        let err = k
            .tokens
            .issue(NewToken::new("alice", "bad").metadata(bad))
            .await
            .expect_err("refused");
        assert!(
            err.validation().is_some_and(|v| v.has("metadata")),
            "{err:?}"
        );
    }
    let edited = k
        .tokens
        .edit("alice", record.id, &TokenEdit::new().metadata(None))
        .await
        .expect("edit");
    assert_eq!(edited.metadata, None);
    let (plain, _) = k.issue(NewToken::new("alice", "plain")).await;
    let who = k.tokens.verify(&plain).await.expect("verify");
    assert_eq!(who.metadata_json(), None);
}

/// A token with an IP allowlist verifies only from an address on it, and never when no
/// address is given; bad ranges are named; a created token stays within its creator's.
pub async fn ip_allowlists_are_enforced<S: TokenStore>(store: S) {
    let k = kit(store);
    let (token, record) = k
        .issue(NewToken::new("alice", "office").allowed_ips(["10.0.0.0/8", "192.0.2.7"]))
        .await;
    let from = |ip: &str| Requirements::NONE.client_ip(Some(ip.parse().unwrap()));
    k.tokens
        .verify_with(&token, &from("10.20.30.40"))
        .await
        .expect("inside 10/8");
    k.tokens
        .verify_with(&token, &from("::ffff:192.0.2.7"))
        .await
        .expect("the one address, mapped");
    for outside in [from("192.0.2.8"), Requirements::NONE] {
        let err = k
            .tokens
            .verify_with(&token, &outside)
            .await
            .expect_err("outside");
        assert!(matches!(err, AuthError::IpNotAllowed), "{err:?}");
        assert_eq!((err.status(), err.code()), (403, "ip_not_allowed"));
    }
    // From outside, nothing more is told: not which scopes or tenant it has.
    let probing = Requirements::scopes(&["admin"])
        .tenant(Some("other"))
        .client_ip(Some("192.0.2.8".parse().unwrap()));
    let err = k
        .tokens
        .verify_with(&token, &probing)
        .await
        .expect_err("outside");
    assert!(matches!(err, AuthError::IpNotAllowed), "{err:?}");
    let stored = k.store().get(&record.id).await.expect("get").expect("kept");
    assert_eq!(
        stored.allowed_ips.as_ref().map(|a| a.iter().count()),
        Some(2)
    );
    let err = k
        .tokens
        .issue(NewToken::new("alice", "bad").allowed_ips(["10.0.0.0/33", "ok?"]))
        .await
        .expect_err("refused");
    let v = err.validation().expect("validation");
    assert!(v.has("allowed_ips[0]") && v.has("allowed_ips[1]"), "{v:?}");

    let who = k
        .tokens
        .verify_with(&token, &from("10.1.1.1"))
        .await
        .expect("verify");
    let child = k.tokens.issue(NewToken::child_of(&who, "child")).await;
    match child {
        // A store without children: nothing more to check here.
        Err(Error::Store(e)) if e.kind() == StoreErrorKind::Unsupported => return,
        other => {
            let child = other.expect("a child");
            assert_eq!(child.record.allowed_ips, stored.allowed_ips, "inherited");
        }
    }
    let wider = k
        .tokens
        .issue(NewToken::child_of(&who, "wider").allowed_ips(["0.0.0.0/0"]))
        .await
        .expect_err("wider than the creator's");
    assert!(
        wider.validation().is_some_and(|v| v.has("allowed_ips")),
        "{wider:?}"
    );
    k.tokens
        .issue(NewToken::child_of(&who, "narrower").allowed_ips(["10.1.0.0/16"]))
        .await
        .expect("narrower");
    // Whoever holds the secret may end the token, from anywhere.
    k.tokens
        .revoke_presented(&token, Some("leaked"))
        .await
        .expect("revoked from outside its allowlist");
    assert!(matches!(
        k.tokens.verify_with(&token, &from("10.1.1.1")).await,
        Err(AuthError::Revoked { .. })
    ));
}

/// The policy's description lengths are enforced when issuing and editing.
pub async fn description_lengths_follow_the_policy<S: TokenStore>(store: S) {
    let k = kit_with(store, TokenPolicy::default().description_chars(3, 255));
    for (description, ok) in [
        ("ab", false),
        ("abc", true),
        (&*"x".repeat(255), true),
        (&*"x".repeat(256), false),
    ] {
        let issued = k
            .tokens
            .issue(NewToken::new("alice", "t").description(description))
            .await;
        match (ok, issued) {
            (true, Ok(_)) => {}
            (false, Err(e)) => assert!(
                e.validation().is_some_and(|v| v.has("description")),
                "{e:?}"
            ),
            (ok, other) => panic!("{} chars, ok = {ok}: {other:?}", description.len()),
        }
    }
    let (_, record) = k.issue(NewToken::new("alice", "t")).await;
    let err = k
        .tokens
        .edit(
            "alice",
            record.id,
            &TokenEdit::new().description(Some("ab".into())),
        )
        .await
        .expect_err("too short");
    assert!(err.validation().is_some_and(|v| v.has("description")));
}
