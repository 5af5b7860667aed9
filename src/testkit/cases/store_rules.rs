//! The rules a store keeps on its own, called directly (no `ApiTokens` in between).

use time::Duration;

use crate::testkit::fixtures::{epoch, record};
use crate::{Scopes, StoreErrorKind, TokenStore};

/// Inserting an existing id is an error and leaves the first record untouched.
pub async fn insert_never_overwrites<S: TokenStore>(store: S) {
    let first = record("alice", epoch());
    store.insert(&first).await.expect("first insert");
    let mut second = record("mallory", epoch() + Duration::days(1));
    second.id = first.id;
    let err = store
        .insert(&second)
        .await
        .expect_err("a duplicate id must fail");
    assert_eq!(err.kind(), StoreErrorKind::DuplicateId, "{err}");
    let kept = store.get(&first.id).await.expect("get").expect("exists");
    assert_eq!(*kept, first, "a duplicate insert must not overwrite");
}

/// Every field reads back exactly as written, at microsecond precision.
pub async fn store_round_trips_every_field<S: TokenStore>(store: S) {
    let t = epoch() + Duration::microseconds(123_456);
    let mut full = record("alice ✓", t);
    full.tenant = Some("tenant/ü".into());
    full.name = "名前 with spaces".into();
    full.description = Some("line one\nline two".into());
    full.scopes = Scopes::parse(["a:b", "user:api-token:write"]).expect("scopes");
    full.expires_at = Some(t + Duration::days(30));
    full.last_used_at = Some(t + Duration::seconds(5));
    full.revoked_at = Some(t + Duration::seconds(9));
    full.revocation_reason = Some("leaked in a log".into());
    store.insert(&full).await.expect("insert");
    let back = store.get(&full.id).await.expect("get").expect("exists");
    assert_eq!(*back, full);
    let bare = record("bob", t);
    store.insert(&bare).await.expect("insert");
    assert_eq!(
        *store.get(&bare.id).await.expect("get").expect("exists"),
        bare
    );
    assert!(
        store.get(&record("x", t).id).await.expect("get").is_none(),
        "unknown ids are None"
    );
}

/// `record_last_use` never moves time backwards.
pub async fn last_use_only_moves_forward<S: TokenStore>(store: S) {
    let r = record("alice", epoch());
    store.insert(&r).await.expect("insert");
    let t1 = epoch() + Duration::minutes(5);
    assert!(store.record_last_use(&r.id, t1).await.expect("write"));
    assert!(!store.record_last_use(&r.id, epoch()).await.expect("older"));
    assert!(!store.record_last_use(&r.id, t1).await.expect("same"));
    assert_eq!(
        store
            .get(&r.id)
            .await
            .expect("get")
            .expect("exists")
            .last_used_at,
        Some(t1)
    );
    assert!(
        !store
            .record_last_use(&record("x", epoch()).id, t1)
            .await
            .expect("unknown id")
    );
}

/// `shorten_expiry` only ever brings expiry earlier, and leaves revoked tokens alone.
pub async fn shorten_expiry_only_moves_earlier<S: TokenStore>(store: S) {
    let mut r = record("alice", epoch());
    r.expires_at = Some(epoch() + Duration::days(10));
    store.insert(&r).await.expect("insert");
    assert!(
        !store
            .shorten_expiry(&r.id, epoch() + Duration::days(11))
            .await
            .expect("later")
    );
    assert!(
        store
            .shorten_expiry(&r.id, epoch() + Duration::days(2))
            .await
            .expect("earlier")
    );
    assert_eq!(
        store
            .get(&r.id)
            .await
            .expect("get")
            .expect("exists")
            .expires_at,
        Some(epoch() + Duration::days(2))
    );
    let never = record("alice", epoch());
    store.insert(&never).await.expect("insert");
    assert!(
        store
            .shorten_expiry(&never.id, epoch() + Duration::days(1))
            .await
            .expect("from never")
    );
    assert!(
        !store
            .shorten_expiry(&record("x", epoch()).id, epoch())
            .await
            .expect("unknown")
    );
}

/// `get_now`, where a store answers it, agrees with `get`, for a known and an unknown id.
pub async fn get_now_agrees_with_get<S: TokenStore>(store: S) {
    let r = record("alice", epoch());
    store.insert(&r).await.expect("insert");
    for id in [r.id, record("x", epoch()).id] {
        let awaited = store.get(&id).await.expect("get");
        if let Some(now) = store.get_now(&id) {
            assert_eq!(now.expect("get_now"), awaited, "get_now and get disagree");
        }
    }
}
