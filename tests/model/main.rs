//! Model-based test of the whole lifecycle: random sequences of issue, verify, revoke,
//! revoke-all, rotate, purge, list, get and clock moves, some steps running two operations
//! at once, against a plain reference model (`model.rs`) and against every store.
//!
//! After each step the store's answers must be ones the model gives for some sequential
//! order of that step's operations; the runner keeps every model state still consistent
//! with what the store said (a concurrent step can leave two), and fails when none is.
//!
//! Cases per store: 256 (memory) and 48 (SQLite, PostgreSQL) by default, as in CI; set
//! `MODEL_CASES` for a dedicated run, e.g.
//! `MODEL_CASES=10000 cargo test --release --all-features --test model -- --nocapture`.

mod model;
mod ops;

#[cfg(feature = "postgres")]
#[path = "../common/mod.rs"]
mod common;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

use api_tokens::{ApiTokens, ManualClock, MemoryStore, TokenPolicy, TokenStore};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use time::macros::datetime;

use model::{CAP, Model};
use ops::{Issued, Op, apply, run, step};

/// Models still consistent with the store; more than this many means the runs stopped
/// telling states apart, which the model's determinism makes impossible in practice.
const MAX_CANDIDATES: usize = 16;

/// Run `steps` against `store` and the model.
async fn check<S: TokenStore>(store: S, steps: &[Op]) -> Result<(), TestCaseError> {
    let start = datetime!(2026-01-01 0:00 UTC);
    let clock = ManualClock::new(start);
    let tokens = ApiTokens::builder(store, "mdl")
        .clock(clock.clone())
        .policy(TokenPolicy::default().max_active_per_owner(Some(CAP as u32)))
        .build()
        .expect("a valid configuration");
    let mut candidates = vec![Model::new(start)];
    let mut issued = Issued::default();
    for (n, op) in steps.iter().enumerate() {
        let mut next = Vec::new();
        let mut seen = Vec::new();
        match op {
            Op::Together(a, b) => {
                let spawn = |op: Op| {
                    let (tokens, clock, issued) = (tokens.clone(), clock.clone(), issued.clone());
                    tokio::spawn(async move { run(&tokens, &clock, &issued, &op).await })
                };
                let (ta, tb) = (spawn((**a).clone()), spawn((**b).clone()));
                let (ra, rb) = (ta.await.expect("task a"), tb.await.expect("task b"));
                for m in &candidates {
                    for ((first, rf), (second, rs)) in [((a, &ra), (b, &rb)), ((b, &rb), (a, &ra))]
                    {
                        let mut model = m.clone();
                        let ef = apply(&mut model, &issued, first, &rf.1);
                        let es = apply(&mut model, &issued, second, &rs.1);
                        seen.push(format!("{ef:?} then {es:?}"));
                        if ef == rf.0 && es == rs.0 {
                            next.push(model);
                        }
                    }
                }
                if next.is_empty() {
                    return Err(TestCaseError::fail(format!(
                        "step {n}: {op:?} answered {:?} and {:?}; no sequential order gives that \
                         (the model says {seen:?})",
                        ra.0, rb.0
                    )));
                }
                issued.0.extend(ra.1.into_iter().chain(rb.1));
            }
            op => {
                let (real, made) = run(&tokens, &clock, &issued, op).await;
                for m in &candidates {
                    let mut model = m.clone();
                    let expected = apply(&mut model, &issued, op, &made);
                    seen.push(format!("{expected:?}"));
                    if expected == real {
                        next.push(model);
                    }
                }
                if next.is_empty() {
                    return Err(TestCaseError::fail(format!(
                        "step {n}: {op:?} answered {real:?}; the model says {seen:?}"
                    )));
                }
                issued.0.extend(made);
            }
        }
        next.dedup();
        next.truncate(MAX_CANDIDATES);
        candidates = next;
    }
    Ok(())
}

/// Run `cases` random cases (`MODEL_CASES` overrides), each on a fresh store from `make`;
/// prints how many cases and steps ran.
fn run_cases<S, F, Fut>(name: &str, default_cases: u32, make: F)
where
    S: TokenStore,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let cases = std::env::var("MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_cases);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    let steps = AtomicU64::new(0);
    let mut runner = TestRunner::new(config);
    let result = runner.run(&prop::collection::vec(step(), 1..40), |ops| {
        steps.fetch_add(ops.len() as u64, Ordering::Relaxed);
        rt.block_on(async { check(make().await, &ops).await })
    });
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
    eprintln!(
        "model/{name}: {cases} cases, {} steps, all consistent with the model",
        steps.load(Ordering::Relaxed)
    );
}

#[test]
fn memory_store_follows_the_model() {
    run_cases("memory", 256, || async { MemoryStore::new() });
}

#[cfg(feature = "sqlite")]
#[test]
fn sqlite_file_follows_the_model() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let next = AtomicU64::new(0);
    run_cases("sqlite", 48, || {
        let path = dir
            .path()
            .join(format!("model-{}.db", next.fetch_add(1, Ordering::Relaxed)));
        async move {
            let store = api_tokens::SqliteStore::connect(&format!("sqlite://{}", path.display()))
                .await
                .expect("open");
            store.migrate().await.expect("migrate");
            store
        }
    });
}

#[cfg(feature = "postgres")]
#[test]
#[cfg_attr(
    not(api_tokens_postgres_tests),
    ignore = "set API_TOKENS_TEST_POSTGRES_URL to run the PostgreSQL suite"
)]
fn postgres_follows_the_model() {
    use api_tokens::PostgresStore;
    use api_tokens::sqlx::{self, AssertSqlSafe, PgPool};
    use std::sync::{Mutex, OnceLock};
    // One pool for the whole run (it lives on the runner's runtime); a table per case, and
    // the previous case's table dropped as the next one starts.
    let pool: OnceLock<PgPool> = OnceLock::new();
    let previous: Mutex<Option<String>> = Mutex::new(None);
    let (pool, previous) = (&pool, &previous);
    run_cases("postgres", 48, move || async move {
        if pool.get().is_none() {
            let _ = pool.set(common::pool_for(&common::url(), "api_tokens_model", 4).await);
        }
        let pool = pool.get().expect("the pool").clone();
        let stale = previous.lock().expect("not poisoned").take();
        if let Some(stale) = stale {
            sqlx::raw_sql(AssertSqlSafe(format!("DROP TABLE IF EXISTS {stale}")))
                .execute(&pool)
                .await
                .expect("drop the previous case's table");
        }
        let table = format!("{}.model_{:08x}", common::run_schema(), common::rand_u32());
        let store = PostgresStore::with_table(pool, &table).expect("a table name");
        store.migrate().await.expect("migrate");
        *previous.lock().expect("not poisoned") = Some(table);
        store
    });
}
