//! [`PostgresStore`]: tokens in PostgreSQL (feature `postgres`), shared by every instance of
//! a service.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::{AssertSqlSafe, Row as _};
use time::OffsetDateTime;

use super::sql::{self, Dialect, SCHEMA_VERSION, Statements, TableName, store_error};
use crate::error::{ConfigError, StoreError};
use crate::record::TokenRecord;

/// A store in PostgreSQL, through a [`PgPool`] you already have or one opened with
/// [`connect`](Self::connect).
///
/// Ids and hashes are `BYTEA`, timestamps `TIMESTAMPTZ`. Verification is one `SELECT` by
/// primary key; revocation one conditional `UPDATE`.
///
/// ```no_run
/// use api_tokens::{ApiTokens, PostgresStore};
/// use api_tokens::sqlx::postgres::PgPoolOptions;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let pool = PgPoolOptions::new()
///     .max_connections(10)
///     .acquire_timeout(std::time::Duration::from_secs(5))
///     .connect("postgres://app@localhost/app")
///     .await?;
/// let store = PostgresStore::with_table(pool, "auth.api_tokens")?;
/// store.migrate().await?;
/// let tokens = ApiTokens::new(store, "api_prod")?;
/// # let _ = tokens;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    table: Arc<TableName>,
    sql: Arc<Statements>,
}

impl PostgresStore {
    /// A store over `pool`, in the table `api_tokens`. Call [`migrate`](Self::migrate) once
    /// at startup.
    pub fn new(pool: PgPool) -> Self {
        Self::with_table(pool, sql::DEFAULT_TABLE).expect("the default table name is valid")
    }

    /// A store over `pool` in `table` or `schema.table` (each part 1–48 characters of
    /// `[A-Za-z0-9_]`, unquoted, so folded to lower case by PostgreSQL).
    pub fn with_table(pool: PgPool, table: &str) -> Result<Self, ConfigError> {
        let table = TableName::parse(table)?;
        let sql = Statements::new(&table, Dialect::Postgres);
        Ok(Self {
            pool,
            table: Arc::new(table),
            sql: Arc::new(sql),
        })
    }

    /// Open a pool for `url` with a 5-second acquire timeout, so that verification fails
    /// closed quickly while the database is unreachable. Does not migrate.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .map_err(store_error("could not connect to PostgreSQL"))?;
        Ok(Self::new(pool))
    }

    /// The pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table.qualified
    }

    /// Create or upgrade the schema (and its schema, for `schema.table`). Idempotent, and
    /// safe when several instances start at once: the work runs in one transaction under a
    /// transaction-scoped advisory lock that all of this crate's migrations share. Fails if
    /// the database holds a newer schema than this release knows.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let t = &self.table.qualified;
        let bare = &self.table.bare;
        let failed = || store_error("could not migrate the PostgreSQL schema");
        let mut tx = self.pool.begin().await.map_err(failed())?;
        // One key for every table: migrations are rare, and `CREATE SCHEMA IF NOT EXISTS`
        // races between tables of the same schema.
        let key = i64::from(crc32fast::hash(b"api_tokens:migrate"));
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(key)
            .execute(&mut *tx)
            .await
            .map_err(failed())?;
        let schema = match t.split_once('.') {
            Some((schema, _)) => format!("CREATE SCHEMA IF NOT EXISTS {schema};"),
            None => String::new(),
        };
        let ddl = format!(
            "{schema}
             CREATE TABLE IF NOT EXISTS {t}_schema (version INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS {t} (
                 id BYTEA PRIMARY KEY CHECK (octet_length(id) = 16),
                 owner TEXT NOT NULL,
                 tenant TEXT,
                 name TEXT NOT NULL,
                 description TEXT,
                 scopes TEXT NOT NULL,
                 hash BYTEA NOT NULL CHECK (octet_length(hash) = 32),
                 prefix TEXT NOT NULL,
                 created_at TIMESTAMPTZ NOT NULL,
                 expires_at TIMESTAMPTZ,
                 last_used_at TIMESTAMPTZ,
                 revoked_at TIMESTAMPTZ,
                 revocation_reason TEXT
             );
             CREATE INDEX IF NOT EXISTS {bare}_owner_idx ON {t} (owner, created_at DESC, id DESC);"
        );
        sqlx::raw_sql(AssertSqlSafe(ddl))
            .execute(&mut *tx)
            .await
            .map_err(failed())?;
        let version: Option<i32> = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT MAX(version) FROM {t}_schema"
        )))
        .fetch_one(&mut *tx)
        .await
        .map_err(failed())?;
        if sql::must_record_version(version.map(i64::from))? {
            sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO {t}_schema (version) VALUES ($1)"
            )))
            .bind(SCHEMA_VERSION as i32)
            .execute(&mut *tx)
            .await
            .map_err(failed())?;
        }
        tx.commit().await.map_err(failed())
    }
}

fn decode(row: &PgRow) -> Result<TokenRecord, StoreError> {
    let raw = (|| {
        Ok::<_, sqlx::Error>(sql::Row {
            id: row.try_get(0)?,
            owner: row.try_get(1)?,
            tenant: row.try_get(2)?,
            name: row.try_get(3)?,
            description: row.try_get(4)?,
            scopes: row.try_get(5)?,
            hash: row.try_get(6)?,
            prefix: row.try_get(7)?,
            created_at: row.try_get(8)?,
            expires_at: row.try_get(9)?,
            last_used_at: row.try_get(10)?,
            revoked_at: row.try_get(11)?,
            revocation_reason: row.try_get(12)?,
        })
    })();
    raw.map_err(store_error("could not read a token row"))?
        .into_record()
}

/// PostgreSQL keeps `TIMESTAMPTZ` as it is.
fn same(t: OffsetDateTime) -> OffsetDateTime {
    t
}

fn checked(t: OffsetDateTime) -> Result<OffsetDateTime, StoreError> {
    Ok(t)
}

super::sql::impl_sql_token_store!(PostgresStore, decode: decode, timestamps: OffsetDateTime, same, checked);
