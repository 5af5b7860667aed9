//! The conformance suite against `SqliteStore` on a real file and on `:memory:`, plus what
//! only a database can show: persistence across pools, migrations and damaged rows.

use api_tokens::sqlx;
use api_tokens::{ApiTokens, AuthError, NewToken, SqliteStore, StoreErrorKind, TokenStore};

/// A fresh database file in its own temporary directory, kept alive for the test's duration
/// by leaking the directory handle (the OS temp dir is cleaned by the system).
async fn file_store() -> SqliteStore {
    let dir = tempfile::tempdir().expect("temp dir").keep();
    let url = format!("sqlite://{}", dir.join("tokens.db").display());
    let store = SqliteStore::connect(&url)
        .await
        .expect("open the SQLite file");
    store.migrate().await.expect("migrate");
    store
}

async fn memory_store() -> SqliteStore {
    let store = SqliteStore::connect("sqlite::memory:")
        .await
        .expect("open :memory:");
    store.migrate().await.expect("migrate");
    store
}

/// The conformance suite (feature `testkit`) on a file, on `:memory:`, and type-erased.
#[cfg(feature = "testkit")]
mod conformance {
    mod file {
        api_tokens::conformance_tests!(super::super::file_store());
    }

    mod memory {
        api_tokens::conformance_tests!(super::super::memory_store());
    }

    mod dynamic {
        api_tokens::conformance_tests!(async {
            api_tokens::DynTokenStore::new(super::super::file_store().await)
        });
    }

    /// The SQLite store does every optional operation.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_optional_operation_is_supported() {
        use api_tokens::testkit::every_optional_operation_is_supported as check;
        check(super::file_store().await).await;
        check(api_tokens::DynTokenStore::new(super::memory_store().await)).await;
    }
}

#[tokio::test]
async fn tokens_survive_a_new_pool() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("persist.db").display());
    let plain = {
        let store = SqliteStore::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        let tokens = ApiTokens::new(store.clone(), "dz").unwrap();
        let issued = tokens.issue(NewToken::new("alice", "ci")).await.unwrap();
        tokens
            .verify(issued.plaintext.expose_secret())
            .await
            .unwrap();
        store.pool().close().await;
        issued.plaintext.expose_secret().to_owned()
    };
    let store = SqliteStore::connect(&url).await.unwrap();
    store.migrate().await.expect("migrating again is a no-op");
    let tokens = ApiTokens::new(store, "dz").unwrap();
    let who = tokens
        .verify(&plain)
        .await
        .expect("verified through a fresh pool");
    assert_eq!(who.owner(), "alice");
}

#[tokio::test]
async fn the_file_uses_wal_and_a_busy_timeout() {
    let store = file_store().await;
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(mode.to_lowercase(), "wal");
    let timeout: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(timeout, 5000);
}

#[tokio::test]
async fn concurrent_migrations_and_custom_tables() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("m.db").display());
    let a = SqliteStore::connect(&url).await.unwrap();
    let b = SqliteStore::connect(&url).await.unwrap();
    let (ra, rb) = tokio::join!(a.migrate(), b.migrate());
    ra.expect("first migration");
    rb.expect("concurrent migration");
    let custom = SqliteStore::with_table(a.pool().clone(), "other_tokens").unwrap();
    custom.migrate().await.unwrap();
    assert_eq!(custom.table(), "other_tokens");
    let tokens = ApiTokens::new(custom, "dz").unwrap();
    let issued = tokens.issue(NewToken::new("alice", "x")).await.unwrap();
    assert!(
        a.get(&issued.record.id).await.unwrap().is_none(),
        "tables are separate"
    );
    assert!(SqliteStore::with_table(a.pool().clone(), "x; DROP TABLE api_tokens").is_err());
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let store = memory_store().await;
    sqlx::query("INSERT INTO api_tokens_schema (version) VALUES (99)")
        .execute(store.pool())
        .await
        .unwrap();
    let err = store.migrate().await.expect_err("newer schema");
    assert!(err.to_string().contains("newer"), "{err}");
}

#[tokio::test]
async fn a_damaged_row_is_a_corrupt_error_not_a_panic() {
    let store = memory_store().await;
    let tokens = ApiTokens::new(store.clone(), "dz").unwrap();
    let issued = tokens.issue(NewToken::new("alice", "x")).await.unwrap();
    sqlx::query("UPDATE api_tokens SET scopes = 'bad scope!'")
        .execute(store.pool())
        .await
        .unwrap();
    let err = tokens
        .verify(issued.plaintext.expose_secret())
        .await
        .unwrap_err();
    match &err {
        AuthError::Store(e) => assert_eq!(e.kind(), StoreErrorKind::Corrupt),
        other => panic!("expected a store error, got {other:?}"),
    }
    assert_eq!(err.status(), 500);
}

#[tokio::test]
async fn a_closed_pool_fails_closed() {
    let store = memory_store().await;
    let tokens = ApiTokens::new(store.clone(), "dz").unwrap();
    let issued = tokens.issue(NewToken::new("alice", "x")).await.unwrap();
    store.pool().close().await;
    let err = tokens
        .verify(issued.plaintext.expose_secret())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AuthError::Store(e) if e.kind() == StoreErrorKind::Unavailable),
        "{err:?}"
    );
    assert_eq!(err.status(), 503);
}

/// A token issued over `store` whose last use is older than the interval at the store's
/// next verification (the clock moves past the interval).
async fn stale(
    store: SqliteStore,
    policy: api_tokens::LastUseFailure,
) -> (ApiTokens<SqliteStore>, String) {
    let clock = api_tokens::ManualClock::new(time::OffsetDateTime::now_utc());
    let tokens = ApiTokens::builder(store, "dz")
        .clock(clock.clone())
        .last_use_failure(policy)
        .build()
        .unwrap();
    let issued = tokens.issue(NewToken::new("alice", "x")).await.unwrap();
    clock.advance(time::Duration::hours(1));
    (tokens, issued.plaintext.expose_secret().to_owned())
}

#[tokio::test]
async fn a_full_database_is_unavailable_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("full.db").display());
    let store = SqliteStore::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    let tokens = ApiTokens::new(store.clone(), "dz").unwrap();
    let kept = tokens.issue(NewToken::new("alice", "kept")).await.unwrap();
    // Its last use is written now, so that verifying it later only reads.
    tokens.verify(kept.plaintext.expose_secret()).await.unwrap();
    // Cap the file at its current size: the next write that needs a page finds it full.
    let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
        .fetch_one(store.pool())
        .await
        .unwrap();
    let options = SqliteStore::connect_options(&url)
        .unwrap()
        .pragma("max_page_count", pages.to_string());
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .connect_with(options)
        .await
        .unwrap();
    let full = ApiTokens::new(SqliteStore::new(pool), "dz").unwrap();
    let mut err = None;
    for i in 0..10_000 {
        if let Err(e) = full
            .issue(NewToken::new("alice", format!("filler {i:05}")))
            .await
        {
            err = Some(e);
            break;
        }
    }
    let err = err.expect("the database filled up");
    let store_err = err.store_error().expect("a store error");
    assert_eq!(store_err.kind(), StoreErrorKind::Unavailable, "{err}");
    assert_eq!((err.status(), err.code()), (503, "store_unavailable"));
    assert!(
        err.to_string().contains("full"),
        "the message says why: {err}"
    );
    full.verify(kept.plaintext.expose_secret())
        .await
        .expect("reading still works while the disk is full");
}

#[tokio::test]
async fn a_read_only_database_is_a_plain_500() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("ro.db").display());
    let store = SqliteStore::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    store.pool().close().await;
    let options = SqliteStore::connect_options(&url).unwrap().read_only(true);
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .connect_with(options)
        .await
        .unwrap();
    let tokens = ApiTokens::new(SqliteStore::new(pool), "dz").unwrap();
    let err = tokens.issue(NewToken::new("alice", "x")).await.unwrap_err();
    assert_eq!(err.status(), 500, "{err}");
    assert_eq!(
        err.store_error().map(|e| e.kind()),
        Some(StoreErrorKind::Other)
    );
    assert!(!err.to_string().contains("try again later"), "{err}");
}

#[tokio::test]
async fn a_held_write_lock_fails_writes_within_the_deadline_and_spares_reads() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("locked.db").display());
    let store = SqliteStore::connect(&url)
        .await
        .unwrap()
        .with_deadline(std::time::Duration::from_millis(300));
    store.migrate().await.unwrap();
    let (serving, plain) = stale(store.clone(), api_tokens::LastUseFailure::ServeRequest).await;
    let failing = ApiTokens::builder(store.clone(), "dz").build().unwrap();

    // Another process holds the write lock (a second pool on the same file).
    let other = SqliteStore::connect(&url).await.unwrap();
    let mut holder = other.pool().begin_with("BEGIN IMMEDIATE").await.unwrap();
    sqlx::query("UPDATE api_tokens SET name = name")
        .execute(&mut *holder)
        .await
        .unwrap();

    let started = std::time::Instant::now();
    let err = failing
        .issue(NewToken::new("alice", "blocked"))
        .await
        .unwrap_err();
    assert_eq!(err.status(), 503, "{err}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    let started = std::time::Instant::now();
    serving
        .verify(&plain)
        .await
        .expect("the token is readable; only its last use could not be written");
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    let err = failing.verify(&plain).await.unwrap_err();
    assert_eq!(
        err.status(),
        503,
        "by default a failed last-use write fails closed"
    );
    holder.rollback().await.unwrap();
    failing.verify(&plain).await.expect("writable again");
}

#[tokio::test]
async fn connect_existing_refuses_a_vanished_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vanishing.db");
    let url = format!("sqlite://{}", path.display());
    let err = SqliteStore::connect_existing(&url).await.unwrap_err();
    assert!(err.to_string().contains("could not open"), "{err}");
    assert!(!path.exists(), "no empty database was created");
    let created = SqliteStore::connect(&url).await.unwrap();
    created.migrate().await.unwrap();
    created.pool().close().await;
    let existing = SqliteStore::connect_existing(&url)
        .await
        .expect("the file exists now");
    existing
        .migrate()
        .await
        .expect("and it is the same database");
}

#[tokio::test]
async fn table_names_are_checked_when_the_store_is_built() {
    let store = memory_store().await;
    let err = SqliteStore::with_table(store.pool().clone(), "main.tokens").unwrap_err();
    assert!(err.to_string().contains("without a schema"), "{err}");
    // SQLite refuses to create tables named sqlite_*: refused here, not at migrate.
    let err = SqliteStore::with_table(store.pool().clone(), "SQLite_tokens").unwrap_err();
    assert!(err.to_string().contains("reserves"), "{err}");
    let reserved = SqliteStore::with_table(store.pool().clone(), "user").unwrap();
    reserved.migrate().await.expect("a reserved word is quoted");
    let tokens = ApiTokens::new(reserved, "dz").unwrap();
    let issued = tokens.issue(NewToken::new("alice", "x")).await.unwrap();
    tokens
        .verify(issued.plaintext.expose_secret())
        .await
        .unwrap();
}
