//! Verification on SQLite and PostgreSQL against a bare `SELECT` of the same row by primary
//! key through the same pool: what the crate adds on top of the one round trip it needs.
//!
//! ```text
//! cargo bench --bench verify_db --all-features
//! API_TOKENS_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test cargo bench --bench verify_db --all-features
//! ```
//!
//! Each database holds 100 000 tokens (`API_TOKENS_BENCH_DB_TOKENS` to change); 4 096 of them
//! are presented in rotation. Every presented token is verified once before measuring, so
//! its last use is recent and the measurement should cause no write at all; the number of
//! last-use writes during the measurement is printed and must be 0.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use api_tokens::sqlx::{self, AssertSqlSafe};
use api_tokens::testkit::{Calls, CountingStore};
use api_tokens::{ApiTokens, NewToken, PostgresStore, SqliteStore, TokenId, TokenStore};
use criterion::{Criterion, criterion_group, criterion_main};
use tokio::runtime::Runtime;

#[path = "support/forge.rs"]
mod forge;

const PRESENTED: usize = 4096;
const COLUMNS: &str = "id, owner, tenant, name, description, scopes, hash, prefix, \
     created_at, expires_at, last_used_at, revoked_at, revocation_reason, successor, created_by";

fn db_size() -> usize {
    std::env::var("API_TOKENS_BENCH_DB_TOKENS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

struct Fixture<St: TokenStore> {
    tokens: ApiTokens<CountingStore<St>>,
    calls: Arc<Calls>,
    presented: Vec<String>,
    ids: Vec<TokenId>,
}

/// Issue `n` tokens through `load` (from `tasks` tasks at once) and keep the first
/// `PRESENTED` for presenting.
async fn load<St: TokenStore + Clone>(
    load: St,
    measure: St,
    n: usize,
    tasks: usize,
) -> Fixture<St> {
    let started = Instant::now();
    let loader = ApiTokens::new(load, "dz").unwrap();
    let mut handles = Vec::new();
    for t in 0..tasks {
        let loader = loader.clone();
        handles.push(tokio::spawn(async move {
            let mut kept = Vec::new();
            for i in (t..n).step_by(tasks) {
                let issued = loader
                    .issue(NewToken::new(
                        format!("user_{}", i % 1000),
                        format!("tok-{i:06}"),
                    ))
                    .await
                    .unwrap();
                if i < PRESENTED {
                    kept.push(issued.plaintext.expose_secret().to_owned());
                }
            }
            kept
        }));
    }
    let mut presented = Vec::new();
    for h in handles {
        presented.extend(h.await.unwrap());
    }
    let store = CountingStore::new(measure);
    let calls = store.calls();
    let tokens = ApiTokens::new(store, "dz").unwrap();
    let ids = presented
        .iter()
        .map(|t| tokens.format().parse(t).unwrap().id())
        .collect();
    eprintln!("loaded {n} tokens in {:?}", started.elapsed());
    Fixture {
        tokens,
        calls,
        presented,
        ids,
    }
}

impl<St: TokenStore> Fixture<St> {
    /// Verify every presented token once (a correctness check, and it makes every last use
    /// recent); returns the last-use write count so far.
    async fn warm(&self) -> u64 {
        for t in &self.presented {
            self.tokens.verify(t).await.expect("a valid token verifies");
        }
        self.calls.record_last_use.load(Ordering::SeqCst)
    }
}

fn bench_pair<St: TokenStore>(
    c: &mut Criterion,
    rt: &Runtime,
    name: &str,
    f: &Fixture<St>,
    select: impl Fn(TokenId) -> bool,
) {
    assert!(
        f.ids.iter().all(|id| select(*id)),
        "the bare select finds every row"
    );
    let writes_before = rt.block_on(f.warm());
    // Each measurement runs the twins alternately and times only its own, so both see the
    // same machine: a round trip costs tens of microseconds, and a neighbour's load drifts
    // by more than that between two benchmarks run one after the other.
    let mut group = c.benchmark_group("verify_db");
    let n = f.ids.len();
    let verify = |i: usize| rt.block_on(f.tokens.verify(&f.presented[i % n])).is_ok();
    let select_one = |i: usize| select(f.ids[i % n]);
    group.bench_function(format!("{name}_select"), |b| {
        b.iter_custom(|iters| alternate(iters, &verify, &select_one))
    });
    group.bench_function(name, |b| {
        b.iter_custom(|iters| alternate(iters, &select_one, &verify))
    });
    group.finish();

    // The same comparison with the twins in strict alternation, per-call times, medians:
    // robust to a neighbour's load, which moves separate benchmarks by tens of percent here.
    let rounds = if std::env::args().any(|a| a == "--bench") {
        20_000
    } else {
        100
    };
    let (mut selects, mut verifies) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    for r in 0..rounds {
        let start = Instant::now();
        std::hint::black_box(select(f.ids[r % n]));
        selects.push(start.elapsed());
        let start = Instant::now();
        std::hint::black_box(verify(r));
        verifies.push(start.elapsed());
    }
    selects.sort_unstable();
    verifies.sort_unstable();
    let (s_med, v_med) = (selects[rounds / 2], verifies[rounds / 2]);
    println!(
        "verify_db/{name}: interleaved medians over {rounds} calls: select {s_med:?}, verify {v_med:?}, ratio {:.3}",
        v_med.as_secs_f64() / s_med.as_secs_f64()
    );
    // What a wrong guess costs: an unknown id (no row) against a known id with a wrong
    // secret (a row fetched and decoded, then the hash compared).
    let wrong_secret = forge::wrong_secret(&f.presented[1], "dz", '0');
    let unknown_id = forge::unknown_id(&f.presented[1], "dz");
    let refused = |t: &str| {
        matches!(
            rt.block_on(f.tokens.verify(t)),
            Err(api_tokens::AuthError::Invalid)
        )
    };
    assert!(refused(&wrong_secret) && refused(&unknown_id));
    let (unknown, wrong) = forge::interleaved_medians(
        rounds,
        &mut || {
            std::hint::black_box(refused(&unknown_id));
        },
        &mut || {
            std::hint::black_box(refused(&wrong_secret));
        },
    );
    println!(
        "verify_timing/{name}: interleaved medians over {rounds} calls: unknown id {:.1} µs, known id with a wrong secret {:.1} µs",
        unknown / 1000.0,
        wrong / 1000.0
    );

    let writes = f.calls.record_last_use.load(Ordering::SeqCst) - writes_before;
    println!("verify_db/{name}: last-use writes during the measurement: {writes}");
    assert_eq!(writes, 0, "no write inside the last-use interval");
}

/// Run `untimed` and `timed` alternately `iters` times; the time spent in `timed`.
fn alternate(
    iters: u64,
    untimed: &dyn Fn(usize) -> bool,
    timed: &dyn Fn(usize) -> bool,
) -> Duration {
    let mut spent = Duration::ZERO;
    for i in 0..iters as usize {
        std::hint::black_box(untimed(i));
        let start = Instant::now();
        std::hint::black_box(timed(i));
        spent += start.elapsed();
    }
    spent
}

fn sqlite(c: &mut Criterion, rt: &Runtime) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let fixture = rt.block_on(async {
        // Load with synchronous=OFF (a bulk load), measure on the crate's own options.
        let options = SqliteStore::connect_options(&url)
            .unwrap()
            .synchronous(sqlx::sqlite::SqliteSynchronous::Off);
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .connect_with(options)
            .await
            .unwrap();
        let loader = SqliteStore::new(pool);
        loader.migrate().await.unwrap();
        let measure = SqliteStore::connect(&url).await.unwrap();
        let fixture = load(loader, measure.clone(), db_size(), 4).await;
        sqlx::raw_sql("ANALYZE; PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(measure.pool())
            .await
            .unwrap();
        fixture
    });
    let pool = fixture.tokens.store().inner().pool().clone();
    // Built once and shared, exactly as the store holds its statements.
    let sql: Arc<str> = format!("SELECT {COLUMNS} FROM api_tokens WHERE id = ?1").into();
    bench_pair(c, rt, "sqlite", &fixture, |id| {
        rt.block_on(
            sqlx::query(AssertSqlSafe(Arc::clone(&sql)))
                .bind(id.as_bytes().as_slice())
                .fetch_optional(&pool),
        )
        .unwrap()
        .is_some()
    });
}

fn postgres(c: &mut Criterion, rt: &Runtime) {
    let Ok(url) = std::env::var("API_TOKENS_TEST_POSTGRES_URL") else {
        println!("verify_db/postgres: not run; set API_TOKENS_TEST_POSTGRES_URL to run it");
        return;
    };
    let table = "api_tokens_bench.tokens";
    let fixture = rt.block_on(async {
        let store = PostgresStore::connect(&url).await.unwrap();
        sqlx::raw_sql("DROP SCHEMA IF EXISTS api_tokens_bench CASCADE")
            .execute(store.pool())
            .await
            .unwrap();
        let store = PostgresStore::with_table(store.pool().clone(), table).unwrap();
        store.migrate().await.unwrap();
        let fixture = load(store.clone(), store.clone(), db_size(), 8).await;
        // Settle the bulk load now, so autovacuum does not run during the measurement.
        for settle in [format!("VACUUM ANALYZE {table}"), "CHECKPOINT".to_owned()] {
            sqlx::raw_sql(AssertSqlSafe(settle))
                .execute(store.pool())
                .await
                .unwrap();
        }
        fixture
    });
    let pool = fixture.tokens.store().inner().pool().clone();
    let sql: Arc<str> = format!("SELECT {COLUMNS} FROM {table} WHERE id = $1").into();
    bench_pair(c, rt, "postgres", &fixture, |id| {
        rt.block_on(
            sqlx::query(AssertSqlSafe(Arc::clone(&sql)))
                .bind(id.as_bytes().as_slice())
                .fetch_optional(&pool),
        )
        .unwrap()
        .is_some()
    });
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    sqlite(c, &rt);
    postgres(c, &rt);
}

criterion_group! {
    name = group;
    config = Criterion::default().measurement_time(Duration::from_secs(5));
    targets = benches
}
criterion_main!(group);
