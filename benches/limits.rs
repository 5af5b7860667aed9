//! What rate limits and tracing add to a verification, each against its baseline in the
//! same run:
//!
//! - `verify/memory` (no limit) and `verify/memory_rate_limited` (every token limited,
//!   counted by `MemoryRateLimiter`), each over its own store of the same size;
//! - `verify/redis_rate_limited` (counted on Redis by `RedisRateLimiter`) and `redis/ping`
//!   (one `PING` on the limiter's own connection: the round trip a check cannot beat);
//! - `verify/memory_traced`: `verify/memory` with a `tracing` subscriber installed that
//!   formats at `INFO` into a sink (verification's success events are `DEBUG`, so they are
//!   filtered out where a production subscriber would filter them), beside
//!   `verify/memory`, with none.
//!
//! ```text
//! cargo bench --features rate-limit,redis,tracing --bench limits
//! ```
//!
//! `API_TOKENS_BENCH_TOKENS` sets each store's size (default 1 000 000);
//! `API_TOKENS_BENCH_REDIS_URL` the Redis (default `redis://127.0.0.1:6379`; without one the
//! Redis benchmarks say so and are skipped). Each pair is also timed in alternating rounds
//! and its medians printed, which a noisy neighbour moves less than separate runs.

#[path = "support/ready.rs"]
mod ready;
use ready::{PRESENTED, ready, store_size};
use std::hint::black_box;
use std::time::{Duration, Instant};

use api_tokens::{
    ApiTokens, MemoryRateLimiter, MemoryStore, NewToken, RateLimit, RedisRateLimiter,
};
use criterion::{Criterion, criterion_group, criterion_main};

/// A limit no benchmark reaches: a million a second.
fn generous() -> RateLimit {
    RateLimit::new(1_000_000, 1).expect("a valid limit")
}

/// `n` tokens in `tokens` (limited if `limit`), and the plaintexts of the first
/// `PRESENTED`.
fn fill<S: api_tokens::TokenStore>(
    tokens: &ApiTokens<S>,
    n: usize,
    limit: Option<RateLimit>,
) -> Vec<String> {
    let mut presented = Vec::with_capacity(PRESENTED);
    for i in 0..n {
        let mut new = NewToken::new(format!("user_{}", i % 1000), "bench");
        if let Some(limit) = limit {
            new = new.rate_limit(limit);
        }
        let issued = ready(tokens.issue(new)).expect("issue");
        if presented.len() < PRESENTED {
            presented.push(issued.plaintext.expose_secret().to_owned());
        }
    }
    presented
}

/// Median times (ns) of `a` and `b`, alternating rounds of `per` calls each.
fn alternating(
    rounds: usize,
    per: usize,
    a: &mut dyn FnMut(usize),
    b: &mut dyn FnMut(usize),
) -> (f64, f64) {
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let start = Instant::now();
        for i in 0..per {
            a(i);
        }
        ta.push(start.elapsed().as_secs_f64() * 1e9 / per as f64);
        let start = Instant::now();
        for i in 0..per {
            b(i);
        }
        tb.push(start.elapsed().as_secs_f64() * 1e9 / per as f64);
    }
    ta.sort_by(f64::total_cmp);
    tb.sort_by(f64::total_cmp);
    (ta[rounds / 2], tb[rounds / 2])
}

fn benches(c: &mut Criterion) {
    let n = store_size();
    let quick = !std::env::args().any(|a| a == "--bench");
    let started = Instant::now();
    let plain = ApiTokens::new(MemoryStore::with_capacity(n), "dz").unwrap();
    let plain_presented = fill(&plain, n, None);
    let limited = ApiTokens::builder(MemoryStore::with_capacity(n), "dz")
        .rate_limiter(MemoryRateLimiter::new())
        .build()
        .unwrap();
    let limited_presented = fill(&limited, n, Some(generous()));
    // Fewer than `PRESENTED` when the stores are small.
    let presented = plain_presented.len();
    println!("setup: 2 × {n} tokens in {:?}", started.elapsed());
    // Every path does what it claims.
    for t in plain_presented.iter().take(100) {
        ready(plain.verify(t)).expect("a plain token verifies");
    }
    for t in limited_presented.iter().take(100) {
        ready(limited.verify(t)).expect("a limited token verifies within its limit");
    }

    let mut group = c.benchmark_group("verify");
    let mut i = 0;
    group.bench_function("memory", |b| {
        b.iter(|| {
            i = (i + 1) % presented;
            black_box(ready(plain.verify(black_box(&plain_presented[i]))).is_ok())
        })
    });
    group.bench_function("memory_rate_limited", |b| {
        b.iter(|| {
            i = (i + 1) % presented;
            black_box(ready(limited.verify(black_box(&limited_presented[i]))).is_ok())
        })
    });
    // A subscriber that is installed and formats, into nothing.
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_writer(std::io::sink)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        group.bench_function("memory_traced", |b| {
            b.iter(|| {
                i = (i + 1) % presented;
                black_box(ready(plain.verify(black_box(&plain_presented[i]))).is_ok())
            })
        });
    });
    group.finish();

    let (rounds, per) = if quick { (3, 1_000) } else { (15, 100_000) };
    let (base, with) = alternating(
        rounds,
        per,
        &mut |i| {
            black_box(ready(plain.verify(&plain_presented[i % presented])).is_ok());
        },
        &mut |i| {
            black_box(ready(limited.verify(&limited_presented[i % presented])).is_ok());
        },
    );
    println!(
        "verify/memory_rate_limited vs verify/memory: interleaved medians {with:.0} ns vs {base:.0} ns, +{:.1} %",
        (with / base - 1.0) * 100.0
    );
    let traced = tracing::subscriber::with_default(
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_writer(std::io::sink)
            .finish(),
        || {
            alternating(
                rounds,
                per,
                &mut |i| {
                    black_box(ready(plain.verify(&plain_presented[i % presented])).is_ok());
                },
                &mut |_| {},
            )
            .0
        },
    );
    let (untraced, _) = alternating(
        rounds,
        per,
        &mut |i| {
            black_box(ready(plain.verify(&plain_presented[i % presented])).is_ok());
        },
        &mut |_| {},
    );
    println!(
        "verify/memory_traced vs verify/memory: medians {traced:.0} ns vs {untraced:.0} ns, ratio {:.3}",
        traced / untraced
    );

    redis(c, quick);
}

/// `verify/redis_rate_limited` against `redis/ping` on the limiter's connection.
fn redis(c: &mut Criterion, quick: bool) {
    let url = std::env::var("API_TOKENS_BENCH_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let Ok(limiter) = rt.block_on(RedisRateLimiter::connect(&url)) else {
        println!("redis: {url} is unreachable; verify/redis_rate_limited and redis/ping skipped");
        return;
    };
    let limiter = limiter
        .key_prefix("api_tokens_bench:")
        .deadline(Duration::from_secs(1));
    let ping = limiter.clone();
    let n = 10_000;
    let tokens = ApiTokens::builder(MemoryStore::with_capacity(n), "dz")
        .rate_limiter(limiter)
        .build()
        .unwrap();
    let presented: Vec<String> = rt.block_on(async {
        let mut out = Vec::new();
        for i in 0..n {
            let issued = tokens
                .issue(NewToken::new(format!("user_{}", i % 100), "bench").rate_limit(generous()))
                .await
                .unwrap();
            out.push(issued.plaintext.expose_secret().to_owned());
        }
        out
    });
    rt.block_on(tokens.verify(&presented[0]))
        .expect("verifies through Redis");
    let mut group = c.benchmark_group("verify");
    let mut i = 0;
    group.bench_function("redis_rate_limited", |b| {
        b.iter(|| {
            i = (i + 1) % n;
            black_box(rt.block_on(tokens.verify(&presented[i])).is_ok())
        })
    });
    group.finish();
    c.benchmark_group("redis").bench_function("ping", |b| {
        b.iter(|| black_box(rt.block_on(ping.ping()).is_ok()))
    });
    let (rounds, per) = if quick { (3, 100) } else { (15, 5_000) };
    let (verify, pinged) = alternating(
        rounds,
        per,
        &mut |i| {
            black_box(rt.block_on(tokens.verify(&presented[i % n])).is_ok());
        },
        &mut |_| {
            black_box(rt.block_on(ping.ping()).is_ok());
        },
    );
    println!(
        "verify/redis_rate_limited vs redis/ping: interleaved medians {:.1} µs vs {:.1} µs, ratio {:.3}",
        verify / 1e3,
        pinged / 1e3,
        verify / pinged
    );
}

criterion_group! {
    name = group;
    config = Criterion::default().measurement_time(Duration::from_secs(5));
    targets = benches
}
criterion_main!(group);
