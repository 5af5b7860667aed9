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
