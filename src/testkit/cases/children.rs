//! Tokens created by other tokens ([`NewToken::child_of`]): they never outlive or exceed
//! their creator, and revoking a creator revokes everything it created.
//!
//! `TokenStore::insert_child` is optional: a store without it refuses to create such tokens
//! (`StoreErrorKind::Unsupported`) and writes nothing, which each case checks and then
//! stops, since such a store holds no created token to revoke.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use time::Duration;

use crate::testkit::fixtures::{Kit, epoch, kit};
use crate::{AuthError, Error, Expiry, Issued, ListRequest, NewToken, StoreErrorKind, TokenStore};

/// A created token gets no scope, tenant or lifetime beyond its creator's, and records who
/// created it.
pub async fn a_created_token_never_exceeds_its_creator<S: TokenStore>(store: S) {
    let k = kit(store);
    let (parent, parent_record) = k
        .issue(
            NewToken::new("alice", "login")
                .tenant("biz_1")
                .scopes(["tokens:read", "tokens:write"])
                .expires(Expiry::InDays(1)),
        )
        .await;
    let who = k
        .tokens
        .verify(&parent)
        .await
        .expect("the creator verifies");

    let new = NewToken::child_of(&who, "ci")
        .scopes(["tokens:read"])
        .expires(Expiry::InDays(365));
    let Some(child) = child(&k, new, "alice").await else {
        return;
    };
    assert_eq!(
        child.record.expires_at, parent_record.expires_at,
        "the child's expiry is cut to the creator's"
    );
    assert_eq!(child.record.created_by, Some(parent_record.id));
    assert_eq!(child.record.owner.as_ref(), "alice");
    assert_eq!(child.record.tenant.as_deref(), Some("biz_1"));
    let stored = k
        .store()
        .get(&child.record.id)
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(
        stored.created_by,
        Some(parent_record.id),
        "kept by the store"
    );
    assert_eq!(child.info().created_by, Some(parent_record.id));

    let wider = k
        .tokens
        .issue(NewToken::child_of(&who, "wider").scopes(["tokens:read", "admin"]))
        .await
        .expect_err("a scope the creator lacks");
    assert!(
        matches!(&wider, Error::Auth(AuthError::InsufficientScope { missing }) if missing == &["admin"]),
        "{wider:?}"
    );
    assert_eq!(wider.status(), 403);
    let elsewhere = k
        .tokens
        .issue(NewToken::child_of(&who, "other tenant").tenant("biz_2"))
        .await
        .expect_err("another tenant");
    assert!(
        matches!(elsewhere, Error::Auth(AuthError::WrongTenant)),
        "{elsewhere:?}"
    );

    k.clock.advance(Duration::days(1));
    let err = k
        .tokens
        .verify(child.plaintext.expose_secret())
        .await
        .expect_err("expired with its creator");
    assert!(matches!(err, AuthError::Expired { .. }), "{err:?}");
}

/// Revoking a token revokes every token it created, and theirs, with the same reason; the
/// owner's other tokens, and other owners', keep working.
pub async fn revoking_a_token_revokes_what_it_created<S: TokenStore>(store: S) {
    let k = kit(store);
    let (root, _) = k.issue(NewToken::new("alice", "login")).await;
    let (other, _) = k.issue(NewToken::new("alice", "unrelated")).await;
    let (bob, _) = k.issue(NewToken::new("bob", "login")).await;
    let root_p = k.tokens.verify(&root).await.expect("root");
    let Some(child) = child(&k, NewToken::child_of(&root_p, "child"), "alice").await else {
        return;
    };
    let child_p = k
        .tokens
        .verify(child.plaintext.expose_secret())
        .await
        .expect("child verifies");
    let grandchild = k
        .tokens
        .issue(NewToken::child_of(&child_p, "grandchild"))
        .await
        .expect("grandchild");
    // The child rotates: its successor was created by the root too.
    let successor = k
        .tokens
        .rotate("alice", child.record.id, Duration::ZERO)
        .await
        .expect("rotate the child");
    assert_eq!(successor.record.created_by, Some(root_p.token_id()));

    k.clock.advance(Duration::seconds(5));
    k.tokens
        .revoke("alice", root_p.token_id(), Some("leaked"))
        .await
        .expect("revoke the root");
    let at = epoch() + Duration::seconds(5);
    for (what, token) in [
        ("the root", root.clone()),
        (
            "the grandchild",
            grandchild.plaintext.expose_secret().to_owned(),
        ),
        (
            "the successor",
            successor.plaintext.expose_secret().to_owned(),
        ),
    ] {
        let err = k.tokens.verify(&token).await.expect_err(what);
        assert!(matches!(err, AuthError::Revoked { .. }), "{what}: {err:?}");
    }
    for id in [grandchild.record.id, successor.record.id] {
        let r = k.store().get(&id).await.expect("get").expect("kept");
        assert_eq!(r.revoked_at, Some(at));
        assert_eq!(r.revocation_reason.as_deref(), Some("leaked"));
    }
    let rotated = k
        .store()
        .get(&child.record.id)
        .await
        .expect("get")
        .expect("kept");
    assert_eq!(
        rotated.revocation_reason.as_deref(),
        Some("rotated"),
        "an already revoked token keeps its first revocation"
    );
    k.tokens
        .verify(&other)
        .await
        .expect("not created by the root");
    k.tokens.verify(&bob).await.expect("another owner's");
}

/// A revoked creator creates nothing: the store refuses the child (401), and writes nothing.
pub async fn a_revoked_creator_creates_nothing<S: TokenStore>(store: S) {
    let k = kit(store);
    let (root, record) = k.issue(NewToken::new("alice", "login")).await;
    let who = k.tokens.verify(&root).await.expect("verified");
    if child(&k, NewToken::child_of(&who, "early"), "alice")
        .await
        .is_none()
    {
        return;
    }
    k.tokens
        .revoke("alice", record.id, None)
        .await
        .expect("revoke");
    let err = k
        .tokens
        .issue(NewToken::child_of(&who, "late"))
        .await
        .expect_err("the creator is revoked");
    assert!(matches!(err, Error::Auth(AuthError::Invalid)), "{err:?}");
    assert_eq!(err.status(), 401);
    let page = k
        .tokens
        .list(&crate::ListRequest::new("alice").include_inactive(true))
        .await
        .expect("list");
    assert_eq!(page.meta.total, 2, "nothing was written");
}

/// Tokens created while their creator is revoked: once `revoke` returns, none of them is
/// alive, whichever side won each race.
pub async fn tokens_created_racing_their_creators_revocation_never_survive<S: TokenStore>(
    store: S,
) {
    let k = Arc::new(kit(store));
    let (root, record) = k.issue(NewToken::new("alice", "login")).await;
    let who = Arc::new(k.tokens.verify(&root).await.expect("verified"));
    if child(&k, NewToken::child_of(&who, "first"), "alice")
        .await
        .is_none()
    {
        return;
    }
    let created = Arc::new(AtomicUsize::new(0));
    let creators: Vec<_> = (0..8)
        .map(|i| {
            let (k, who, created) = (Arc::clone(&k), Arc::clone(&who), Arc::clone(&created));
            tokio::spawn(async move {
                let mut made = Vec::new();
                for j in 0..4 {
                    if let Ok(issued) = k
                        .tokens
                        .issue(NewToken::child_of(&who, format!("c{i}-{j}")))
                        .await
                    {
                        created.fetch_add(1, Ordering::SeqCst);
                        made.push(issued.plaintext.expose_secret().to_owned());
                    }
                    tokio::task::yield_now().await;
                }
                made
            })
        })
        .collect();
    // Revoke once some children exist, while others are being created.
    while created.load(Ordering::SeqCst) < 2 {
        tokio::task::yield_now().await;
    }
    k.tokens
        .revoke("alice", record.id, Some("leaked"))
        .await
        .expect("revoke");
    let mut made = Vec::new();
    for c in creators {
        made.extend(c.await.expect("a creator task"));
    }
    assert!(
        made.len() >= 2,
        "children were created before the revocation"
    );
    for token in made {
        let err = k
            .tokens
            .verify(&token)
            .await
            .expect_err("no created token outlives the revocation");
        assert!(matches!(err, AuthError::Revoked { .. }), "{err:?}");
    }
}

/// Issue `new` (a child); `None` if the store cannot create children, after checking that it
/// refused clearly and wrote nothing for `owner`.
async fn child<S: TokenStore>(k: &Kit<S>, new: NewToken, owner: &str) -> Option<Issued> {
    let before = owner_total(k, owner).await;
    match k.tokens.issue(new).await {
        Err(Error::Store(e)) if e.kind() == StoreErrorKind::Unsupported => {
            assert_eq!(
                owner_total(k, owner).await,
                before,
                "a store that cannot create children writes nothing"
            );
            None
        }
        other => Some(other.expect("a child of an active creator")),
    }
}

async fn owner_total<S: TokenStore>(k: &Kit<S>, owner: &str) -> u64 {
    let all = ListRequest::new(owner).include_inactive(true);
    k.tokens.list(&all).await.expect("list").meta.total
}
