//! `CachedStore` over PostgreSQL: the conformance suite, the trigger that announces every
//! committed change (and only committed ones, whoever made them), revocations reaching a
//! second instance within milliseconds, and failing closed when the listener's connection
//! is terminated, cut or silently stalled.

use std::str::FromStr;
use std::time::{Duration, Instant};

use api_tokens::sqlx::postgres::{PgConnectOptions, PgListener};
use api_tokens::sqlx::{self, AssertSqlSafe};
use api_tokens::{ApiTokens, AuthError, CachedStore, NewToken, PostgresStore};

mod common;

use common::proxy::proxy_to_server;
use common::{pool_for, rand_u32, run_schema, url};

/// A fresh, migrated store in a table of its own.
async fn store() -> PostgresStore {
    let pool = pool_for(&url(), "api_tokens_cache_tests", 4).await;
    let table = format!("{}.c_{:08x}", run_schema(), rand_u32());
    let store = PostgresStore::with_table(pool, &table).expect("a valid table name");
    store.migrate().await.expect("migrate");
    store
}

/// The same table through a pool of its own (another instance).
async fn same_table(store: &PostgresStore) -> PostgresStore {
    let pool = pool_for(&url(), "api_tokens_cache_tests", 4).await;
    PostgresStore::with_table(pool, store.table()).unwrap()
}

/// A cache over `store` listening on its table, with quick heartbeats.
fn cached(store: PostgresStore) -> CachedStore<PostgresStore> {
    let invalidations = store
        .invalidations()
        .heartbeat(Duration::from_millis(50))
        .lease(Duration::from_millis(300));
    CachedStore::builder(store)
        .postgres(invalidations)
        .build()
        .expect("a cache")
}

/// Wait until `cache` trusts its invalidations (its first heartbeat came back).
async fn until_trusted(cache: &CachedStore<PostgresStore>) -> Duration {
    let started = Instant::now();
    while !cache.is_trusted() {
        assert!(started.elapsed() < Duration::from_secs(10), "never trusted");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    started.elapsed()
}

#[cfg(feature = "testkit")]
api_tokens::conformance_tests!(
    #[cfg_attr(
        not(api_tokens_postgres_tests),
        ignore = "set API_TOKENS_TEST_POSTGRES_URL to run the PostgreSQL suite"
    )]
    async {
        cached(store().await)
    }
);

/// The cache over PostgreSQL does every optional operation.
#[cfg(feature = "testkit")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(api_tokens_postgres_tests),
    ignore = "set API_TOKENS_TEST_POSTGRES_URL to run the PostgreSQL suite"
)]
async fn every_optional_operation_is_supported() {
    api_tokens::testkit::every_optional_operation_is_supported(cached(store().await)).await;
}

macro_rules! pg_test {
    ($(#[$m:meta])* async fn $name:ident() $body:block) => {
        $(#[$m])*
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        #[cfg_attr(
            not(api_tokens_postgres_tests),
            ignore = "set API_TOKENS_TEST_POSTGRES_URL to run the PostgreSQL suite"
        )]
        async fn $name() $body
    };
}

/// The next notification on `listener`, if one comes within `within`.
async fn next(listener: &mut PgListener, within: Duration) -> Option<String> {
    match tokio::time::timeout(within, listener.recv()).await {
        Ok(Ok(n)) => Some(n.payload().to_owned()),
        _ => None,
    }
}

pg_test! {
    /// Inserts, changes, deletes and truncation are announced once committed, by whoever
    /// made them; a last-use write and a rolled-back change are not.
    async fn the_trigger_announces_every_committed_change() {
        let store = store().await;
        let mut listener = PgListener::connect_with(store.pool()).await.unwrap();
        listener
            .listen(&store.notification_channel().await.unwrap())
            .await
            .unwrap();
        let tokens = ApiTokens::new(store.clone(), "dz").unwrap();
        let quiet = Duration::from_millis(300);

        let issued = tokens.issue(NewToken::new("u1", "ci")).await.unwrap();
        let hex = issued.record.id.to_string();
        assert_eq!(next(&mut listener, Duration::from_secs(5)).await.as_deref(), Some(&*hex));

        tokens.verify(issued.plaintext.expose_secret()).await.unwrap(); // writes last use
        assert_eq!(next(&mut listener, quiet).await, None, "a last use is not a change");

        let table = store.table().to_owned();
        // An administrator's SQL: a limit set is a change, and so is a token starting or
        // stopping to count its uses; a use counted is not.
        for (set, announced) in [
            ("rate_limit = 1, rate_per_seconds = 60", true),
            ("remaining = 5", true),
            ("remaining = remaining - 1", false),
            ("remaining = NULL", true),
        ] {
            sqlx::query(AssertSqlSafe(format!("UPDATE {table} SET {set}")))
                .execute(store.pool())
                .await
                .unwrap();
            let heard = next(&mut listener, if announced { Duration::from_secs(5) } else { quiet });
            assert_eq!(heard.await.as_deref(), announced.then_some(&*hex), "{set}");
        }
        let mut tx = store.pool().begin().await.unwrap();
        sqlx::query(AssertSqlSafe(format!("UPDATE {table} SET revoked_at = now()")))
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.rollback().await.unwrap();
        assert_eq!(next(&mut listener, quiet).await, None, "nothing is sent for a rollback");

        // An administrator's SQL, not this crate.
        sqlx::query(AssertSqlSafe(format!("UPDATE {table} SET expires_at = now()")))
            .execute(store.pool())
            .await
            .unwrap();
        assert_eq!(next(&mut listener, Duration::from_secs(5)).await.as_deref(), Some(&*hex));
        sqlx::query(AssertSqlSafe(format!("DELETE FROM {table}")))
            .execute(store.pool())
            .await
            .unwrap();
        assert_eq!(next(&mut listener, Duration::from_secs(5)).await.as_deref(), Some(&*hex));
        sqlx::query(AssertSqlSafe(format!("TRUNCATE {table}")))
            .execute(store.pool())
            .await
            .unwrap();
        assert_eq!(next(&mut listener, Duration::from_secs(5)).await.as_deref(), Some("*"));
    }
}

pg_test! {
    /// Two instances, each with its own pool and cache: a revocation on one is refused by
    /// the other within milliseconds, and never accepted after the time it takes.
    async fn a_revocation_reaches_another_instance_within_milliseconds() {
        let a_store = store().await;
        let b_store = same_table(&a_store).await;
        let a = ApiTokens::new(cached(a_store), "dz").unwrap();
        let b = ApiTokens::new(cached(b_store), "dz").unwrap();
        until_trusted(a.store()).await;
        until_trusted(b.store()).await;
        let mut took = Vec::new();
        for i in 0..50 {
            let issued = a.issue(NewToken::new("u1", format!("t{i}"))).await.unwrap();
            let t = issued.plaintext.expose_secret();
            b.verify(t).await.expect("verifies on b");
            b.verify(t).await.expect("cached on b");
            a.revoke("u1", issued.record.id, None).await.unwrap();
            let returned = Instant::now();
            loop {
                match b.verify(t).await {
                    Err(AuthError::Revoked { .. }) => break,
                    Ok(_) => assert!(
                        returned.elapsed() < Duration::from_millis(300),
                        "b still accepted the token {:?} after the revocation returned",
                        returned.elapsed()
                    ),
                    Err(e) => panic!("{e:?}"),
                }
                tokio::task::yield_now().await;
            }
            took.push(returned.elapsed());
        }
        took.sort();
        let max = *took.last().unwrap();
        println!("revocation reached the other instance in p50 {:?}, max {max:?}", took[25]);
        assert!(b.store().stats().hits > 0, "b answered from its cache");
        assert!(b.store().stats().invalidations_received >= 50);
    }
}

pg_test! {
    /// A revocation written by another service's SQL reaches the cache too.
    async fn a_revocation_by_any_writer_reaches_the_cache() {
        let store = store().await;
        let tokens = ApiTokens::new(cached(store.clone()), "dz").unwrap();
        until_trusted(tokens.store()).await;
        let issued = tokens.issue(NewToken::new("u1", "ci")).await.unwrap();
        let t = issued.plaintext.expose_secret();
        tokens.verify(t).await.unwrap();
        tokens.verify(t).await.unwrap();
        sqlx::query(AssertSqlSafe(format!(
            "UPDATE {} SET revoked_at = now() WHERE id = $1",
            store.table()
        )))
        .bind(issued.record.id.as_bytes().as_slice())
        .execute(store.pool())
        .await
        .unwrap();
        let started = Instant::now();
        while tokens.verify(t).await.is_ok() {
            assert!(started.elapsed() < Duration::from_millis(300), "never heard of it");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

pg_test! {
    /// The listener's backend is terminated: the cache stops answering at once (every read
    /// goes to the store, so a revocation made meanwhile is refused as soon as it returns)
    /// and recovers by itself.
    async fn a_terminated_listener_fails_closed_and_recovers() {
        let a_store = store().await;
        let app = format!("api_tokens_listener_{:08x}", rand_u32());
        let b_store = same_table(&a_store).await;
        let listen = PgConnectOptions::from_str(&url()).unwrap().application_name(&app);
        let invalidations = b_store
            .invalidations()
            .connect_options(listen)
            .heartbeat(Duration::from_millis(50))
            .lease(Duration::from_millis(300));
        let b = ApiTokens::new(
            CachedStore::builder(b_store).postgres(invalidations).build().unwrap(),
            "dz",
        )
        .unwrap();
        let a = ApiTokens::new(a_store.clone(), "dz").unwrap();
        until_trusted(b.store()).await;
        let issued = a.issue(NewToken::new("u1", "ci")).await.unwrap();
        let t = issued.plaintext.expose_secret();
        b.verify(t).await.unwrap();

        let terminated: i64 = sqlx::query_scalar(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
        )
        .bind(&app)
        .fetch_one(a_store.pool())
        .await
        .unwrap();
        assert_eq!(terminated, 1, "the listener's backend");
        let cut = Instant::now();
        a.revoke("u1", issued.record.id, None).await.unwrap();
        let returned = Instant::now();
        // Within the lease at worst, b refuses; in practice the lost connection is seen at once.
        loop {
            match b.verify(t).await {
                Err(AuthError::Revoked { .. }) => break,
                Ok(_) => assert!(returned.elapsed() < Duration::from_millis(300)),
                Err(e) => panic!("{e:?}"),
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let recovered = until_trusted(b.store()).await + cut.elapsed();
        println!("listener terminated: trusted again after {recovered:?}");
        assert!(b.store().stats().flushed_on_doubt >= 1);
        let heard = b.store().stats().invalidations_received;
        let fresh = a.issue(NewToken::new("u1", "after")).await.unwrap();
        // The insert is announced too: wait for it, or it could drop the entry filled next.
        let started = Instant::now();
        while b.store().stats().invalidations_received == heard {
            assert!(started.elapsed() < Duration::from_secs(5), "the insert was never heard");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        b.verify(fresh.plaintext.expose_secret()).await.unwrap();
        let hits = b.store().stats().hits;
        b.verify(fresh.plaintext.expose_secret()).await.unwrap();
        assert_eq!(b.store().stats().hits, hits + 1, "answering from the cache again");
    }
}

pg_test! {
    /// The listener reaches PostgreSQL through a proxy that first stalls (forwarding
    /// nothing, as a partition would) and then cuts every connection: while it stalls the
    /// cache stops answering once its lease runs out, so no revocation made meanwhile is
    /// missed; after a cut it stops at once; when the network is back it recovers.
    async fn a_stalled_or_cut_listener_fails_closed_and_recovers() {
        let a_store = store().await;
        let b_store = same_table(&a_store).await;
        let proxy = proxy_to_server().await;
        let listen = PgConnectOptions::from_str(&url())
            .unwrap()
            .host("127.0.0.1")
            .port(proxy.addr.port());
        let lease = Duration::from_millis(300);
        let invalidations = b_store
            .invalidations()
            .connect_options(listen)
            .heartbeat(Duration::from_millis(50))
            .lease(lease);
        let b = ApiTokens::new(
            CachedStore::builder(b_store).postgres(invalidations).build().unwrap(),
            "dz",
        )
        .unwrap();
        let a = ApiTokens::new(a_store, "dz").unwrap();
        until_trusted(b.store()).await;

        for fault in ["stall", "cut"] {
            let issued = a.issue(NewToken::new("u1", fault)).await.unwrap();
            let t = issued.plaintext.expose_secret();
            b.verify(t).await.unwrap();
            b.verify(t).await.unwrap();
            match fault {
                "stall" => proxy.stall(true),
                _ => proxy.down(),
            }
            a.revoke("u1", issued.record.id, None).await.unwrap();
            let returned = Instant::now();
            loop {
                match b.verify(t).await {
                    Err(AuthError::Revoked { .. }) => break,
                    Ok(_) => assert!(
                        returned.elapsed() < lease + Duration::from_millis(50),
                        "{fault}: accepted {:?} after the revocation returned",
                        returned.elapsed()
                    ),
                    Err(e) => panic!("{e:?}"),
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            println!("{fault}: refused {:?} after the revocation returned", returned.elapsed());
            assert!(!b.store().is_trusted(), "{fault}: not trusted meanwhile");
            let restored = Instant::now();
            proxy.stall(false);
            proxy.restore();
            until_trusted(b.store()).await;
            println!("{fault}: trusted again {:?} after the network was back", restored.elapsed());
        }
    }
}

pg_test! {
    /// The channel is the table's, however it is named: a cache that names the table
    /// without its schema (through the search path) hears of changes made by a writer that
    /// names it with its schema.
    async fn the_channel_is_the_tables_however_it_is_named() {
        let writer_store = store().await;
        let qualified = writer_store.table().to_owned();
        let (schema, bare) = qualified.split_once('.').unwrap();
        let options = PgConnectOptions::from_str(&url())
            .unwrap()
            .options([("search_path", schema)]);
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await
            .unwrap();
        let reader_store = PostgresStore::with_table(pool, bare).unwrap();
        assert_eq!(
            reader_store.notification_channel().await.unwrap(),
            writer_store.notification_channel().await.unwrap()
        );
        let reader = ApiTokens::new(cached(reader_store), "dz").unwrap();
        let writer = ApiTokens::new(writer_store, "dz").unwrap();
        until_trusted(reader.store()).await;
        let issued = writer.issue(NewToken::new("u1", "ci")).await.unwrap();
        let t = issued.plaintext.expose_secret();
        reader.verify(t).await.unwrap();
        reader.verify(t).await.unwrap();
        writer.revoke("u1", issued.record.id, None).await.unwrap();
        let returned = Instant::now();
        while reader.verify(t).await.is_ok() {
            assert!(returned.elapsed() < Duration::from_millis(300), "never heard of it");
            tokio::task::yield_now().await;
        }
    }
}

pg_test! {
    /// Without the trigger (dropped, or disabled) no heartbeat is sent, so the cache stops
    /// answering within its lease instead of trusting a channel nobody notifies; a
    /// notification it does not understand empties it.
    async fn no_trigger_no_trust_and_an_unknown_notification_empties_the_cache() {
        let store = store().await;
        let channel = store.notification_channel().await.unwrap();
        let tokens = ApiTokens::new(cached(store.clone()), "dz").unwrap();
        until_trusted(tokens.store()).await;
        let issued = tokens.issue(NewToken::new("u1", "ci")).await.unwrap();
        // The insert's own notification drops the id once; cache it after that.
        tokio::time::sleep(Duration::from_millis(100)).await;
        tokens.verify(issued.plaintext.expose_secret()).await.unwrap();
        assert_eq!(tokens.store().stats().entries, 1);
        sqlx::query("SELECT pg_notify($1, 'v2:something-new')")
            .bind(&channel)
            .execute(store.pool())
            .await
            .unwrap();
        let started = Instant::now();
        while tokens.store().stats().entries > 0 {
            assert!(started.elapsed() < Duration::from_secs(2), "not emptied");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }

        let (schema, bare) = store.table().split_once('.').unwrap();
        sqlx::raw_sql(AssertSqlSafe(format!(
            "ALTER TABLE {schema}.{bare} DISABLE TRIGGER {bare}_changes"
        )))
        .execute(store.pool())
        .await
        .unwrap();
        let started = Instant::now();
        while tokens.store().is_trusted() {
            assert!(started.elapsed() < Duration::from_secs(2), "still trusted");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        sqlx::raw_sql(AssertSqlSafe(format!(
            "ALTER TABLE {schema}.{bare} ENABLE ALWAYS TRIGGER {bare}_changes"
        )))
        .execute(store.pool())
        .await
        .unwrap();
        until_trusted(tokens.store()).await;
    }
}
