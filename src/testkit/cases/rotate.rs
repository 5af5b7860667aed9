//! Rotation: a like-for-like replacement, and the old token ends with its grace period.

use time::Duration;

use crate::testkit::fixtures::{epoch, kit};
use crate::{AuthError, Error, Expiry, NewToken, TokenStore};

fn ci_token() -> NewToken {
    NewToken::new("alice", "ci")
        .tenant("t1")
        .description("d")
        .scopes(["tokens:read"])
        .expires(Expiry::InDays(30))
}

/// The replacement has the old token's owner, tenant, name, description and scopes, and
/// the same lifetime counted from now.
pub async fn rotation_issues_a_like_for_like_replacement<S: TokenStore>(store: S) {
    let k = kit(store);
    let (_, old) = k.issue(ci_token()).await;
    k.clock.advance(Duration::days(1));
    let new = k
        .tokens
        .rotate("alice", old.id, Duration::hours(1))
        .await
        .expect("rotate");
    let n = &new.record;
    assert_ne!(n.id, old.id);
    assert_eq!(
        (&n.owner, &n.tenant, &n.name, &n.description, &n.scopes),
        (
            &old.owner,
            &old.tenant,
            &old.name,
            &old.description,
            &old.scopes
        )
    );
    assert_eq!(n.created_at, epoch() + Duration::days(1));
    assert_eq!(
        n.expires_at,
        Some(k.tokens.now() + Duration::days(30)),
        "the same lifetime, from now"
    );
    k.tokens
        .verify(new.plaintext.expose_secret())
        .await
        .expect("the new token works");
}

/// With a grace period the old token keeps working until it ends, then expires.
pub async fn rotation_grace_keeps_the_old_token_until_it_ends<S: TokenStore>(store: S) {
    let k = kit(store);
    let (old, rec) = k.issue(ci_token()).await;
    let new = k
        .tokens
        .rotate("alice", rec.id, Duration::hours(1))
        .await
        .expect("rotate");
    k.clock.advance(Duration::hours(1) - Duration::seconds(1));
    k.tokens
        .verify(&old)
        .await
        .expect("the old token works during the grace");
    k.clock.advance(Duration::seconds(1));
    assert!(
        matches!(k.tokens.verify(&old).await, Err(AuthError::Expired { .. })),
        "the old token ends with the grace"
    );
    k.tokens
        .verify(new.plaintext.expose_secret())
        .await
        .expect("the new token still works");
}

/// Without a grace period the old token is revoked at once, with the reason `rotated`.
pub async fn rotation_without_grace_revokes_at_once<S: TokenStore>(store: S) {
    let k = kit(store);
    let (old, rec) = k.issue(ci_token()).await;
    let new = k
        .tokens
        .rotate("alice", rec.id, Duration::ZERO)
        .await
        .expect("rotate now");
    assert!(matches!(
        k.tokens.verify(&old).await,
        Err(AuthError::Revoked { .. })
    ));
    let stored = k.store().get(&rec.id).await.expect("get").expect("kept");
    assert_eq!(stored.revocation_reason.as_deref(), Some("rotated"));
    k.tokens
        .verify(new.plaintext.expose_secret())
        .await
        .expect("works");
}

/// Another owner's token is not found, and an expired or revoked one is not active.
pub async fn rotation_refuses_foreign_and_inactive_tokens<S: TokenStore>(store: S) {
    let k = kit(store);
    let (_, rec) = k.issue(ci_token()).await;
    assert!(matches!(
        k.tokens.rotate("mallory", rec.id, Duration::ZERO).await,
        Err(Error::NotFound)
    ));
    let (_, revoked) = k.issue(ci_token()).await;
    k.tokens
        .revoke("alice", revoked.id, None)
        .await
        .expect("revoke");
    assert!(matches!(
        k.tokens.rotate("alice", revoked.id, Duration::ZERO).await,
        Err(Error::NotActive)
    ));
    k.clock.advance(Duration::days(30));
    assert!(
        matches!(
            k.tokens.rotate("alice", rec.id, Duration::ZERO).await,
            Err(Error::NotActive)
        ),
        "an expired token cannot be rotated"
    );
}
