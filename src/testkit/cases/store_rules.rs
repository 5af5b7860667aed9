//! The rules a store keeps on its own, called directly (no `ApiTokens` in between).

use std::sync::Arc;

use time::Duration;

use crate::store::Change;
use crate::testkit::fixtures::{epoch, record};
use crate::{Scopes, StoreErrorKind, TokenRecord, TokenStore};

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
    // Nor is it half-written: the refused record is in no listing, the first in its own.
    let now = epoch() + Duration::days(2);
    let listed = |owner| crate::store::ListFilter {
        include_inactive: true,
        ..crate::store::ListFilter::new(&first.prefix, owner, now)
    };
    let mallory = store.list(&listed("mallory")).await.expect("list");
    assert_eq!(mallory.total, 0, "a refused insert must not be listed");
    let alice = store.list(&listed("alice")).await.expect("list");
    assert_eq!(alice.total, 1);
    assert_eq!(alice.records[0].id, first.id);
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
    full.successor = Some(record("x", t).id);
    full.created_by = Some(record("y", t).id);
    full.suspended_at = Some(t + Duration::seconds(7));
    full.metadata =
        Some(crate::Metadata::new(serde_json::json!({"plan": "pro"})).expect("metadata"));
    full.allowed_ips =
        Some(crate::IpAllowlist::parse(["10.0.0.0/8", "2001:db8::/32"]).expect("ips"));
    full.usage = Some(Box::new(crate::UsageLimit {
        remaining: 41,
        refill: Some(crate::Refill::new(crate::RefillInterval::Monthly, 50).expect("refill")),
        refilled_at: Some(t - Duration::days(3)),
    }));
    full.rate_limit = Some(
        crate::RateLimit::new(100, 60)
            .expect("rate")
            .shared_with(record("z", t).id),
    );
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

/// `update` writes the copy only when the change approves, and reports unknown ids
/// without calling the change.
pub async fn update_writes_only_approved_changes<S: TokenStore>(store: S) {
    let r = record("alice", epoch());
    store.insert(&r).await.expect("insert");
    let mut refuse = |x: &mut TokenRecord| {
        x.name = "changed".into();
        false
    };
    let found = store.update(&r.id, &mut Change::new(&mut refuse)).await;
    assert!(found.expect("update"), "the record exists");
    let kept = store.get(&r.id).await.expect("get").expect("exists");
    assert_eq!(*kept, r, "a refused change writes nothing");
    let mut rename = |x: &mut TokenRecord| {
        x.name = "renamed".into();
        true
    };
    store
        .update(&r.id, &mut Change::new(&mut rename))
        .await
        .expect("update");
    let renamed = store.get(&r.id).await.expect("get").expect("exists");
    assert_eq!(&*renamed.name, "renamed", "an approved change is written");
    let mut called = false;
    let mut never = |_: &mut TokenRecord| {
        called = true;
        true
    };
    let unknown = record("x", epoch()).id;
    let found = store.update(&unknown, &mut Change::new(&mut never)).await;
    assert!(!found.expect("update"), "an unknown id is reported");
    assert!(!called, "the change is not called for an unknown id");
}

/// 8 tasks update one record 25 times each, each update reading a counter and writing it
/// back one higher: no update is lost, so each read-decide-write was atomic.
pub async fn updates_are_atomic_under_contention<S: TokenStore>(store: S) {
    let store = Arc::new(store);
    let mut r = record("alice", epoch());
    r.name = "0".into();
    store.insert(&r).await.expect("insert");
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            for _ in 0..25 {
                let mut increment = |x: &mut TokenRecord| {
                    let n: u32 = x.name.parse().expect("a counter");
                    x.name = (n + 1).to_string().into();
                    true
                };
                store
                    .update(&r.id, &mut Change::new(&mut increment))
                    .await
                    .expect("update");
                tokio::task::yield_now().await;
            }
        }));
    }
    for t in tasks {
        t.await.expect("updater task");
    }
    let counted = store.get(&r.id).await.expect("get").expect("exists");
    assert_eq!(&*counted.name, "200", "an update was lost: not atomic");
}

/// A last-use write racing an update of the same record: both land, whichever comes first
/// (a store that writes last use beside its other writes must not lose either).
pub async fn last_use_racing_an_update_keeps_both<S: TokenStore>(store: S) {
    let store = Arc::new(store);
    for round in 0..100 {
        let r = record("alice", epoch());
        store.insert(&r).await.expect("insert");
        let used = epoch() + Duration::seconds(round + 1);
        let writer = {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                store
                    .record_last_use(&r.id, used)
                    .await
                    .expect("record_last_use")
            })
        };
        let mut rename = |x: &mut TokenRecord| {
            x.name = "renamed".into();
            true
        };
        store
            .update(&r.id, &mut Change::new(&mut rename))
            .await
            .expect("update");
        assert!(writer.await.expect("last-use task"), "last use was newer");
        let after = store.get(&r.id).await.expect("get").expect("exists");
        assert_eq!(
            &*after.name, "renamed",
            "round {round}: the update was lost"
        );
        assert_eq!(
            after.last_used_at,
            Some(used),
            "round {round}: the last use was lost"
        );
    }
}

/// `rotate` inserts the successor only when the change approves, both or neither, and an
/// existing successor id changes nothing.
pub async fn rotate_writes_both_records_or_neither<S: TokenStore>(store: S) {
    let old = record("alice", epoch());
    store.insert(&old).await.expect("insert");
    let successor = record("alice", epoch());
    let mut refuse = |_: &mut TokenRecord| false;
    let found = store
        .rotate(&old.id, &mut Change::new(&mut refuse), &successor)
        .await
        .expect("rotate");
    assert!(found);
    assert!(
        store.get(&successor.id).await.expect("get").is_none(),
        "a refused rotation inserts no successor"
    );
    let existing = record("bob", epoch());
    store.insert(&existing).await.expect("insert");
    let mut mark = |x: &mut TokenRecord| {
        x.successor = Some(existing.id);
        true
    };
    let err = store
        .rotate(&old.id, &mut Change::new(&mut mark), &existing)
        .await
        .expect_err("an existing successor id");
    assert_eq!(err.kind(), StoreErrorKind::DuplicateId, "{err}");
    let kept = store.get(&old.id).await.expect("get").expect("exists");
    assert_eq!(*kept, old, "a failed rotation changes nothing");
    let mut mark = |x: &mut TokenRecord| {
        x.successor = Some(successor.id);
        true
    };
    store
        .rotate(&old.id, &mut Change::new(&mut mark), &successor)
        .await
        .expect("rotate");
    let marked = store.get(&old.id).await.expect("get").expect("exists");
    assert_eq!(marked.successor, Some(successor.id));
    let inserted = store
        .get(&successor.id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(*inserted, successor);
    let mut unreached = |_: &mut TokenRecord| true;
    let unknown = record("x", epoch());
    let found = store
        .rotate(
            &record("x", epoch()).id,
            &mut Change::new(&mut unreached),
            &unknown,
        )
        .await
        .expect("rotate");
    assert!(!found, "an unknown id is reported");
    assert!(store.get(&unknown.id).await.expect("get").is_none());
    // A successor with the rotated token's own id: an unknown one is not found and
    // nothing is inserted; a stored one is a duplicate and nothing changes.
    let mut approve = |_: &mut TokenRecord| true;
    let found = store
        .rotate(&unknown.id, &mut Change::new(&mut approve), &unknown)
        .await
        .expect("rotate onto its own unknown id");
    assert!(!found, "an unknown id is reported");
    assert!(store.get(&unknown.id).await.expect("get").is_none());
    let mut same = (*marked).clone();
    same.name = "the same id".into();
    let err = store
        .rotate(&old.id, &mut Change::new(&mut approve), &same)
        .await
        .expect_err("a successor with its predecessor's id");
    assert_eq!(err.kind(), StoreErrorKind::DuplicateId, "{err}");
    let kept = store.get(&old.id).await.expect("get").expect("exists");
    assert_eq!(kept, marked, "a failed rotation changes nothing");
}

/// `read_now` and `read_counted_now`, where a store answers them, lend exactly what `get`
/// answers (for a known and an unknown id, before and after a change; for a record with
/// and without the fields most tokens leave unset), and call their reader exactly once.
pub async fn read_now_agrees_with_get<S: TokenStore>(store: S) {
    let plain = record("alice", epoch());
    store.insert(&plain).await.expect("insert");
    let mut r = record("alice", epoch());
    r.description = Some("the nightly deploy".into());
    r.created_by = Some(plain.id);
    store.insert(&r).await.expect("insert");
    let check = || async {
        for id in [plain.id, r.id, record("x", epoch()).id] {
            let awaited = store.get(&id).await.expect("get");
            let mut calls = 0;
            let counted = store.read_counted_now(&id, |lent, _| {
                calls += 1;
                lent.map(|l| (l.id(), l.to_record()))
            });
            if let Some(counted) = counted {
                assert_eq!(calls, 1, "read_counted_now calls its reader once");
                let counted = counted.expect("read_counted_now");
                assert_eq!(
                    counted.as_ref().map(|(_, r)| r),
                    awaited.as_deref(),
                    "read_counted_now and get disagree"
                );
                assert!(counted.is_none_or(|(lent_id, _)| lent_id == id));
            } else {
                assert_eq!(calls, 0, "a store that cannot answer at once does not read");
            }
            let mut calls = 0;
            let lent = store.read_now(&id, |lent| {
                calls += 1;
                lent.cloned()
            });
            if let Some(lent) = lent {
                assert_eq!(calls, 1, "read_now calls its reader once");
                assert_eq!(
                    lent.expect("read_now"),
                    awaited.as_deref().cloned(),
                    "read_now and get disagree"
                );
            } else {
                assert_eq!(calls, 0, "a store that cannot answer at once does not read");
            }
        }
    };
    check().await;
    store
        .record_last_use(&r.id, epoch() + Duration::minutes(1))
        .await
        .expect("record_last_use");
    check().await;
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
