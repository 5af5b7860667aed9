//! Verification: garbage never reaches the store, failures look alike, requirements are enforced, last use is throttled.

use std::sync::atomic::Ordering;

use time::Duration;

use crate::testkit::fixtures::{epoch, forge, kit, record};
use crate::{AuthError, NewToken, Requirements, TokenStore};

/// Garbage is rejected by parsing alone, with a typed error, before any store call.
pub async fn malformed_tokens_never_touch_the_store<S: TokenStore>(store: S) {
    let k = kit(store);
    let (plain, _) = k.issue(NewToken::new("alice", "ci")).await;
    let before = k.calls.total();
    let mut typo = plain.clone().into_bytes();
    let last = typo.len() - 12;
    typo[last] = if typo[last] == b'0' { b'1' } else { b'0' };
    let cases = [
        String::new(),
        "x".repeat(10_000),
        "kit_test_".to_owned(),
        "kit_test_ZZZ".to_owned(),
        plain.replace("kit_test", "other"),
        format!("{plain}0"),
        plain[..plain.len() - 1].to_owned(),
        format!("{} ", plain),
        plain.replace('_', "-"),
        String::from_utf8(typo).expect("ascii"),
        "'; DROP TABLE api_tokens; --".to_owned(),
        "kit_test_\u{0}\u{0}".to_owned(),
        "kit_test_🦀".to_owned(),
    ];
    for bad in &cases {
        match k.tokens.verify(bad).await {
            Err(AuthError::Malformed(_)) => {}
            other => panic!("{:?}… should be malformed, got {other:?}", bad.get(..20)),
        }
    }
    assert_eq!(
        k.calls.total(),
        before,
        "malformed tokens must not reach the store"
    );
}

/// An unknown id and a wrong secret give the same error.
pub async fn unknown_id_and_wrong_secret_look_the_same<S: TokenStore>(store: S) {
    let k = kit(store);
    let (_, rec) = k.issue(NewToken::new("alice", "ci")).await;
    let wrong_secret = k.tokens.verify(&forge("kit_test", &rec.id)).await;
    let unknown = k
        .tokens
        .verify(&forge("kit_test", &record("x", epoch()).id))
        .await;
    assert!(
        matches!(wrong_secret, Err(AuthError::Invalid)),
        "{wrong_secret:?}"
    );
    assert!(matches!(unknown, Err(AuthError::Invalid)), "{unknown:?}");
    let (a, b) = (wrong_secret.unwrap_err(), unknown.unwrap_err());
    assert_eq!(a.to_string(), b.to_string());
    assert_eq!((a.status(), a.code()), (b.status(), b.code()));
    let stored = k.store().get(&rec.id).await.expect("get").expect("exists");
    assert_eq!(
        stored.last_used_at, None,
        "a failed verification records no use"
    );
}

/// Required scopes and tenants are enforced, with 403s.
pub async fn scopes_and_tenant_are_enforced<S: TokenStore>(store: S) {
    let k = kit(store);
    let (reader, _) = k
        .issue(
            NewToken::new("alice", "r")
                .tenant("biz_1")
                .scopes(["profile:read", "tokens:read"]),
        )
        .await;
    let (plain, _) = k.issue(NewToken::new("alice", "none")).await;
    k.tokens
        .verify_with(
            &reader,
            &Requirements::scopes(&["tokens:read"]).tenant(Some("biz_1")),
        )
        .await
        .expect("has the scope and the tenant");
    match k
        .tokens
        .verify_with(
            &reader,
            &Requirements::scopes(&["tokens:read", "tokens:write", "x"]),
        )
        .await
    {
        Err(e @ AuthError::InsufficientScope { .. }) => {
            assert_eq!(e.status(), 403);
            let AuthError::InsufficientScope { missing } = e else {
                unreachable!()
            };
            assert_eq!(missing, ["tokens:write", "x"]);
        }
        other => panic!("expected insufficient scope, got {other:?}"),
    }
    let err = k
        .tokens
        .verify_with(&reader, &Requirements::NONE.tenant(Some("biz_2")))
        .await
        .expect_err("other tenant");
    assert!(matches!(err, AuthError::WrongTenant) && err.status() == 403);
    let err = k
        .tokens
        .verify_with(&plain, &Requirements::NONE.tenant(Some("biz_1")))
        .await
        .expect_err("no tenant");
    assert!(matches!(err, AuthError::WrongTenant));
    k.tokens.verify(&plain).await.expect("no requirements");
}

/// 1 000 verifications inside one interval write last use at most once; it stays fresh to
/// within the interval.
pub async fn last_use_is_written_once_per_interval<S: TokenStore>(store: S) {
    let k = kit(store);
    let (plain, rec) = k.issue(NewToken::new("alice", "busy")).await;
    let interval = k.tokens.last_use_interval();
    for _ in 0..1000 {
        k.tokens.verify(&plain).await.expect("verify");
        k.clock.advance(Duration::milliseconds(10)); // 10 s in all, inside 60 s
    }
    assert_eq!(
        k.calls.record_last_use.load(Ordering::SeqCst),
        1,
        "one write for 1 000 verifies"
    );
    assert_eq!(
        k.calls.get.load(Ordering::SeqCst),
        1000,
        "one read per verify"
    );
    let stored = k.store().get(&rec.id).await.expect("get").expect("exists");
    assert_eq!(stored.last_used_at, Some(epoch()));

    k.clock.set(epoch() + interval - Duration::milliseconds(1));
    k.tokens.verify(&plain).await.expect("verify");
    assert_eq!(k.calls.record_last_use.load(Ordering::SeqCst), 1);
    k.clock.set(epoch() + interval);
    k.tokens.verify(&plain).await.expect("verify");
    assert_eq!(
        k.calls.record_last_use.load(Ordering::SeqCst),
        2,
        "a write once the interval passed"
    );
    let stored = k.store().get(&rec.id).await.expect("get").expect("exists");
    assert_eq!(stored.last_used_at, Some(epoch() + interval));
}
