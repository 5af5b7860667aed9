//! Verification through a `CachedStore` over PostgreSQL, and how fast a revocation reaches
//! another instance.
//!
//! ```text
//! API_TOKENS_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test \
//!   cargo bench --all-features --benches -- 'verify_cached/postgres|verify/memory$|propagation'
//! ```
//!
//! - `verify_cached/postgres`: 1 000 000 tokens in PostgreSQL (`API_TOKENS_BENCH_CACHED_TOKENS`
//!   to change), 65 536 of them presented in rotation through a warm cache that listens for
//!   invalidations; `verify_cached/postgres_uncached`: the same tokens through the store
//!   alone, in the same run. Afterwards it prints the store reads per verification and the
//!   last-use statements per flush.
//! - `propagation/postgres`: two instances (two pools, two caches) on one table; each
//!   iteration revokes a token cached by both on one and times until the other refuses it.
//!   Afterwards it prints `revocation propagation: p50 <x> ms, p99 <y> ms, max <z> ms over <n>`.

use std::cell::RefCell;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use api_tokens::sqlx::{self, AssertSqlSafe, PgPool};
use api_tokens::testkit::{Calls, CountingStore};
use api_tokens::{ApiTokens, AuthError, CachedStore, MemoryStore, NewToken, PostgresStore};
use criterion::{Criterion, criterion_group, criterion_main};
use time::OffsetDateTime;
use tokio::runtime::Runtime;

const PRESENTED: usize = 1 << 16;
const TABLE: &str = "api_tokens_bench_cached.tokens";

fn db_size() -> usize {
    std::env::var("API_TOKENS_BENCH_CACHED_TOKENS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if std::env::args().any(|a| a == "--bench") {
            1_000_000
        } else {
            5_000
        })
}

/// Poll once: a cache hit finishes there, without a runtime (as `verify/memory` is
/// measured); anything that waits is finished on the runtime.
fn run<F: Future>(rt: &Runtime, f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => rt.block_on(f),
    }
}

/// `n` tokens in `TABLE`, issued on a memory store and copied in batches; the plaintexts of
/// the first `PRESENTED`.
async fn load(pool: &PgPool, n: usize) -> Vec<String> {
    let started = Instant::now();
    sqlx::raw_sql("DROP SCHEMA IF EXISTS api_tokens_bench_cached CASCADE")
        .execute(pool)
        .await
        .unwrap();
    let store = PostgresStore::with_table(pool.clone(), TABLE).unwrap();
    store.migrate().await.unwrap();
    let mut presented = Vec::new();
    let batch = 10_000;
    for start in (0..n).step_by(batch) {
        let staging = ApiTokens::new(MemoryStore::new(), "dz").unwrap();
        let mut records = Vec::with_capacity(batch);
        for i in start..(start + batch).min(n) {
            let issued = staging
                .issue(NewToken::new(
                    format!("user_{}", i % 1000),
                    format!("tok-{i:07}"),
                ))
                .await
                .unwrap();
            if presented.len() < PRESENTED {
                presented.push(issued.plaintext.expose_secret().to_owned());
            }
            records.push(issued.record);
        }
        let col = |f: fn(&api_tokens::TokenRecord) -> Option<String>| -> Vec<Option<String>> {
            records.iter().map(f).collect()
        };
        let bytes = |f: fn(&api_tokens::TokenRecord) -> Vec<u8>| -> Vec<Vec<u8>> {
            records.iter().map(f).collect()
        };
        let times = |f: fn(&api_tokens::TokenRecord) -> Option<OffsetDateTime>| -> Vec<Option<OffsetDateTime>> {
            records.iter().map(f).collect()
        };
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO {TABLE} (id, owner, name, scopes, hash, prefix, created_at, expires_at) \
             SELECT * FROM unnest($1::bytea[], $2::text[], $3::text[], $4::text[], $5::bytea[], \
             $6::text[], $7::timestamptz[], $8::timestamptz[])"
        )))
        .bind(bytes(|r| r.id.as_bytes().to_vec()))
        .bind(col(|r| Some(r.owner.to_string())))
        .bind(col(|r| Some(r.name.to_string())))
        .bind(col(|_| Some(String::new())))
        .bind(bytes(|r| r.hash.as_bytes().to_vec()))
        .bind(col(|r| Some(r.prefix.to_string())))
        .bind(times(|r| Some(r.created_at)))
        .bind(times(|r| r.expires_at))
        .execute(pool)
        .await
        .unwrap();
    }
    for settle in [format!("VACUUM ANALYZE {TABLE}"), "CHECKPOINT".to_owned()] {
        sqlx::raw_sql(AssertSqlSafe(settle))
            .execute(pool)
            .await
            .unwrap();
    }
    eprintln!(
        "loaded {n} tokens into PostgreSQL in {:?}",
        started.elapsed()
    );
    presented
}

async fn pool(url: &str, max: u32) -> PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(max)
        .connect(url)
        .await
        .unwrap()
}

/// A cache over `TABLE` on `pool`, listening for invalidations, over a counting store.
fn cache(pool: PgPool) -> (CachedStore<CountingStore<PostgresStore>>, Arc<Calls>) {
    let store = PostgresStore::with_table(pool, TABLE).unwrap();
    let invalidations = store.invalidations();
    let counting = CountingStore::new(store);
    let calls = counting.calls();
    let cache = CachedStore::builder(counting)
        .max_entries(2 * PRESENTED)
        .postgres(invalidations)
        .build()
        .unwrap();
    (cache, calls)
}

async fn until_trusted<S: api_tokens::TokenStore>(cache: &CachedStore<S>) {
    while !cache.is_trusted() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn cached(c: &mut Criterion, rt: &Runtime, url: &str) {
    let (presented, tokens, uncached, calls) = rt.block_on(async {
        let pool = pool(url, 8).await;
        let presented = load(&pool, db_size()).await;
        let (cache, calls) = cache(pool.clone());
        until_trusted(&cache).await;
        let tokens = ApiTokens::new(cache, "dz").unwrap();
        let uncached =
            ApiTokens::new(PostgresStore::with_table(pool, TABLE).unwrap(), "dz").unwrap();
        // Warm: every presented token read once (and its last use queued, then written).
        for t in &presented {
            tokens.verify(t).await.expect("a loaded token verifies");
        }
        tokens.store().flush_last_uses().await.unwrap();
        (presented, tokens, uncached, calls)
    });
    let n = presented.len();
    let reads_before = tokens.store().stats().store_reads;
    let batches_before = calls.record_last_uses.load(Ordering::SeqCst);
    let verified = std::cell::Cell::new(0u64);
    let mut group = c.benchmark_group("verify_cached");
    let mut i = 0;
    group.bench_function("postgres", |b| {
        b.iter(|| {
            i = (i + 1) % n;
            verified.set(verified.get() + 1);
            std::hint::black_box(run(rt, tokens.verify(&presented[i])).is_ok())
        })
    });
    let mut j = 0;
    group.bench_function("postgres_uncached", |b| {
        b.iter(|| {
            j = (j + 1) % n;
            std::hint::black_box(rt.block_on(uncached.verify(&presented[j])).is_ok())
        })
    });
    group.finish();
    if verified.get() > 0 {
        let reads = tokens.store().stats().store_reads - reads_before;
        println!(
            "verify_cached/postgres: {reads} store reads over {} verifications ({:.6} per verification), {n} hot tokens",
            verified.get(),
            reads as f64 / verified.get() as f64
        );
        // Every token verified again a last-use interval later: their last uses are due,
        // queued by the cache, and written by one statement.
        let later =
            api_tokens::ManualClock::new(OffsetDateTime::now_utc() + time::Duration::minutes(2));
        let due = ApiTokens::builder(tokens.store().clone(), "dz")
            .clock(later)
            .build()
            .unwrap();
        let (statements, written, singles) = rt.block_on(async {
            tokens.store().flush_last_uses().await.unwrap();
            let before = calls.record_last_uses.load(Ordering::SeqCst);
            let singles = calls.record_last_use.load(Ordering::SeqCst);
            for t in &presented {
                due.verify(t).await.unwrap();
            }
            let written = tokens.store().flush_last_uses().await.unwrap();
            (
                calls.record_last_uses.load(Ordering::SeqCst) - before,
                written,
                calls.record_last_use.load(Ordering::SeqCst) - singles,
            )
        });
        println!(
            "verify_cached/postgres: last uses of {n} tokens all due: {statements} statement(s) wrote {written} rows, {singles} single-token writes; {} batches while measuring",
            calls.record_last_uses.load(Ordering::SeqCst) - batches_before - statements
        );
    }
}

fn propagation(c: &mut Criterion, rt: &Runtime, url: &str) {
    let (a, b) = rt.block_on(async {
        let pool_a = pool(url, 4).await;
        // The table may be large (the cached benchmark's); the measurement adds tokens to it.
        let exists = PostgresStore::with_table(pool_a.clone(), TABLE).unwrap();
        exists.migrate().await.unwrap();
        let (cache_a, _) = cache(pool_a);
        let (cache_b, _) = cache(pool(url, 4).await);
        until_trusted(&cache_a).await;
        until_trusted(&cache_b).await;
        (
            ApiTokens::new(cache_a, "dz").unwrap(),
            ApiTokens::new(cache_b, "dz").unwrap(),
        )
    });
    let took: RefCell<Vec<Duration>> = RefCell::default();
    let late = std::cell::Cell::new(0u64);
    let mut group = c.benchmark_group("propagation");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(10));
    group.bench_function("postgres", |bench| {
        bench.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let spent = rt.block_on(async {
                    let issued = a.issue(NewToken::new("prop", "p")).await.unwrap();
                    let t = issued.plaintext.expose_secret();
                    b.verify(t).await.unwrap();
                    b.verify(t).await.unwrap();
                    a.revoke("prop", issued.record.id, None).await.unwrap();
                    let returned = Instant::now();
                    loop {
                        match b.verify(t).await {
                            Err(AuthError::Revoked { .. }) => break,
                            Ok(_) if returned.elapsed() > Duration::from_millis(50) => {
                                late.set(late.get() + 1);
                            }
                            Ok(_) => {}
                            Err(e) => panic!("{e:?}"),
                        }
                        tokio::task::yield_now().await;
                    }
                    returned.elapsed()
                });
                took.borrow_mut().push(spent);
                total += spent;
            }
            total
        })
    });
    group.finish();
    let mut took = took.into_inner();
    if !took.is_empty() {
        took.sort();
        let at = |q: f64| took[((took.len() as f64 * q) as usize).min(took.len() - 1)];
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "revocation propagation: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms over {}",
            ms(at(0.5)),
            ms(at(0.99)),
            ms(*took.last().unwrap()),
            took.len()
        );
        println!(
            "revocation propagation: {} verifications succeeded on the other instance more than 50 ms after the revocation returned",
            late.get()
        );
    }
}

/// Whether the command line's filter (if any) may select benchmarks of `group`: the
/// setups are long (a million rows), so they are skipped when nothing of theirs would run.
fn wanted(group: &str) -> bool {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    filters.is_empty() || filters.iter().any(|f| f.contains(group))
}

fn benches(c: &mut Criterion) {
    let Ok(url) = std::env::var("API_TOKENS_TEST_POSTGRES_URL") else {
        println!("verify_cached, propagation: not run; set API_TOKENS_TEST_POSTGRES_URL");
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    if wanted("verify_cached") {
        cached(c, &rt, &url);
    }
    if wanted("propagation") {
        propagation(c, &rt, &url);
    }
}

criterion_group! {
    name = group;
    config = Criterion::default().measurement_time(Duration::from_secs(5));
    targets = benches
}
criterion_main!(group);
