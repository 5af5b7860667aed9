//! `CachedStore`: the conformance suite over every store, and what the cache promises on
//! its own: hits read nothing, misses are coalesced, unknown ids are kept briefly, the
//! bounds hold, last uses are batched, and no change is ever missed, whatever a read in
//! flight does. PostgreSQL's invalidations (and their faults) are in `tests/cached_postgres.rs`.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use api_tokens::testkit::CountingStore;
use api_tokens::{
    ApiTokens, AuthError, CachedStore, ConfigError, InvalidationBus, ManualClock, MemoryStore,
    NewToken, TokenFormat, TokenStore,
};
use std::sync::atomic::Ordering;
use time::OffsetDateTime;

fn cached<S: TokenStore>(store: S) -> CachedStore<S> {
    CachedStore::builder(store)
        .single_instance()
        .build()
        .expect("a valid cache")
}

mod memory {
    api_tokens::conformance_tests!(async { super::cached(api_tokens::MemoryStore::new()) });
}

/// Two caches on one bus over one memory store: the suite runs through one of them while
/// the other is a second instance that must not disturb it.
mod bus {
    api_tokens::conformance_tests!(async {
        let shared = std::sync::Arc::new(api_tokens::MemoryStore::new());
        let bus = api_tokens::InvalidationBus::new();
        let other = api_tokens::CachedStore::builder(std::sync::Arc::clone(&shared))
            .bus(&bus)
            .build()
            .unwrap();
        std::mem::forget(other);
        api_tokens::CachedStore::builder(shared)
            .bus(&bus)
            .build()
            .unwrap()
    });
}

#[cfg(feature = "sqlite")]
mod sqlite {
    api_tokens::conformance_tests!(async {
        let dir = tempfile::tempdir().unwrap().keep();
        let url = format!("sqlite://{}", dir.join("t.db").display());
        let store = api_tokens::SqliteStore::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        super::cached(store)
    });
}

/// The cache does every optional operation its store does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_optional_operation_is_supported() {
    api_tokens::testkit::every_optional_operation_is_supported(cached(
        api_tokens::MemoryStore::new(),
    ))
    .await;
}

/// A counting store under a cache, and tokens over the cache.
fn counted() -> (
    ApiTokens<CachedStore<CountingStore<MemoryStore>>>,
    Arc<api_tokens::testkit::Calls>,
) {
    let counting = CountingStore::new(MemoryStore::new());
    let calls = counting.calls();
    let tokens = ApiTokens::new(cached(counting), "dz").unwrap();
    (tokens, calls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hits_read_nothing_from_the_store() {
    let (tokens, calls) = counted();
    let issued = tokens.issue(NewToken::new("u1", "ci")).await.unwrap();
    let t = issued.plaintext.expose_secret();
    for _ in 0..1_000 {
        tokens.verify(t).await.expect("verifies");
    }
    assert_eq!(calls.get.load(Ordering::SeqCst), 1, "one read, then hits");
    let stats = tokens.store().stats();
    assert_eq!((stats.misses, stats.hits, stats.store_reads), (1, 999, 1));
    assert_eq!(stats.entries, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_for_one_id_share_one_read() {
    let counting = CountingStore::new(MemoryStore::new()).slow_reads(StdDuration::from_millis(100));
    let calls = counting.calls();
    let tokens = ApiTokens::new(cached(counting), "dz").unwrap();
    let issued = tokens.issue(NewToken::new("u1", "ci")).await.unwrap();
    let t = issued.plaintext.expose_secret().to_owned();
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (tokens, t) = (tokens.clone(), t.clone());
            tokio::spawn(async move { tokens.verify(&t).await.map(|p| p.token_id()) })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap(), issued.record.id);
    }
    assert_eq!(
        calls.get.load(Ordering::SeqCst),
        1,
        "one store read for 16 misses"
    );
    let stats = tokens.store().stats();
    assert_eq!(stats.store_reads, 1);
    assert_eq!((stats.misses, stats.coalesced), (16, 15), "{stats:?}");
}

/// A valid-looking token whose id no store holds.
fn unknown_token(format: &TokenFormat) -> String {
    let other = ApiTokens::new(MemoryStore::new(), format.prefix()).unwrap();
    let issued = futures_ready(other.issue(NewToken::new("x", "x")));
    issued.unwrap().plaintext.expose_secret().to_owned()
}

fn futures_ready<F: std::future::Future>(f: F) -> F::Output {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("the memory store never waits"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_one_unknown_id_costs_one_read_and_new_tokens_verify_at_once() {
    let (tokens, calls) = counted();
    let bogus = unknown_token(tokens.format());
    for _ in 0..1_000 {
        let err = tokens.verify(&bogus).await.expect_err("unknown");
        assert!(matches!(err, AuthError::Invalid), "{err:?}");
    }
    assert_eq!(
        calls.get.load(Ordering::SeqCst),
        1,
        "the unknown id is kept briefly"
    );
    assert_eq!(tokens.store().stats().negative_hits, 999);

    // An id cached as unknown verifies as soon as a token with it is stored.
    let issued = tokens.issue(NewToken::new("u1", "new")).await.unwrap();
    let id = issued.record.id;
    let store = tokens.store();
    assert!(store.get(&id).await.unwrap().is_some());
    let fresh = CachedStore::builder(MemoryStore::new())
        .single_instance()
        .build()
        .unwrap();
    assert!(
        fresh.get(&id).await.unwrap().is_none(),
        "unknown, and now remembered so"
    );
    fresh.insert(&issued.record).await.unwrap();
    assert_eq!(
        fresh.get(&id).await.unwrap().map(|r| r.id),
        Some(id),
        "an insert drops the id from the unknown ones"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_random_unknown_ids_is_bounded_and_keeps_real_tokens_cached() {
    let counting = CountingStore::new(MemoryStore::new());
    let calls = counting.calls();
    let store = CachedStore::builder(counting)
        .single_instance()
        .max_unknown(500)
        .build()
        .unwrap();
    let tokens = ApiTokens::new(store, "dz").unwrap();
    let real = tokens.issue(NewToken::new("u1", "real")).await.unwrap();
    let real = real.plaintext.expose_secret();
    tokens.verify(real).await.unwrap();
    let reads_before = calls.get.load(Ordering::SeqCst);
    let other = ApiTokens::new(MemoryStore::new(), "dz").unwrap();
    for i in 0..5_000 {
        let bogus = other
            .issue(NewToken::new("x", format!("{i}")))
            .await
            .unwrap();
        let _ = tokens.verify(bogus.plaintext.expose_secret()).await;
    }
    assert_eq!(
        calls.get.load(Ordering::SeqCst) - reads_before,
        5_000,
        "one read per distinct unknown id, no more"
    );
    tokens.verify(real).await.unwrap();
    assert_eq!(
        calls.get.load(Ordering::SeqCst) - reads_before,
        5_000,
        "the real token stayed cached through the flood"
    );
    assert_eq!(tokens.store().stats().entries, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_and_bytes_are_bounded() {
    let store = CachedStore::builder(MemoryStore::new())
        .single_instance()
        .max_entries(200)
        .max_bytes(1 << 30)
        .build()
        .unwrap();
    let tokens = ApiTokens::new(store, "dz").unwrap();
    for i in 0..2_000 {
        let issued = tokens
            .issue(NewToken::new("u1", format!("t{i}")))
            .await
            .unwrap();
        tokens
            .verify(issued.plaintext.expose_secret())
            .await
            .unwrap();
    }
    let stats = tokens.store().stats();
    assert!(stats.entries <= 220, "{stats:?}");

    let store = CachedStore::builder(MemoryStore::new())
        .single_instance()
        .max_entries(1_000_000)
        .max_bytes(64 * 1024)
        .build()
        .unwrap();
    let tokens = ApiTokens::new(store, "dz").unwrap();
    for i in 0..2_000 {
        let issued = tokens
            .issue(NewToken::new("u1", format!("t{i}")))
            .await
            .unwrap();
        tokens
            .verify(issued.plaintext.expose_secret())
            .await
            .unwrap();
    }
    let stats = tokens.store().stats();
    assert!(stats.bytes <= 70 * 1024, "{stats:?}");
    assert!(stats.entries < 2_000, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_is_read_again_after_its_maximum_age() {
    let clock = ManualClock::new(OffsetDateTime::now_utc());
    let counting = CountingStore::new(MemoryStore::new());
    let calls = counting.calls();
    let store = CachedStore::builder(counting)
        .single_instance()
        .max_age(StdDuration::from_secs(60))
        .clock(clock.clone())
        .build()
        .unwrap();
    let tokens = ApiTokens::new(store, "dz").unwrap();
    let issued = tokens.issue(NewToken::new("u1", "ci")).await.unwrap();
    let t = issued.plaintext.expose_secret();
    tokens.verify(t).await.unwrap();
    tokens.verify(t).await.unwrap();
    assert_eq!(calls.get.load(Ordering::SeqCst), 1);
    clock.advance(time::Duration::seconds(61));
    tokens.verify(t).await.unwrap();
    assert_eq!(
        calls.get.load(Ordering::SeqCst),
        2,
        "read again past the maximum age"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_uses_are_written_in_one_batch() {
    let counting = CountingStore::new(MemoryStore::new());
    let calls = counting.calls();
    let store = CachedStore::builder(counting)
        .single_instance()
        .last_use_every(StdDuration::from_secs(3600))
        .build()
        .unwrap();
    let tokens = ApiTokens::new(store, "dz").unwrap();
    let mut issued = Vec::new();
    for i in 0..500 {
        issued.push(
            tokens
                .issue(NewToken::new("u1", format!("t{i}")))
                .await
                .unwrap(),
        );
    }
    for _ in 0..3 {
        for t in &issued {
            tokens.verify(t.plaintext.expose_secret()).await.unwrap();
        }
    }
    assert_eq!(
        calls.record_last_use.load(Ordering::SeqCst),
        0,
        "no write per verification"
    );
    assert_eq!(calls.record_last_uses.load(Ordering::SeqCst), 0);
    // Reads through the cache see the queued last uses already.
    let seen = tokens.get("u1", issued[0].record.id).await.unwrap();
    assert!(seen.last_used_at.is_some());

    let written = tokens.store().flush_last_uses().await.unwrap();
    assert_eq!(written, 500);
    assert_eq!(
        calls.record_last_uses.load(Ordering::SeqCst),
        1,
        "one batch for 500 tokens"
    );
    let stored = tokens
        .store()
        .inner()
        .inner()
        .get(&issued[7].record.id)
        .await
        .unwrap();
    assert!(
        stored.unwrap().last_used_at.is_some(),
        "written to the store"
    );
    assert_eq!(tokens.store().stats().last_uses_flushed, 500);
    assert_eq!(
        tokens.store().flush_last_uses().await.unwrap(),
        0,
        "nothing queued"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_background_task_flushes_last_uses() {
    let counting = CountingStore::new(MemoryStore::new());
    let calls = counting.calls();
    let store = CachedStore::builder(counting)
        .single_instance()
        .last_use_every(StdDuration::from_millis(50))
        .build()
        .unwrap();
    let tokens = ApiTokens::new(store, "dz").unwrap();
    let issued = tokens.issue(NewToken::new("u1", "ci")).await.unwrap();
    tokens
        .verify(issued.plaintext.expose_secret())
        .await
        .unwrap();
    tokens
        .verify(issued.plaintext.expose_secret())
        .await
        .unwrap();
    tokio::time::sleep(StdDuration::from_millis(300)).await;
    assert_eq!(calls.record_last_uses.load(Ordering::SeqCst), 1);
    let stored = tokens
        .store()
        .inner()
        .inner()
        .get(&issued.record.id)
        .await
        .unwrap();
    assert!(stored.unwrap().last_used_at.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_through_one_cache_reaches_the_others_on_the_bus() {
    let shared = Arc::new(MemoryStore::new());
    let bus = InvalidationBus::new();
    let a = ApiTokens::new(
        CachedStore::builder(Arc::clone(&shared))
            .bus(&bus)
            .build()
            .unwrap(),
        "dz",
    )
    .unwrap();
    let b = ApiTokens::new(
        CachedStore::builder(Arc::clone(&shared))
            .bus(&bus)
            .build()
            .unwrap(),
        "dz",
    )
    .unwrap();
    let issued = a.issue(NewToken::new("u1", "ci")).await.unwrap();
    let t = issued.plaintext.expose_secret();
    b.verify(t).await.unwrap();
    b.verify(t).await.unwrap();
    assert_eq!(b.store().stats().hits, 1, "cached by b");
    a.revoke("u1", issued.record.id, None).await.unwrap();
    assert!(matches!(b.verify(t).await, Err(AuthError::Revoked { .. })));
    assert!(b.store().stats().invalidations_received >= 1);

    // Revoke-all reaches b too.
    let second = a.issue(NewToken::new("u1", "second")).await.unwrap();
    b.verify(second.plaintext.expose_secret()).await.unwrap();
    a.revoke_all("u1", None, None).await.unwrap();
    assert!(b.verify(second.plaintext.expose_secret()).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disconnected_bus_sends_every_read_to_the_store_until_it_is_back() {
    let shared = Arc::new(CountingStore::new(MemoryStore::new()));
    let calls = shared.calls();
    let bus = InvalidationBus::new();
    let b = ApiTokens::new(
        CachedStore::builder(Arc::clone(&shared))
            .bus(&bus)
            .build()
            .unwrap(),
        "dz",
    )
    .unwrap();
    // Another writer that the bus cannot tell b about while it is down.
    let writer = ApiTokens::new(Arc::clone(&shared), "dz").unwrap();
    let issued = writer.issue(NewToken::new("u1", "ci")).await.unwrap();
    let t = issued.plaintext.expose_secret();
    b.verify(t).await.unwrap();
    assert!(b.store().is_trusted());

    bus.disconnect();
    assert!(!b.store().is_trusted());
    assert_eq!(b.store().stats().entries, 0, "emptied on doubt");
    let before = calls.get.load(Ordering::SeqCst);
    b.verify(t).await.unwrap();
    b.verify(t).await.unwrap();
    assert_eq!(
        calls.get.load(Ordering::SeqCst) - before,
        2,
        "every read goes to the store"
    );
    // A revocation the cache cannot hear of is seen at once.
    writer.revoke("u1", issued.record.id, None).await.unwrap();
    assert!(matches!(b.verify(t).await, Err(AuthError::Revoked { .. })));
    assert!(b.store().stats().bypassed >= 3);

    bus.reconnect();
    assert!(b.store().is_trusted());
    assert!(
        b.store().stats().flushed_on_doubt >= 2,
        "emptied again on reconnecting"
    );
    assert!(matches!(b.verify(t).await, Err(AuthError::Revoked { .. })));
}

/// A miss reads the store slowly; a revocation lands while it reads. The stale answer must
/// not stay cached: the next verification refuses the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_during_a_slow_miss_leaves_nothing_stale() {
    let shared = Arc::new(MemoryStore::new());
    let bus = InvalidationBus::new();
    let slow = CountingStore::new(Arc::clone(&shared)).slow_reads(StdDuration::from_millis(200));
    let b = ApiTokens::new(CachedStore::builder(slow).bus(&bus).build().unwrap(), "dz").unwrap();
    let a = ApiTokens::new(
        CachedStore::builder(Arc::clone(&shared))
            .bus(&bus)
            .build()
            .unwrap(),
        "dz",
    )
    .unwrap();
    for _ in 0..5 {
        let issued = a.issue(NewToken::new("u1", "ci")).await.unwrap();
        let t = issued.plaintext.expose_secret().to_owned();
        let reading = {
            let (b, t) = (b.clone(), t.clone());
            tokio::spawn(async move { b.verify(&t).await.map(|_| ()) })
        };
        tokio::time::sleep(StdDuration::from_millis(50)).await;
        a.revoke("u1", issued.record.id, None).await.unwrap();
        // The read in flight may answer either way (it began before the revocation)...
        let _ = reading.await.unwrap();
        // ...but nothing it read stays cached.
        let after = b.verify(&t).await;
        assert!(matches!(after, Err(AuthError::Revoked { .. })), "{after:?}");
    }
}

#[tokio::test]
async fn building_needs_a_source_and_a_runtime() {
    let err = CachedStore::builder(MemoryStore::new())
        .build()
        .unwrap_err();
    assert!(matches!(err, ConfigError::Cache(_)), "{err:?}");
    assert!(err.to_string().contains("single_instance"), "{err}");
    let err = CachedStore::builder(MemoryStore::new())
        .single_instance()
        .max_entries(0)
        .build()
        .unwrap_err();
    assert!(matches!(err, ConfigError::Cache(_)));
}

#[test]
fn building_outside_a_runtime_is_a_clear_error() {
    let err = CachedStore::builder(MemoryStore::new())
        .single_instance()
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("Tokio runtime"), "{err}");
}

/// The same race through an invalidation of many tokens (revoke-all), with a verification
/// that starts after the revoke-all returned while the stale read is still in flight: it
/// must not be handed that read's answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoke_all_during_a_slow_miss_is_never_answered_by_it() {
    let shared = Arc::new(MemoryStore::new());
    let bus = InvalidationBus::new();
    let slow = CountingStore::new(Arc::clone(&shared)).slow_reads(StdDuration::from_millis(200));
    let b = ApiTokens::new(CachedStore::builder(slow).bus(&bus).build().unwrap(), "dz").unwrap();
    let a = ApiTokens::new(
        CachedStore::builder(Arc::clone(&shared))
            .bus(&bus)
            .build()
            .unwrap(),
        "dz",
    )
    .unwrap();
    for _ in 0..3 {
        let issued = a.issue(NewToken::new("u1", "ci")).await.unwrap();
        let t = issued.plaintext.expose_secret().to_owned();
        let reading = {
            let (b, t) = (b.clone(), t.clone());
            tokio::spawn(async move { b.verify(&t).await.map(|_| ()) })
        };
        tokio::time::sleep(StdDuration::from_millis(50)).await;
        a.revoke_all("u1", None, None).await.unwrap();
        // Started after the revoke-all returned, while the first read is still in flight.
        let after = b.verify(&t).await;
        assert!(matches!(after, Err(AuthError::Revoked { .. })), "{after:?}");
        let _ = reading.await.unwrap();
        let later = b.verify(&t).await;
        assert!(matches!(later, Err(AuthError::Revoked { .. })), "{later:?}");
    }
}
