//! Listing: an owner's own tokens, newest first, paged, active only unless asked.

use time::Duration;

use crate::testkit::fixtures::{Kit, kit};
use crate::{Expiry, ListRequest, NewToken, TokenId, TokenStore};

/// 25 tokens for alice (every fifth in tenant `t2`, the rest in `t1`), one second apart,
/// and 3 for bob; alice's ids newest first.
async fn alice_and_bob<S: TokenStore>(k: &Kit<S>) -> Vec<TokenId> {
    let mut ids = Vec::new();
    for i in 0..25 {
        let tenant = if i % 5 == 0 { "t2" } else { "t1" };
        let new = NewToken::new("alice", format!("tok{i:02}")).tenant(tenant);
        ids.push(k.issue(new).await.1.id);
        k.clock.advance(Duration::seconds(1));
    }
    for i in 0..3 {
        k.issue(NewToken::new("bob", format!("bob{i}"))).await;
    }
    ids.reverse();
    ids
}

fn ids(page: &crate::Page<crate::TokenInfo>) -> Vec<TokenId> {
    page.data.iter().map(|t| t.id).collect()
}

/// Pages come newest first, `per_page` at a time, with the total over all pages.
pub async fn listing_is_paged_newest_first<S: TokenStore>(store: S) {
    let k = kit(store);
    let all = alice_and_bob(&k).await;
    let list = |page, per_page| {
        let tokens = k.tokens.clone();
        async move {
            let request = ListRequest::new("alice").page(page).per_page(per_page);
            tokens.list(&request).await.expect("list")
        }
    };
    let page1 = list(1, 10).await;
    assert_eq!(page1.meta.total, 25);
    assert_eq!((page1.meta.page, page1.meta.per_page), (1, 10));
    assert_eq!(ids(&page1), all[..10], "the newest ten, newest first");
    assert_eq!(ids(&list(2, 10).await), all[10..20]);
    assert_eq!(ids(&list(3, 10).await), all[20..], "a short last page");
    let past_the_end = list(4, 10).await;
    assert!(past_the_end.data.is_empty() && past_the_end.meta.total == 25);
    assert!(
        list(u32::MAX, 100).await.data.is_empty(),
        "a huge page number is just empty"
    );
}

/// An owner sees only their own tokens, and a tenant filter only that tenant's.
pub async fn listing_is_private_to_the_owner_and_tenant<S: TokenStore>(store: S) {
    let k = kit(store);
    alice_and_bob(&k).await;
    let bob = k.tokens.list(&ListRequest::new("bob")).await.expect("list");
    assert_eq!(bob.meta.total, 3);
    assert!(
        bob.data.iter().all(|t| &*t.owner == "bob"),
        "only the owner's tokens"
    );
    let nobody = k.tokens.list(&ListRequest::new("nobody")).await;
    assert_eq!(nobody.expect("list").meta.total, 0);
    let t2 = k
        .tokens
        .list(&ListRequest::new("alice").tenant("t2"))
        .await
        .expect("list");
    assert_eq!(t2.meta.total, 5);
    assert!(t2.data.iter().all(|t| t.tenant_id.as_deref() == Some("t2")));
}

/// Revoked and expired tokens are hidden unless `include_inactive`, which shows them with
/// their revocation.
pub async fn listing_hides_inactive_tokens_unless_asked<S: TokenStore>(store: S) {
    let k = kit(store);
    let all = alice_and_bob(&k).await;
    k.tokens
        .revoke("alice", all[0], Some("r"))
        .await
        .expect("revoke");
    let (_, short) = k
        .issue(NewToken::new("alice", "short").expires(Expiry::After(Duration::seconds(5))))
        .await;
    k.clock.advance(Duration::seconds(5));
    let active = k
        .tokens
        .list(&ListRequest::new("alice").per_page(100))
        .await
        .expect("list");
    assert_eq!(
        active.meta.total, 24,
        "revoked and expired tokens are hidden"
    );
    assert!(
        active
            .data
            .iter()
            .all(|t| t.id != all[0] && t.id != short.id)
    );
    let everything = ListRequest::new("alice")
        .per_page(100)
        .include_inactive(true);
    let everything = k.tokens.list(&everything).await.expect("list");
    assert_eq!(everything.meta.total, 26);
    assert_eq!(everything.data[0].id, short.id, "newest first");
    let revoked = everything.data.iter().find(|t| t.id == all[0]);
    assert_eq!(
        revoked.and_then(|t| t.revocation_reason.as_deref()),
        Some("r")
    );
}

/// A full listing keeps revoked and expired tokens in their place among the active ones:
/// every page, of the owner and of a tenant, is in creation order, newest first.
pub async fn inactive_tokens_keep_their_place_in_a_full_listing<S: TokenStore>(store: S) {
    let k = kit(store);
    let start = k.tokens.now();
    let mut all = Vec::new();
    for i in 0..30 {
        let tenant = if i % 4 == 0 { "t2" } else { "t1" };
        let mut new = NewToken::new("alice", format!("tok{i:02}")).tenant(tenant);
        if i % 5 == 1 {
            new = new.expires(Expiry::After(Duration::seconds(100)));
        }
        let (_, rec) = k.issue(new).await;
        if i % 3 == 0 || i == 29 {
            k.tokens
                .revoke("alice", rec.id, None)
                .await
                .expect("revoke");
        }
        all.push((rec.id, tenant, i % 3 != 0 && i != 29 && i % 5 != 1));
        k.clock.advance(Duration::seconds(1));
    }
    k.clock.set(start + Duration::seconds(200));
    all.reverse();
    for tenant in [None, Some("t1"), Some("t2")] {
        for include_inactive in [true, false] {
            let want: Vec<TokenId> = all
                .iter()
                .filter(|(_, t, active)| {
                    tenant.is_none_or(|x| x == *t) && (include_inactive || *active)
                })
                .map(|(id, _, _)| *id)
                .collect();
            let mut got = Vec::new();
            for page in 1..=5 {
                let mut request = ListRequest::new("alice")
                    .page(page)
                    .per_page(7)
                    .include_inactive(include_inactive);
                if let Some(t) = tenant {
                    request = request.tenant(t);
                }
                let listed = k.tokens.list(&request).await.expect("list");
                assert_eq!(listed.meta.total, want.len() as u64, "{tenant:?}");
                got.extend(ids(&listed));
            }
            assert_eq!(
                got, want,
                "tenant {tenant:?}, inactive too: {include_inactive}"
            );
        }
    }
}

/// What is active follows the clock either way, for every owner and tenant of the issuer
/// whichever lists first: tokens leave the active listing as they expire, come back if the
/// clock goes back before their expiry, and a revoked token never comes back.
pub async fn active_listing_follows_the_clock_either_way<S: TokenStore>(store: S) {
    let k = kit(store);
    let start = k.tokens.now();
    let expiring = |owner: &str, name: &str, seconds: i64| {
        NewToken::new(owner, name).expires(Expiry::After(Duration::seconds(seconds)))
    };
    k.issue(expiring("alice", "ten", 10).tenant("t1")).await;
    k.issue(expiring("alice", "twenty", 20)).await;
    let (_, later) = k.issue(expiring("alice", "later", 1_000)).await;
    k.issue(expiring("bob", "ten", 10)).await;
    let active = |owner: &'static str, tenant: Option<&'static str>| {
        let tokens = &k.tokens;
        async move {
            let mut request = ListRequest::new(owner);
            if let Some(t) = tenant {
                request = request.tenant(t);
            }
            tokens.list(&request).await.expect("list").meta.total
        }
    };
    k.clock.set(start + Duration::seconds(15));
    assert_eq!(active("bob", None).await, 0, "bob's token expired");
    assert_eq!(active("alice", None).await, 2);
    assert_eq!(active("alice", Some("t1")).await, 0);
    k.clock.set(start + Duration::seconds(5));
    assert_eq!(
        active("alice", Some("t1")).await,
        1,
        "back before its expiry"
    );
    assert_eq!(active("alice", None).await, 3);
    assert_eq!(active("bob", None).await, 1);
    k.clock.set(start + Duration::seconds(25));
    assert_eq!(
        active("alice", None).await,
        1,
        "only the one that expires later"
    );
    k.tokens
        .revoke("alice", later.id, None)
        .await
        .expect("revoke");
    k.clock.set(start + Duration::seconds(5));
    assert_eq!(active("alice", None).await, 2, "a revoked token stays out");
    assert_eq!(active("bob", None).await, 1);
}

/// A page of 0, or a `per_page` outside 1–100, is a 422 naming the field.
pub async fn listing_rejects_bad_paging<S: TokenStore>(store: S) {
    let k = kit(store);
    for (page, per_page, field) in [(0, 10, "page"), (1, 0, "per_page"), (1, 101, "per_page")] {
        let err = k
            .tokens
            .list(&ListRequest::new("alice").page(page).per_page(per_page))
            .await
            .expect_err("bad paging");
        assert_eq!(err.status(), 422, "page {page}, per_page {per_page}");
        assert!(err.validation().is_some_and(|v| v.has(field)), "{err}");
    }
    assert_eq!(
        k.calls.list.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "bad paging never reaches the store"
    );
}

/// `get` returns the owner's token as users see it; another owner's token is not found.
pub async fn get_is_private_to_the_owner<S: TokenStore>(store: S) {
    let k = kit(store);
    let (_, rec) = k
        .issue(NewToken::new("alice", "ci").description("runs the tests"))
        .await;
    let info = k.tokens.get("alice", rec.id).await.expect("get");
    assert_eq!(info, rec.info());
    for (owner, id) in [
        ("mallory", rec.id),
        (
            "alice",
            crate::testkit::fixtures::record("a", rec.created_at).id,
        ),
    ] {
        let err = k.tokens.get(owner, id).await.expect_err("not found");
        assert!(matches!(err, crate::Error::NotFound), "{err:?}");
    }
}
