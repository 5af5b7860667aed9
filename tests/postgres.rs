//! The conformance suite against `PostgresStore` on a real server, plus persistence,
//! migrations, statement counts and faults.
//!
//! Set `API_TOKENS_TEST_POSTGRES_URL` (e.g. `postgres://postgres@127.0.0.1:5432/test`) when
//! building the tests to run it. Without it every test here is ignored, and the summary
//! says so; under `CI=true` they run regardless and fail without a server. Every test works
//! in its own table, inside a schema of its own for this test run.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration as StdDuration;

use api_tokens::sqlx::{self, postgres::PgConnectOptions, postgres::PgPoolOptions};
use api_tokens::{ApiTokens, AuthError, NewToken, PostgresStore, StoreErrorKind};

mod common;

use common::proxy::{Proxy, proxy_to_server};
use common::{pool_for, rand_u32, run_schema, url};

/// A fresh, migrated store in a table of its own.
async fn store_in(app: &str) -> PostgresStore {
    let pool = pool_for(&url(), app, 4).await;
    let table = format!("{}.t_{:08x}", run_schema(), rand_u32());
    let store = PostgresStore::with_table(pool, &table).expect("valid table name");
    store.migrate().await.expect("migrate");
    store
}

async fn store() -> PostgresStore {
    store_in("api_tokens_tests").await
}

#[cfg(feature = "testkit")]
api_tokens::conformance_tests!(
    #[cfg_attr(
        not(api_tokens_postgres_tests),
        ignore = "set API_TOKENS_TEST_POSTGRES_URL to run the PostgreSQL suite"
    )]
    store()
);

/// The PostgreSQL store does every optional operation.
#[cfg(feature = "testkit")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(api_tokens_postgres_tests),
    ignore = "set API_TOKENS_TEST_POSTGRES_URL to run the PostgreSQL suite"
)]
async fn every_optional_operation_is_supported() {
    api_tokens::testkit::every_optional_operation_is_supported(store().await).await;
}

#[tokio::test]
#[cfg_attr(
    not(api_tokens_postgres_tests),
    ignore = "set API_TOKENS_TEST_POSTGRES_URL to run the PostgreSQL suite"
)]
async fn tokens_survive_a_new_pool() {
    let store = store().await;
    let table = store.table().to_owned();
    let tokens = ApiTokens::new(store.clone(), "api_prod").unwrap();
    let issued = tokens.issue(NewToken::new("alice", "ci")).await.unwrap();
    store.pool().close().await;

    let pool = pool_for(&url(), "api_tokens_tests", 2).await;
    let fresh = PostgresStore::with_table(pool, &table).unwrap();
    fresh.migrate().await.expect("migrating again is a no-op");
    let tokens = ApiTokens::new(fresh, "api_prod").unwrap();
    let who = tokens
        .verify(issued.plaintext.expose_secret())
        .await
        .expect("verified through a fresh pool");
    assert_eq!(who.owner(), "alice");
}

#[tokio::test]
#[cfg_attr(
    not(api_tokens_postgres_tests),
    ignore = "set API_TOKENS_TEST_POSTGRES_URL to run the PostgreSQL suite"
)]
async fn concurrent_migrations_agree() {
    let store = store().await;
    let table = format!("{}.m_{:08x}", run_schema(), rand_u32());
    let stores: Vec<_> = (0..4)
        .map(|_| PostgresStore::with_table(store.pool().clone(), &table).unwrap())
        .collect();
    let tasks: Vec<_> = stores
        .iter()
        .cloned()
        .map(|s| tokio::spawn(async move { s.migrate().await }))
        .collect();
    for t in tasks {
        t.await
            .unwrap()
            .expect("every concurrent migration succeeds");
    }
    let versions: Vec<i32> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT version FROM {table}_schema ORDER BY version"
    )))
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert_eq!(
        versions,
        [1, 2, 3, 4, 5, 6],
        "each schema version is recorded once"
    );
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {table}_schema (version) VALUES (99)"
    )))
    .execute(store.pool())
    .await
    .unwrap();
    let err = stores[0]
        .migrate()
        .await
        .expect_err("a newer schema is refused");
    assert!(err.to_string().contains("newer"), "{err}");
}

/// `(idx_scan, n_tup_upd)` of a table from `pg_stat_user_tables`, once `expected_scans`
/// have been flushed (backends flush their statistics when they exit) or 10 s have passed.
#[cfg(feature = "testkit")]
async fn table_stats(table: &str, expected_scans: i64) -> (i64, i64) {
    let pool = pool_for(&url(), "api_tokens_stats", 1).await;
    let (schema, name) = table.split_once('.').unwrap();
    let mut stats = (0, 0);
    for _ in 0..100 {
        stats = sqlx::query_as(
            "SELECT COALESCE(idx_scan, 0), n_tup_upd FROM pg_stat_user_tables \
             WHERE schemaname = $1 AND relname = $2",
        )
        .bind(schema)
        .bind(name)
        .fetch_one(&pool)
        .await
        .unwrap();
        if stats.0 >= expected_scans {
            break;
        }
        sqlx::query("SELECT pg_stat_clear_snapshot()")
            .execute(&pool)
            .await
            .unwrap();
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    }
    stats
}

#[cfg(feature = "testkit")]
#[tokio::test]
#[cfg_attr(
    not(api_tokens_postgres_tests),
    ignore = "set API_TOKENS_TEST_POSTGRES_URL to run the PostgreSQL suite"
)]
async fn verify_is_one_indexed_select_and_writes_once_per_interval() {
    use api_tokens::testkit::CountingStore;

    let store = store().await;
    let table = store.table().to_owned();
    let pool = store.pool().clone();
    let counting = CountingStore::new(store);
    let calls = counting.calls();
    let tokens = ApiTokens::new(counting, "api_prod").unwrap();
    let issued = tokens.issue(NewToken::new("alice", "busy")).await.unwrap();
    let plain = issued.plaintext.expose_secret();
    for _ in 0..1000 {
        tokens.verify(plain).await.unwrap();
    }
    pool.close().await; // the backends exit and flush their statistics
    let (scans, updates) = table_stats(&table, 1001).await;
    assert_eq!(
        updates, 1,
        "1 000 verifies inside the interval wrote last use once"
    );
    assert_eq!(
        scans,
        1000 + 1,
        "one primary-key index scan per verify, plus the one UPDATE"
    );
    assert_eq!(calls.get.load(Ordering::SeqCst), 1000);
    assert_eq!(calls.record_last_use.load(Ordering::SeqCst), 1);
}

#[tokio::test]
#[cfg_attr(
    not(api_tokens_postgres_tests),
    ignore = "set API_TOKENS_TEST_POSTGRES_URL to run the PostgreSQL suite"
)]
async fn terminated_backends_fail_closed_and_recover() {
    let app = format!("api_tokens_fault_{:08x}", rand_u32());
    let store = store_in(&app).await;
    let admin = pool_for(&url(), "api_tokens_admin", 1).await;
    let tokens = ApiTokens::new(store.clone(), "api_prod").unwrap();
    let mut plains = Vec::new();
    for i in 0..20 {
        let t = tokens
            .issue(NewToken::new("alice", format!("t{i}")))
            .await
            .unwrap();
        plains.push(t.plaintext.expose_secret().to_owned());
    }
    let plains = Arc::new(plains);
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..4 {
        let (tokens, plains, stop) = (tokens.clone(), plains.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let (mut ok, mut unavailable, mut i) = (0u32, 0u32, w);
            while !stop.load(Ordering::SeqCst) {
                match tokens.verify(&plains[i % plains.len()]).await {
                    Ok(_) => ok += 1,
                    Err(AuthError::Store(e)) => {
                        assert_ne!(e.kind(), StoreErrorKind::DuplicateId);
                        unavailable += 1;
                    }
                    Err(other) => {
                        panic!("a valid token was refused for the wrong reason: {other:?}")
                    }
                }
                i += 1;
            }
            (ok, unavailable)
        }));
    }
    tokio::time::sleep(StdDuration::from_millis(200)).await;
    for _ in 0..5 {
        let killed: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
        )
        .bind(&app)
        .fetch_all(&admin)
        .await
        .unwrap();
        assert!(!killed.is_empty(), "the store's backends were found");
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    }
    tokio::time::sleep(StdDuration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    let (mut ok, mut unavailable) = (0, 0);
    for w in workers {
        let (o, u) = w.await.expect("no verifier panicked");
        ok += o;
        unavailable += u;
    }
    eprintln!("during terminations: {ok} verified, {unavailable} failed closed");
    for p in plains.iter() {
        tokens
            .verify(p)
            .await
            .expect("every token verifies after the backends came back");
    }
    let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM {}",
        store.table()
    )))
    .fetch_one(&admin)
    .await
    .unwrap();
    assert_eq!(count, 20, "no token was lost");
}

/// A pool to the test server through `proxy`.
async fn proxied_pool(proxy: &Proxy) -> sqlx::PgPool {
    let options = PgConnectOptions::from_str(&url()).unwrap();
    PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(StdDuration::from_secs(1))
        .connect_with(options.host("127.0.0.1").port(proxy.addr.port()))
        .await
        .unwrap()
}

/// A token service over `direct`'s table, reached through `proxy`, with a 500 ms deadline.
async fn proxied_tokens(proxy: &Proxy, direct: &PostgresStore) -> ApiTokens<PostgresStore> {
    let store = PostgresStore::with_table(proxied_pool(proxy).await, direct.table())
        .unwrap()
        .with_deadline(StdDuration::from_millis(500));
    ApiTokens::new(store, "api_prod").unwrap()
}

#[tokio::test]
#[cfg_attr(
    not(api_tokens_postgres_tests),
    ignore = "set API_TOKENS_TEST_POSTGRES_URL to run the PostgreSQL suite"
)]
async fn an_unreachable_server_fails_closed_and_the_store_recovers() {
    let direct = store().await;
    let proxy = proxy_to_server().await;
    let proxied = proxied_pool(&proxy).await;
    let store = PostgresStore::with_table(proxied, direct.table()).unwrap();
    let tokens = ApiTokens::new(store, "api_prod").unwrap();
    let issued = tokens.issue(NewToken::new("alice", "ci")).await.unwrap();
    let plain = issued.plaintext.expose_secret();
    tokens
        .verify(plain)
        .await
        .expect("verifies while the server is up");

    proxy.down();
    for _ in 0..3 {
        let err = tokens
            .verify(plain)
            .await
            .expect_err("must fail closed while the server is unreachable");
        assert!(
            matches!(&err, AuthError::Store(e) if e.kind() == StoreErrorKind::Unavailable),
            "{err:?}"
        );
        assert_eq!(err.status(), 503);
    }
    let err = tokens
        .issue(NewToken::new("alice", "while-down"))
        .await
        .unwrap_err();
    assert_eq!(err.status(), 503);

    proxy.restore();
    let mut recovered = false;
    for _ in 0..20 {
        if tokens.verify(plain).await.is_ok() {
            recovered = true;
            break;
        }
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    }
    assert!(
        recovered,
        "the store recovers by itself once the server is back"
    );
    let rows: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM {}",
        direct.table()
    )))
    .fetch_one(direct.pool())
    .await
    .unwrap();
    assert_eq!(rows, 1, "nothing was lost and nothing half-written");
}

#[tokio::test]
#[cfg_attr(
    not(api_tokens_postgres_tests),
    ignore = "set API_TOKENS_TEST_POSTGRES_URL to run the PostgreSQL suite"
)]
async fn a_client_cut_off_mid_transaction_does_not_block_revocation() {
    let direct = store().await;
    let proxy = proxy_to_server().await;
    let cut_off = proxied_tokens(&proxy, &direct).await;
    let issued = cut_off.issue(NewToken::new("alice", "ci")).await.unwrap();
    let id = issued.record.id;

    // The revocation locks the row (`SELECT … FOR UPDATE`) and sends its `UPDATE`, then the
    // network stalls before the server runs it: the client gives up at its deadline, and
    // its transaction is left open on the server, holding the row lock.
    proxy.stall_after(b"SET owner = ");
    let err = cut_off
        .revoke("alice", id, Some("cut off"))
        .await
        .expect_err("the network stalled mid-transaction");
    assert_eq!(err.status(), 503, "{err}");

    // The server ends that transaction by itself soon after, so another instance can revoke
    // the token: a stolen token must not stay valid because a peer lost its network.
    let other = ApiTokens::new(direct, "api_prod").unwrap();
    let started = std::time::Instant::now();
    other
        .revoke("alice", id, Some("leaked"))
        .await
        .expect("revocation is not blocked by the cut-off client's locks");
    assert!(
        started.elapsed() < StdDuration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(
        other.verify(issued.plaintext.expose_secret()).await,
        Err(AuthError::Revoked { .. })
    ));
    proxy.stall(false);
}

#[tokio::test]
#[cfg_attr(
    not(api_tokens_postgres_tests),
    ignore = "set API_TOKENS_TEST_POSTGRES_URL to run the PostgreSQL suite"
)]
async fn migrate_waits_for_the_migration_lock_no_longer_than_the_deadline() {
    let pool = pool_for(&url(), "api_tokens_tests", 3).await;
    // Another instance holds the migration lock (its migration never ends).
    let mut holder = pool.begin().await.unwrap();
    let key = i64::from(crc32fast::hash(b"api_tokens:migrate"));
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(key)
        .execute(&mut *holder)
        .await
        .unwrap();
    let table = format!("{}.migrate_{:08x}", run_schema(), rand_u32());
    let store = PostgresStore::with_table(pool.clone(), &table)
        .unwrap()
        .with_deadline(StdDuration::from_millis(300));
    let started = std::time::Instant::now();
    let err = store.migrate().await.expect_err("the lock is held");
    assert_eq!(err.kind(), StoreErrorKind::Unavailable, "{err}");
    assert!(
        started.elapsed() < StdDuration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    holder.rollback().await.unwrap();
    store
        .migrate()
        .await
        .expect("migrates once the lock is free");
}

#[tokio::test]
#[cfg_attr(
    not(api_tokens_postgres_tests),
    ignore = "set API_TOKENS_TEST_POSTGRES_URL to run the PostgreSQL suite"
)]
async fn an_unreachable_url_is_a_store_error() {
    let err = PostgresStore::connect("postgres://nobody@127.0.0.1:1/none")
        .await
        .expect_err("nothing listens on port 1");
    assert_eq!(err.kind(), StoreErrorKind::Unavailable, "{err}");
}

#[tokio::test]
#[cfg_attr(
    not(api_tokens_postgres_tests),
    ignore = "set API_TOKENS_TEST_POSTGRES_URL to run the PostgreSQL suite"
)]
async fn revoke_is_atomic_under_racing_revokes() {
    let tokens = ApiTokens::new(store().await, "api_prod").unwrap();
    for _ in 0..10 {
        let issued = tokens.issue(NewToken::new("alice", "raced")).await.unwrap();
        let id = issued.record.id;
        let racers: Vec<_> = (0..4)
            .map(|_| {
                let tokens = tokens.clone();
                tokio::spawn(async move { tokens.revoke("alice", id, None).await })
            })
            .collect();
        let mut wins = 0;
        for r in racers {
            match r.await.unwrap() {
                Ok(()) => wins += 1,
                Err(api_tokens::Error::AlreadyRevoked { .. }) => {}
                Err(e) => panic!("unexpected: {e:?}"),
            }
        }
        assert_eq!(wins, 1, "exactly one racing revoke wins");
    }
}

#[tokio::test]
#[cfg_attr(
    not(api_tokens_postgres_tests),
    ignore = "set API_TOKENS_TEST_POSTGRES_URL to run the PostgreSQL suite"
)]
async fn a_silent_network_fails_within_the_deadline_and_recovers() {
    let direct = store().await;
    let proxy = proxy_to_server().await;
    let deadline = StdDuration::from_millis(500);
    let tokens = proxied_tokens(&proxy, &direct).await;
    let issued = tokens.issue(NewToken::new("alice", "ci")).await.unwrap();
    let plain = issued.plaintext.expose_secret();
    tokens
        .verify(plain)
        .await
        .expect("verifies while the network works");

    proxy.stall(true);
    for _ in 0..3 {
        let started = std::time::Instant::now();
        let err = tokens
            .verify(plain)
            .await
            .expect_err("no answer: fail closed");
        let waited = started.elapsed();
        assert!(
            matches!(&err, AuthError::Store(e) if e.kind() == StoreErrorKind::Unavailable),
            "{err:?}"
        );
        assert!(
            waited < deadline + StdDuration::from_millis(500),
            "waited {waited:?}"
        );
    }
    let started = std::time::Instant::now();
    let err = tokens
        .issue(NewToken::new("alice", "while stalled"))
        .await
        .unwrap_err();
    assert_eq!(err.status(), 503);
    assert!(started.elapsed() < deadline + StdDuration::from_millis(500));

    proxy.stall(false);
    let mut recovered = false;
    for _ in 0..40 {
        if tokens.verify(plain).await.is_ok() {
            recovered = true;
            break;
        }
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    }
    assert!(
        recovered,
        "verification recovers once the network forwards again"
    );
}

#[tokio::test]
#[cfg_attr(
    not(api_tokens_postgres_tests),
    ignore = "set API_TOKENS_TEST_POSTGRES_URL to run the PostgreSQL suite"
)]
async fn a_data_error_is_never_unavailable() {
    use api_tokens::TokenStore;
    let store = store().await;
    // Straight to the store, past the service's validation: PostgreSQL refuses the NUL
    // byte with SQLSTATE 22021, a data error, which must not read as "try again later".
    let filter =
        api_tokens::store::ListFilter::new("api_prod", "a\u{0}b", time::OffsetDateTime::now_utc());
    let err = store.list(&filter).await.expect_err("a NUL byte in text");
    assert_eq!(err.kind(), StoreErrorKind::Other, "{err}");
    assert_eq!(err.status(), 500);
    // Through the service it never reaches the store: a 422 naming the field.
    let tokens = ApiTokens::new(store, "api_prod").unwrap();
    let err = tokens
        .list(&api_tokens::ListRequest::new("a\u{0}b"))
        .await
        .unwrap_err();
    assert_eq!(err.status(), 422);
    assert!(err.validation().is_some_and(|v| v.has("owner")));
}

#[tokio::test]
#[cfg_attr(
    not(api_tokens_postgres_tests),
    ignore = "set API_TOKENS_TEST_POSTGRES_URL to run the PostgreSQL suite"
)]
async fn a_reserved_word_is_a_usable_table_name() {
    let pool = pool_for(&url(), "api_tokens_tests", 2).await;
    // PostgreSQL refuses to create schemas named pg_*: refused here, not at migrate.
    let err = PostgresStore::with_table(pool.clone(), "pg_tokens.t").unwrap_err();
    assert!(err.to_string().contains("reserves"), "{err}");
    let schema = format!("{}_r{:08x}", run_schema(), rand_u32());
    let store = PostgresStore::with_table(pool, &format!("{schema}.user")).unwrap();
    store.migrate().await.expect("migrate a table named user");
    let tokens = ApiTokens::new(store, "api_prod").unwrap();
    let issued = tokens.issue(NewToken::new("alice", "x")).await.unwrap();
    tokens
        .verify(issued.plaintext.expose_secret())
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(tokens.store().pool())
        .await
        .unwrap();
}
