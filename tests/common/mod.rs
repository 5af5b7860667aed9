//! What the PostgreSQL-backed test files share: the URL variable and its CI rule, a schema
//! per test run, and pools.
#![allow(dead_code)] // each test file uses part of this

use std::str::FromStr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration as StdDuration;

use api_tokens::sqlx::{self, PgPool, postgres::PgConnectOptions, postgres::PgPoolOptions};
use time::OffsetDateTime;

pub mod proxy;
pub mod tcp_proxy;

pub const URL_VAR: &str = "API_TOKENS_TEST_POSTGRES_URL";

/// The server to test against. Only called by tests that are not ignored, that is when the
/// variable was set as the tests were built.
pub fn url() -> String {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!(
            "{URL_VAR} was set when the tests were built but is not set now; set it again, \
             e.g. postgres://postgres@127.0.0.1:5432/test"
        ),
    }
}

/// This run's schema: `api_tokens_test_<unix seconds>_<random>`.
pub fn run_schema() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        format!("api_tokens_test_{now}_{:08x}", rand_u32())
    })
}

pub fn rand_u32() -> u32 {
    let mut b = [0u8; 4];
    getrandom_fill(&mut b);
    u32::from_le_bytes(b)
}

pub fn getrandom_fill(buf: &mut [u8]) {
    // A test-only source: the standard library's randomly seeded hasher.
    use std::hash::{BuildHasher, RandomState};
    for chunk in buf.chunks_mut(8) {
        let v = RandomState::new().hash_one(0u8).to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
}

pub async fn pool_for(url: &str, app: &str, max: u32) -> PgPool {
    let options = PgConnectOptions::from_str(url)
        .unwrap_or_else(|e| panic!("{URL_VAR} is not a valid PostgreSQL URL: {e}"))
        .application_name(app);
    let pool = PgPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(StdDuration::from_secs(5))
        .connect_with(options)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {URL_VAR} is unreachable: {e}"));
    sweep_old_schemas(&pool).await;
    // `CREATE SCHEMA IF NOT EXISTS` races with itself; a loser finds the schema made.
    let create = format!("CREATE SCHEMA IF NOT EXISTS {}", run_schema());
    if let Err(e) = sqlx::raw_sql(sqlx::AssertSqlSafe(create))
        .execute(&pool)
        .await
    {
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
                .bind(run_schema())
                .fetch_one(&pool)
                .await
                .expect("look up this run's schema");
        assert!(exists, "could not create this run's schema: {e}");
    }
    pool
}

/// Drop schemas that earlier runs left behind more than two hours ago, once per run.
///
/// A schema is emptied a few tables at a time before it is dropped: `DROP SCHEMA … CASCADE`
/// takes a lock on every object in one transaction, and on a schema with thousands of
/// tables that exhausts the server's shared lock table ("out of shared memory"), failing
/// whatever else asks for a lock at that moment.
pub async fn sweep_old_schemas(pool: &PgPool) {
    static SWEPT: AtomicBool = AtomicBool::new(false);
    if SWEPT.swap(true, Ordering::SeqCst) {
        return;
    }
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'api\\_tokens\\_test\\_%'",
    )
    .fetch_all(pool)
    .await
    .expect("list schemas");
    let cutoff = OffsetDateTime::now_utc().unix_timestamp() - 2 * 3600;
    for name in names {
        let stamp = name.split('_').nth(3).and_then(|s| s.parse::<i64>().ok());
        if stamp.is_some_and(|s| s < cutoff)
            && let Err(e) = drop_schema_in_steps(pool, &name).await
        {
            eprintln!("could not drop the old test schema {name}: {e}");
        }
    }
}

/// Drop `schema`'s tables 50 to a statement, then the schema itself.
pub async fn drop_schema_in_steps(pool: &PgPool, schema: &str) -> Result<(), sqlx::Error> {
    loop {
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') LIMIT 50",
        )
        .bind(schema)
        .fetch_all(pool)
        .await?;
        if tables.is_empty() {
            break;
        }
        let drop = format!("DROP TABLE IF EXISTS {} CASCADE", tables.join(", "));
        sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
            .execute(pool)
            .await?;
    }
    let drop = format!(
        "DROP SCHEMA IF EXISTS \"{}\" CASCADE",
        schema.replace('"', "\"\"")
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
        .execute(pool)
        .await?;
    Ok(())
}
