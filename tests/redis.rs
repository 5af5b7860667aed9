//! Rate limits shared on a real Redis (`API_TOKENS_TEST_REDIS_URL`, e.g.
//! `redis://127.0.0.1:6379`): two limiters (two instances) share one count exactly under
//! contention, windows refill on Redis's clock, and when Redis stops answering the check
//! fails the configured way (refuse: 503; allow: through). Without the variable at build
//! time these tests are ignored; `.ci/run` sets it and fails if Redis is unreachable.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use api_tokens::{
    ApiTokens, AuthError, MemoryStore, NewToken, RateKey, RateLimit, RateLimiter, RedisFailure,
    RedisRateLimiter, TokenId,
};

#[path = "common/tcp_proxy.rs"]
mod tcp_proxy;

use tcp_proxy::Proxy;

/// A number for this run's keys, so runs never share counts.
fn rand_u32() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    nanos ^ std::process::id().rotate_left(16) ^ NEXT.fetch_add(0x9e37_79b9, Ordering::Relaxed)
}

static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);

fn redis_url() -> String {
    std::env::var("API_TOKENS_TEST_REDIS_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .expect("API_TOKENS_TEST_REDIS_URL was set when the tests were built; set it again")
}

async fn limiter() -> RedisRateLimiter {
    RedisRateLimiter::connect(&redis_url())
        .await
        .expect("Redis is reachable")
        .key_prefix(format!("api_tokens_test:{:08x}:", rand_u32()))
        .deadline(Duration::from_millis(500))
}

fn random_id() -> TokenId {
    TokenId::from_bytes(rand_u32().to_le_bytes().repeat(4).try_into().unwrap())
}

macro_rules! redis_test {
    ($(#[$meta:meta])* async fn $name:ident() $body:block) => {
        $(#[$meta])*
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        #[cfg_attr(
            not(api_tokens_redis_tests),
            ignore = "set API_TOKENS_TEST_REDIS_URL to run the Redis suite"
        )]
        async fn $name() $body
    };
}

redis_test! {
    /// Two limiters on one Redis, 16 tasks, 200 attempts for a limit of 100: exactly 100.
    async fn two_instances_share_one_exact_count() {
        let a = Arc::new(limiter().await);
        let b = Arc::new(a.as_ref().clone());
        let limit = RateLimit::new(100, 3600).unwrap();
        let id = random_id();
        let allowed = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for i in 0..16 {
            let limiter = if i % 2 == 0 { Arc::clone(&a) } else { Arc::clone(&b) };
            let allowed = Arc::clone(&allowed);
            tasks.push(tokio::spawn(async move {
                for _ in 0..13 {
                    let key = RateKey::Token(id);
                    let d = limiter.check(&key, limit).await.expect("Redis answers");
                    if d.allowed {
                        allowed.fetch_add(1, Ordering::Relaxed);
                    } else {
                        assert!(d.retry_after.is_some_and(|r| r > Duration::ZERO));
                        assert_eq!(d.remaining, 0);
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(allowed.load(Ordering::Relaxed), 100);
    }
}

redis_test! {
    /// Through the service: a token's burst, then 429 with the figures; the window refills
    /// on Redis's clock.
    async fn verification_is_limited_through_redis() {
        let tokens = ApiTokens::builder(MemoryStore::new(), "dz")
            .rate_limiter(limiter().await)
            .build()
            .unwrap();
        let issued = tokens
            .issue(NewToken::new("u1", "bot").rate_limit(RateLimit::new(2, 1).unwrap()))
            .await
            .unwrap();
        let t = issued.plaintext.expose_secret();
        tokens.verify(t).await.unwrap();
        tokens.verify(t).await.unwrap();
        let err = tokens.verify(t).await.expect_err("over the limit");
        let AuthError::RateLimited { limit, retry_after, .. } = err else {
            panic!("{err:?}");
        };
        assert_eq!(limit, 2);
        assert!(retry_after <= Duration::from_millis(500), "{retry_after:?}");
        tokio::time::sleep(retry_after + Duration::from_millis(20)).await;
        tokens.verify(t).await.expect("one more after the emission interval");
    }
}

redis_test! {
    /// Redis unreachable mid-way (a proxy cut): `Refuse` answers 503, `Allow` lets the
    /// request through; both recover when Redis is back.
    async fn an_unreachable_redis_fails_the_configured_way() {
        let target = redis_url()
            .trim_start_matches("redis://")
            .split('/')
            .next()
            .unwrap()
            .to_owned();
        let target = tokio::net::lookup_host(target).await.unwrap().next().unwrap();
        let proxy = Proxy::start(target).await;
        let url = format!("redis://{}", proxy.addr);
        let limit = RateLimit::new(1000, 60).unwrap();
        for failure in [RedisFailure::Refuse, RedisFailure::Allow] {
            let limiter = RedisRateLimiter::connect(&url)
                .await
                .unwrap()
                .key_prefix(format!("api_tokens_test:{:08x}:", rand_u32()))
                .deadline(Duration::from_millis(200))
                .on_failure(failure);
            let tokens = ApiTokens::builder(MemoryStore::new(), "dz")
                .rate_limiter(limiter)
                .build()
                .unwrap();
            let issued = tokens
                .issue(NewToken::new("u1", "bot").rate_limit(limit))
                .await
                .unwrap();
            let t = issued.plaintext.expose_secret();
            tokens.verify(t).await.expect("Redis is up");
            proxy.stall(true);
            let stalled = tokens.verify(t).await;
            proxy.stall(false);
            proxy.down();
            let down = tokens.verify(t).await;
            for outcome in [stalled, down] {
                match failure {
                    RedisFailure::Refuse => {
                        let err = outcome.expect_err("refused");
                        assert!(matches!(err, AuthError::RateLimiterUnavailable), "{err:?}");
                        assert_eq!(err.status(), 503);
                    }
                    RedisFailure::Allow => {
                        outcome.expect("let through");
                    }
                }
            }
            proxy.restore();
            let started = std::time::Instant::now();
            while tokens.verify(t).await.is_err() {
                assert!(started.elapsed() < Duration::from_secs(10), "never recovered");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

redis_test! {
    /// `PING` on the limiter's connection answers (the benchmark's floor).
    async fn ping_answers() {
        limiter().await.ping().await.expect("PONG");
    }
}
