//! Rotation: a like-for-like replacement, and the old token ends with its grace period.

use time::Duration;

use crate::testkit::fixtures::{epoch, kit, kit_slow};
use crate::{AuthError, Error, Expiry, ListRequest, NewToken, TokenStore};

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

/// All of alice's records of this kit's issuer, revoked and expired included.
async fn everything<S: TokenStore>(k: &crate::testkit::fixtures::Kit<S>) -> Vec<crate::TokenInfo> {
    let all = ListRequest::new("alice")
        .per_page(100)
        .include_inactive(true);
    k.tokens.list(&all).await.expect("list").data
}

/// Rotating a token during its grace period fails: a token has at most one successor,
/// and the successor can be rotated in turn.
pub async fn a_token_is_rotated_at_most_once<S: TokenStore>(store: S) {
    let k = kit(store);
    let (_, a) = k.issue(ci_token()).await;
    let b = k
        .tokens
        .rotate("alice", a.id, Duration::hours(1))
        .await
        .expect("A → B");
    let again = k.tokens.rotate("alice", a.id, Duration::hours(1)).await;
    assert!(matches!(again, Err(Error::AlreadyRotated)), "{again:?}");
    let again = k.tokens.rotate("alice", a.id, Duration::ZERO).await;
    assert!(matches!(again, Err(Error::AlreadyRotated)), "{again:?}");
    let stored = k.store().get(&a.id).await.expect("get").expect("kept");
    assert_eq!(stored.successor, Some(b.record.id));
    assert_eq!(
        k.tokens.get("alice", a.id).await.expect("get").replaced_by,
        Some(b.record.id)
    );
    k.tokens
        .rotate("alice", b.record.id, Duration::ZERO)
        .await
        .expect("B → C");
    assert_eq!(
        everything(&k).await.len(),
        3,
        "A, B and C; no other successor"
    );
}

/// A revocation that returns while a rotation is still reading the old token wins: the
/// rotation fails with `NotActive` and leaves no successor. (The store's reads are slowed
/// so the revocation lands inside the rotation.)
pub async fn rotation_after_revocation_fails_and_leaves_no_successor<S: TokenStore>(store: S) {
    let k = kit_slow(store, std::time::Duration::from_millis(50));
    for round in 0..3 {
        let (_, v) = k.issue(ci_token()).await;
        let tokens = k.tokens.clone();
        let rotation =
            tokio::spawn(async move { tokens.rotate("alice", v.id, Duration::hours(1)).await });
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        k.tokens.revoke("alice", v.id, None).await.expect("revoke");
        let rotated = rotation.await.expect("rotation task");
        assert!(
            matches!(rotated, Err(Error::NotActive)),
            "round {round}: {rotated:?}"
        );
        assert_eq!(
            everything(&k).await.len(),
            round + 1,
            "no successor was left behind"
        );
    }
}

/// Two rotations of one token at once: exactly one succeeds, and exactly one successor
/// exists, with and without a grace period.
pub async fn concurrent_rotations_leave_one_successor<S: TokenStore>(store: S) {
    let k = kit_slow(store, std::time::Duration::from_millis(20));
    for (round, grace) in [Duration::hours(1), Duration::ZERO].into_iter().enumerate() {
        let (_, w) = k.issue(ci_token()).await;
        let racers: Vec<_> = (0..2)
            .map(|_| {
                let tokens = k.tokens.clone();
                tokio::spawn(async move { tokens.rotate("alice", w.id, grace).await })
            })
            .collect();
        let mut won = 0;
        for r in racers {
            match r.await.expect("rotation task") {
                Ok(_) => won += 1,
                Err(Error::AlreadyRotated | Error::NotActive) => {}
                Err(e) => panic!("unexpected error: {e:?}"),
            }
        }
        assert_eq!(won, 1, "grace {grace}: exactly one rotation wins");
        assert_eq!(
            everything(&k).await.len(),
            2 * (round + 1),
            "exactly one successor"
        );
    }
}

/// Revoke-all racing a rotation leaves no live token: either it came first (and the
/// rotation failed) or it revoked the successor too.
pub async fn revoke_all_racing_a_rotation_leaves_nothing_live<S: TokenStore>(store: S) {
    let k = kit(store);
    for _ in 0..20 {
        let (_, w) = k.issue(ci_token()).await;
        let tokens = k.tokens.clone();
        let rotation =
            tokio::spawn(async move { tokens.rotate("alice", w.id, Duration::hours(1)).await });
        let revoked = k
            .tokens
            .revoke_all("alice", None, None)
            .await
            .expect("revoke all");
        let rotated = rotation.await.expect("rotation task");
        assert!(
            matches!(rotated, Ok(_) | Err(Error::NotActive)),
            "{rotated:?}"
        );
        if rotated.is_ok() && revoked < 2 {
            // The rotation came after revoke-all's decision point: only possible if
            // revoke-all ran first, and then the rotation must have failed.
            panic!("a rotation succeeded though revoke-all revoked only {revoked}");
        }
        let live = k
            .tokens
            .list(&ListRequest::new("alice"))
            .await
            .expect("list");
        assert_eq!(live.meta.total, 0, "a live token survived revoke-all");
    }
}
