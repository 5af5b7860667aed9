//! Rate limits counted in the process (`MemoryRateLimiter`, on `governor`): the token's
//! limit and its owner's, windows passing on a manual clock, what a created token inherits,
//! failing closed without a limiter, and the 429 with `Retry-After` and `RateLimit-*`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use api_tokens::{
    ApiTokens, AuthError, Error, ManualClock, MemoryRateLimiter, MemoryStore, NewToken, RateKey,
    RateLimit, RateLimiter, TokenStore,
};
use time::{Duration, OffsetDateTime};

fn clock() -> ManualClock {
    ManualClock::new(OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap())
}

fn service(clock: &ManualClock) -> ApiTokens<MemoryStore> {
    ApiTokens::builder(MemoryStore::new(), "dz")
        .clock(clock.clone())
        .rate_limiter(MemoryRateLimiter::with_clock(clock.clone()))
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_token_gets_its_burst_then_one_per_emission_interval() {
    let clock = clock();
    let tokens = service(&clock);
    let issued = tokens
        .issue(NewToken::new("u1", "bot").rate_limit(RateLimit::new(3, 60).unwrap()))
        .await
        .unwrap();
    let t = issued.plaintext.expose_secret();
    for _ in 0..3 {
        tokens.verify(t).await.expect("within the burst");
    }
    let err = tokens.verify(t).await.expect_err("over");
    let AuthError::RateLimited {
        limit,
        window_seconds,
        retry_after,
        reset_after,
    } = err
    else {
        panic!("{err:?}");
    };
    assert_eq!((limit, window_seconds), (3, 60));
    assert!(
        retry_after > std::time::Duration::from_secs(19)
            && retry_after <= std::time::Duration::from_secs(20),
        "{retry_after:?}"
    );
    assert!(reset_after >= retry_after, "{reset_after:?}");
    clock.advance(Duration::seconds(20));
    tokens.verify(t).await.expect("one more after 60/3 s");
    assert!(matches!(
        tokens.verify(t).await,
        Err(AuthError::RateLimited { .. })
    ));
    assert_eq!(
        tokens.get("u1", issued.record.id).await.unwrap().rate_limit,
        Some(RateLimit::new(3, 60).unwrap())
    );
}

#[tokio::test]
async fn the_owner_limit_is_shared_by_all_its_tokens() {
    let clock = clock();
    let tokens = ApiTokens::builder(MemoryStore::new(), "dz")
        .clock(clock.clone())
        .rate_limiter(MemoryRateLimiter::with_clock(clock.clone()))
        .owner_rate_limit(RateLimit::new(4, 60).unwrap())
        .build()
        .unwrap();
    let mut plaintexts = Vec::new();
    for name in ["a", "b"] {
        let issued = tokens.issue(NewToken::new("u1", name)).await.unwrap();
        plaintexts.push(issued.plaintext.expose_secret().to_owned());
    }
    let other = tokens.issue(NewToken::new("u2", "c")).await.unwrap();
    for i in 0..4 {
        tokens
            .verify(&plaintexts[i % 2])
            .await
            .expect("the owner's four");
    }
    for t in &plaintexts {
        assert!(matches!(
            tokens.verify(t).await,
            Err(AuthError::RateLimited { .. })
        ));
    }
    tokens
        .verify(other.plaintext.expose_secret())
        .await
        .expect("another owner has its own");
}

#[tokio::test]
async fn racing_checks_never_share_the_last_place() {
    let limiter = Arc::new(MemoryRateLimiter::new());
    let limit = RateLimit::new(50, 3600).unwrap();
    let id = api_tokens::TokenId::from_bytes([7; 16]);
    let allowed = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (limiter, allowed) = (Arc::clone(&limiter), Arc::clone(&allowed));
            std::thread::spawn(move || {
                for _ in 0..100 {
                    let decided = limiter
                        .check_now(&RateKey::Token(id), limit)
                        .unwrap()
                        .unwrap();
                    if decided.allowed {
                        allowed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(allowed.load(Ordering::Relaxed), 50);
}

#[tokio::test]
async fn a_limited_token_creates_nothing_and_its_successor_shares_its_count() {
    let clock = clock();
    let tokens = service(&clock);
    let limited = tokens
        .issue(NewToken::new("u1", "bot").rate_limit(RateLimit::new(3, 3600).unwrap()))
        .await
        .unwrap();
    let t = limited.plaintext.expose_secret();
    let who = tokens.verify(t).await.unwrap();
    let child = tokens.issue(NewToken::child_of(&who, "child")).await;
    assert!(
        matches!(&child, Err(Error::Invalid(v)) if v.has("creator")),
        "{child:?}"
    );
    tokens.verify(t).await.unwrap();
    // Two of three spent; the successor and the old token (in its grace) share one count.
    let next = tokens
        .rotate("u1", limited.record.id, Duration::hours(1))
        .await
        .unwrap();
    let n = next.plaintext.expose_secret();
    tokens.verify(n).await.expect("the third");
    assert!(matches!(
        tokens.verify(n).await,
        Err(AuthError::RateLimited { .. })
    ));
    assert!(matches!(
        tokens.verify(t).await,
        Err(AuthError::RateLimited { .. })
    ));
    tokens
        .revoke_presented(n, None)
        .await
        .expect("ending a token is never rate limited");
}

#[tokio::test]
async fn without_a_limiter_limited_tokens_are_refused_not_run_unlimited() {
    let store = Arc::new(MemoryStore::new());
    let with = ApiTokens::builder(Arc::clone(&store), "dz")
        .rate_limiter(MemoryRateLimiter::new())
        .build()
        .unwrap();
    let issued = with
        .issue(NewToken::new("u1", "bot").rate_limit(RateLimit::new(5, 60).unwrap()))
        .await
        .unwrap();
    let without = ApiTokens::new(store, "dz").unwrap();
    let err = without
        .verify(issued.plaintext.expose_secret())
        .await
        .expect_err("fails closed");
    assert!(matches!(err, AuthError::RateLimiterUnavailable), "{err:?}");
    assert_eq!(
        (err.status(), err.code()),
        (503, "rate_limiter_unavailable")
    );
    let refused = without
        .issue(NewToken::new("u1", "x").rate_limit(RateLimit::new(5, 60).unwrap()))
        .await;
    assert!(
        matches!(&refused, Err(Error::Invalid(v)) if v.has("rate_limit")),
        "{refused:?}"
    );
    for (limit, per) in [(0, 60), (1_000_001, 60), (5, 0), (5, 86_401)] {
        assert!(RateLimit::new(limit, per).is_err(), "{limit}/{per}");
    }
}

#[cfg(feature = "web")]
#[tokio::test]
async fn a_rate_limited_rejection_carries_retry_after_and_the_ratelimit_headers() {
    use api_tokens::web::Rejection;

    let clock = clock();
    let tokens = service(&clock);
    let issued = tokens
        .issue(NewToken::new("u1", "bot").rate_limit(RateLimit::new(2, 10).unwrap()))
        .await
        .unwrap();
    let t = issued.plaintext.expose_secret();
    tokens.verify(t).await.unwrap();
    tokens.verify(t).await.unwrap();
    let rejection = Rejection::from(tokens.verify(t).await.unwrap_err());
    assert_eq!(
        (rejection.status(), rejection.code()),
        (429, "rate_limited")
    );
    assert_eq!(rejection.header("retry-after"), Some("5"));
    assert_eq!(rejection.header("ratelimit-limit"), Some("2"));
    assert_eq!(rejection.header("ratelimit-remaining"), Some("0"));
    assert_eq!(rejection.header("ratelimit-policy"), Some("2;w=10"));
    let reset: u64 = rejection
        .header("ratelimit-reset")
        .unwrap()
        .parse()
        .unwrap();
    assert!((5..=10).contains(&reset), "{reset}");
    assert!(rejection.body_str().contains("rate_limited"));
    let usage = Rejection::from(AuthError::UsageExceeded);
    assert_eq!((usage.status(), usage.code()), (429, "usage_exceeded"));
}

/// In the memory store a token's count lives beside its record, and every replacement of
/// the record moves it (here each verification's use replaces it, and an edit races them):
/// threads racing for a limit of 300 get exactly 300, and exactly 300 uses are taken.
#[test]
fn counts_kept_with_the_record_survive_its_replacements_under_contention() {
    let clock = clock();
    let tokens = service(&clock);
    let rt = || {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    };
    let issued = rt()
        .block_on(
            tokens.issue(
                NewToken::new("u1", "bot")
                    .rate_limit(RateLimit::new(300, 3600).unwrap())
                    .usage(api_tokens::UsageLimit::new(100_000).unwrap()),
            ),
        )
        .unwrap();
    let plaintext = issued.plaintext.expose_secret().to_owned();
    let id = issued.record.id;
    let (allowed, limited) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let verifiers: Vec<_> = (0..4)
        .map(|_| {
            let (tokens, plaintext) = (tokens.clone(), plaintext.clone());
            let (allowed, limited) = (Arc::clone(&allowed), Arc::clone(&limited));
            std::thread::spawn(move || {
                let rt = rt();
                for _ in 0..150 {
                    match rt.block_on(tokens.verify(&plaintext)) {
                        Ok(_) => allowed.fetch_add(1, Ordering::Relaxed),
                        Err(AuthError::RateLimited { .. }) => {
                            limited.fetch_add(1, Ordering::Relaxed)
                        }
                        Err(e) => panic!("{e:?}"),
                    };
                }
            })
        })
        .collect();
    let editor = {
        let tokens = tokens.clone();
        std::thread::spawn(move || {
            let rt = rt();
            for i in 0..200 {
                let edit = api_tokens::TokenEdit::new().name(format!("bot {i}"));
                rt.block_on(tokens.edit("u1", id, &edit)).unwrap();
            }
        })
    };
    for t in verifiers.into_iter().chain([editor]) {
        t.join().unwrap();
    }
    assert_eq!(allowed.load(Ordering::Relaxed), 300);
    assert_eq!(limited.load(Ordering::Relaxed), 300);
    let record = rt().block_on(tokens.store().get(&id)).unwrap().unwrap();
    assert_eq!(record.usage.as_ref().unwrap().remaining, 100_000 - 300);
}

/// Whether `t` is refused for its rate limit.
async fn limited<S: TokenStore>(tokens: &ApiTokens<S>, t: &str) -> bool {
    matches!(tokens.verify(t).await, Err(AuthError::RateLimited { .. }))
}

/// A limit of two counted three times through `tokens`: two allowed, the third refused.
async fn burst_of_two<S: TokenStore>(tokens: &ApiTokens<S>) {
    let issued = tokens
        .issue(NewToken::new("u1", "bot").rate_limit(RateLimit::new(2, 3600).unwrap()))
        .await
        .unwrap();
    let t = issued.plaintext.expose_secret();
    tokens.verify(t).await.unwrap();
    tokens.verify(t).await.unwrap();
    assert!(limited(tokens, t).await);
}

/// The memory store lends each record's cell (also through `DynTokenStore`): the limiter
/// keeps no count of its own for the token.
#[tokio::test]
async fn in_the_memory_store_a_token_counts_beside_its_record() {
    let clock = clock();
    let limiter = Arc::new(MemoryRateLimiter::with_clock(clock.clone()));
    let direct = ApiTokens::builder(MemoryStore::new(), "dz")
        .clock(clock.clone())
        .rate_limiter(Arc::clone(&limiter))
        .build()
        .unwrap();
    burst_of_two(&direct).await;
    let erased = ApiTokens::builder(api_tokens::DynTokenStore::new(MemoryStore::new()), "dz")
        .clock(clock.clone())
        .rate_limiter(Arc::clone(&limiter))
        .build()
        .unwrap();
    burst_of_two(&erased).await;
    assert_eq!(limiter.len(), 0, "counted on the records' cells");
}

/// A store that keeps no cells (SQLite) is counted by key, in the limiter's own table.
#[cfg(feature = "sqlite")]
#[tokio::test]
async fn a_store_without_cells_is_counted_by_key() {
    let clock = clock();
    let limiter = Arc::new(MemoryRateLimiter::with_clock(clock.clone()));
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    let store = api_tokens::SqliteStore::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    let tokens = ApiTokens::builder(store, "dz")
        .clock(clock.clone())
        .rate_limiter(Arc::clone(&limiter))
        .build()
        .unwrap();
    burst_of_two(&tokens).await;
    assert_eq!(limiter.len(), 1, "one count, by the token's key");
}

/// A token rotated many times, each predecessor kept in its grace: the first and the
/// newest still share one count, however long the chain.
#[tokio::test]
async fn every_token_of_a_long_rotation_chain_shares_one_count() {
    let clock = clock();
    let tokens = service(&clock);
    let first = tokens
        .issue(NewToken::new("u1", "bot").rate_limit(RateLimit::new(3, 3600).unwrap()))
        .await
        .unwrap();
    let mut newest = tokens
        .rotate("u1", first.record.id, Duration::days(30))
        .await
        .unwrap();
    for _ in 1..20 {
        newest = tokens
            .rotate("u1", newest.record.id, Duration::days(30))
            .await
            .unwrap();
    }
    let (old, new) = (
        first.plaintext.expose_secret(),
        newest.plaintext.expose_secret(),
    );
    tokens.verify(old).await.unwrap();
    tokens.verify(old).await.unwrap();
    tokens.verify(new).await.unwrap();
    for t in [old, new] {
        assert!(limited(&tokens, t).await);
    }
}

/// A purge keeps the ended tokens a live limited token's chain runs through, so that the
/// first token (in its grace) and the newest keep sharing one count.
#[tokio::test]
async fn a_purge_never_splits_a_chain_s_count() {
    let clock = clock();
    let tokens = service(&clock);
    let first = tokens
        .issue(NewToken::new("u1", "bot").rate_limit(RateLimit::new(2, 3600).unwrap()))
        .await
        .unwrap();
    let second = tokens
        .rotate("u1", first.record.id, Duration::days(1))
        .await
        .unwrap();
    // Rotated with no grace: the second token ends at once.
    let third = tokens
        .rotate("u1", second.record.id, Duration::ZERO)
        .await
        .unwrap();
    clock.advance(Duration::hours(1));
    tokens.purge(Duration::minutes(1)).await.unwrap();
    let kept = tokens.store().get(&second.record.id).await.unwrap();
    assert!(kept.is_some_and(|r| r.revoked_at.is_some()), "ended, kept");
    let (old, new) = (
        first.plaintext.expose_secret(),
        third.plaintext.expose_secret(),
    );
    tokens.verify(old).await.unwrap();
    tokens.verify(new).await.unwrap();
    for t in [old, new] {
        assert!(limited(&tokens, t).await);
    }
    // Once the first token ends too, the purge takes the second.
    clock.advance(Duration::days(2));
    tokens.purge(Duration::minutes(1)).await.unwrap();
    assert!(
        tokens
            .store()
            .get(&second.record.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        tokens
            .store()
            .get(&first.record.id)
            .await
            .unwrap()
            .is_none()
    );
    tokens.verify(new).await.expect("the newest still verifies");
}

/// A limiter that says every cell is moving, for ever.
struct AlwaysMoved;

impl RateLimiter for AlwaysMoved {
    fn check_cell(
        &self,
        _: &api_tokens::RateCell,
        _: RateLimit,
    ) -> Option<Result<api_tokens::RateDecision, api_tokens::CellMoved>> {
        Some(Err(api_tokens::CellMoved))
    }

    fn check<'a>(&'a self, _: &'a RateKey<'a>, _: RateLimit) -> api_tokens::RateFuture<'a> {
        Box::pin(std::future::ready(Err(api_tokens::RateLimitError(
            "unused".into(),
        ))))
    }
}

/// A cell that never stops moving fails the verification closed, in bounded time.
#[tokio::test]
async fn a_cell_that_never_settles_fails_closed() {
    let tokens = ApiTokens::builder(MemoryStore::new(), "dz")
        .rate_limiter(AlwaysMoved)
        .build()
        .unwrap();
    let issued = tokens
        .issue(NewToken::new("u1", "bot").rate_limit(RateLimit::new(3, 3600).unwrap()))
        .await
        .unwrap();
    assert!(matches!(
        tokens.verify(issued.plaintext.expose_secret()).await,
        Err(AuthError::RateLimiterUnavailable)
    ));
}

/// Two services over one `MemoryStore`, each with a limiter of its own, share the counts
/// the store keeps.
#[tokio::test]
async fn services_sharing_a_memory_store_share_its_counts() {
    let clock = clock();
    let store = Arc::new(MemoryStore::new());
    let make = || {
        ApiTokens::builder(Arc::clone(&store), "dz")
            .clock(clock.clone())
            .rate_limiter(MemoryRateLimiter::with_clock(clock.clone()))
            .build()
            .unwrap()
    };
    let (a, b) = (make(), make());
    let issued = a
        .issue(NewToken::new("u1", "bot").rate_limit(RateLimit::new(2, 3600).unwrap()))
        .await
        .unwrap();
    let t = issued.plaintext.expose_secret();
    a.verify(t).await.unwrap();
    b.verify(t).await.unwrap();
    assert!(limited(&a, t).await && limited(&b, t).await);
}
