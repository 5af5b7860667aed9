//! Issuing: what is stored, what is refused, and that nothing leaks.

use std::sync::atomic::Ordering;

use time::Duration;

use crate::testkit::fixtures::{epoch, forge, kit, record};
use crate::{Error, Expiry, NewToken, TokenRecord, TokenStore};

/// Issue a token, verify it, and read back what was stored.
pub async fn issue_and_verify<S: TokenStore>(store: S) {
    let k = kit(store);
    let (plain, rec) = k
        .issue(
            NewToken::new("alice", "  deploy-script  ")
                .tenant("biz_1")
                .description("Deploys from CI")
                .scopes(["tokens:read", "profile:read"]),
        )
        .await;
    assert!(plain.starts_with("kit_test_"), "the prefix leads the token");
    assert_eq!(&*rec.name, "deploy-script", "names are trimmed");
    assert_eq!(rec.created_at, epoch());
    assert_eq!(
        rec.expires_at,
        Some(epoch() + Duration::days(365)),
        "default lifetime is 365 days"
    );
    assert!(
        plain.starts_with(&rec.display_prefix()),
        "the display prefix is the token's start"
    );

    let who = k
        .tokens
        .verify(&plain)
        .await
        .expect("a fresh token verifies");
    assert_eq!(who.token_id(), rec.id);
    assert_eq!(who.owner(), "alice");
    assert_eq!(who.tenant(), Some("biz_1"));
    assert_eq!(who.name(), "deploy-script");
    assert_eq!(
        who.scopes().iter().collect::<Vec<_>>(),
        ["profile:read", "tokens:read"]
    );
    assert_eq!(who.expires_at(), rec.expires_at);

    let stored = k
        .store()
        .get(&rec.id)
        .await
        .expect("get")
        .expect("the record exists");
    assert_eq!(
        stored.last_used_at,
        Some(epoch()),
        "verification records last use"
    );
    assert_eq!(
        TokenRecord {
            last_used_at: None,
            ..TokenRecord::clone(&stored)
        },
        rec,
        "the store keeps the record as issued"
    );
}

/// The store holds the SHA-256 of the secret and never the token; nothing prints a secret.
pub async fn only_the_hash_is_stored<S: TokenStore>(store: S) {
    let k = kit(store);
    let (plain, rec) = k.issue(NewToken::new("alice", "ci")).await;
    let parsed = k.tokens.format().parse(&plain).expect("parses");
    assert!(
        rec.hash.ct_eq(&parsed.secret_hash()),
        "the stored hash is SHA-256 of the secret"
    );
    let secret_part = &plain[rec.display_prefix().len() + 24..plain.len() - 8];
    let stored = k.store().get(&rec.id).await.expect("get").expect("exists");
    let who = k.tokens.verify(&plain).await.expect("verifies");
    for shown in [
        format!("{stored:?}"),
        format!("{:?}", stored.info()),
        format!("{who:?}"),
        format!("{parsed:?}"),
    ] {
        assert!(
            !shown.contains(secret_part),
            "a secret leaked into Debug: {shown}"
        );
    }
    let wrong = forge("kit_test", &rec.id);
    let err = k.tokens.verify(&wrong).await.expect_err("wrong secret");
    assert!(
        !err.to_string().contains(&wrong[9..]),
        "a token leaked into an error message"
    );
}

/// Every rejected field is named at once, and nothing is written.
pub async fn invalid_fields_are_named_and_nothing_is_written<S: TokenStore>(store: S) {
    let k = kit(store);
    let err = k
        .tokens
        .issue(
            NewToken::new("", "   ")
                .tenant("a\u{7}b")
                .description("d".repeat(1025))
                .scopes(["ok", "not ok"])
                .expires(Expiry::InDays(0)),
        )
        .await
        .expect_err("all invalid");
    assert_eq!(err.status(), 422);
    let v = err.validation().expect("a validation error");
    for field in [
        "owner",
        "tenant",
        "name",
        "description",
        "scopes[1]",
        "expires_in_days",
    ] {
        assert!(v.has(field), "{field} should be named in {v}");
    }
    for bad in [
        NewToken::new("alice", "x".repeat(256)),
        NewToken::new("alice", "tab\tname"),
        NewToken::new("alice", "ok").expires(Expiry::InDays(366)),
        NewToken::new("alice", "ok").expires(Expiry::InDays(-5)),
        NewToken::new("alice", "ok").expires(Expiry::At(epoch() - Duration::seconds(1))),
        NewToken::new("alice", "ok").expires(Expiry::After(Duration::days(400))),
        NewToken::new("alice", "ok").expires(Expiry::Never),
        NewToken::new("alice", "ok").scopes([""]),
    ] {
        let err = k.tokens.issue(bad.clone()).await.expect_err("invalid");
        assert!(matches!(err, Error::Invalid(_)), "{bad:?}: {err:?}");
    }
    assert_eq!(
        k.calls.insert.load(Ordering::SeqCst),
        0,
        "rejected requests write nothing"
    );
    assert!(matches!(
        k.tokens
            .revoke("alice", record("a", epoch()).id, Some("bad\u{0}reason"))
            .await,
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        k.tokens
            .rotate("alice", record("a", epoch()).id, Duration::seconds(-1))
            .await,
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        k.tokens.purge(Duration::seconds(-1)).await,
        Err(Error::Invalid(_))
    ));
}
