//! [`SqliteStore`]: tokens in a SQLite database file (feature `sqlite`).

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
};
use sqlx::{AssertSqlSafe, Row as _};
use time::OffsetDateTime;

use super::sql::{self, Dialect, SCHEMA_VERSION, Statements, TableName, store_error};
use crate::error::{ConfigError, StoreError, StoreErrorKind};
use crate::record::TokenRecord;

/// A store in a SQLite database, through a [`SqlitePool`] you already have or one opened
/// with [`connect`](Self::connect).
///
/// Timestamps are stored as integer microseconds since the Unix epoch, so they compare
/// numerically; ids and hashes as `BLOB`s. Verification is one `SELECT` by primary key.
///
/// ```
/// use api_tokens::{ApiTokens, NewToken, SqliteStore};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let store = SqliteStore::connect("sqlite::memory:").await?;
/// store.migrate().await?;
/// let tokens = ApiTokens::new(store, "dz")?;
/// let issued = tokens.issue(NewToken::new("user_1", "ci")).await?;
/// tokens.verify(issued.plaintext.expose_secret()).await?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    table: Arc<TableName>,
    sql: Arc<Statements>,
}

impl SqliteStore {
    /// A store over `pool`, in the table `api_tokens`. Call [`migrate`](Self::migrate) once
    /// at startup.
    pub fn new(pool: SqlitePool) -> Self {
        Self::with_table(pool, sql::DEFAULT_TABLE).expect("the default table name is valid")
    }

    /// A store over `pool` in `table` (1–48 characters of `[A-Za-z0-9_]`).
    pub fn with_table(pool: SqlitePool, table: &str) -> Result<Self, ConfigError> {
        let table = TableName::parse(table)?;
        let sql = Statements::new(&table, Dialect::Sqlite);
        Ok(Self {
            pool,
            table: Arc::new(table),
            sql: Arc::new(sql),
        })
    }

    /// The connection options this crate recommends for `url` (`sqlite://path` or
    /// `sqlite::memory:`): create the file if missing, WAL journal, a 5-second busy timeout.
    pub fn connect_options(url: &str) -> Result<SqliteConnectOptions, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(store_error("the SQLite URL is not valid"))?
            .create_if_missing(true)
            .busy_timeout(Duration::from_secs(5));
        Ok(if is_memory(url) {
            options
        } else {
            options.journal_mode(SqliteJournalMode::Wal)
        })
    }

    /// Open a pool for `url` with [`connect_options`](Self::connect_options). An in-memory
    /// database gets a single connection that is never closed, so it lives as long as the
    /// pool. Does not migrate.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = Self::connect_options(url)?;
        let pool = if is_memory(url) {
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            SqlitePoolOptions::new()
        }
        .connect_with(options)
        .await
        .map_err(store_error("could not open the SQLite database"))?;
        Ok(Self::new(pool))
    }

    /// The pool.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table.qualified
    }

    /// Create or upgrade the schema. Idempotent, and safe when several processes start at
    /// once: the work runs in one `BEGIN IMMEDIATE` transaction. Fails if the database holds
    /// a newer schema than this release knows.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let t = &self.table.qualified;
        let bare = &self.table.bare;
        let failed = || store_error("could not migrate the SQLite schema");
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(failed())?;
        let ddl = format!(
            "CREATE TABLE IF NOT EXISTS {t}_schema (version INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS {t} (
                 id BLOB PRIMARY KEY NOT NULL CHECK (length(id) = 16),
                 owner TEXT NOT NULL,
                 tenant TEXT,
                 name TEXT NOT NULL,
                 description TEXT,
                 scopes TEXT NOT NULL,
                 hash BLOB NOT NULL CHECK (length(hash) = 32),
                 prefix TEXT NOT NULL,
                 created_at INTEGER NOT NULL,
                 expires_at INTEGER,
                 last_used_at INTEGER,
                 revoked_at INTEGER,
                 revocation_reason TEXT
             ) WITHOUT ROWID;
             CREATE INDEX IF NOT EXISTS {bare}_owner_idx ON {t} (owner, created_at DESC, id DESC);"
        );
        sqlx::raw_sql(AssertSqlSafe(ddl))
            .execute(&mut *tx)
            .await
            .map_err(failed())?;
        let version: Option<i64> = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT MAX(version) FROM {t}_schema"
        )))
        .fetch_one(&mut *tx)
        .await
        .map_err(failed())?;
        if sql::must_record_version(version)? {
            sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO {t}_schema (version) VALUES (?1)"
            )))
            .bind(SCHEMA_VERSION)
            .execute(&mut *tx)
            .await
            .map_err(failed())?;
        }
        tx.commit().await.map_err(failed())
    }
}

fn is_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

/// Microseconds since the Unix epoch: what SQLite stores.
fn micros(t: OffsetDateTime) -> i64 {
    // Every `OffsetDateTime` (years ±9999) fits in i64 microseconds.
    i64::try_from(t.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX)
}

fn from_micros(us: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1_000).map_err(|e| {
        StoreError::new(
            StoreErrorKind::Corrupt,
            "a stored timestamp is out of range",
        )
        .with_source(e)
    })
}

fn opt_from_micros(us: Option<i64>) -> Result<Option<OffsetDateTime>, StoreError> {
    us.map(from_micros).transpose()
}

fn decode(row: &SqliteRow) -> Result<TokenRecord, StoreError> {
    let d = store_error("could not read a token row");
    let raw = (|| {
        Ok::<_, sqlx::Error>((
            sql::Row {
                id: row.try_get(0)?,
                owner: row.try_get(1)?,
                tenant: row.try_get(2)?,
                name: row.try_get(3)?,
                description: row.try_get(4)?,
                scopes: row.try_get(5)?,
                hash: row.try_get(6)?,
                prefix: row.try_get(7)?,
                created_at: OffsetDateTime::UNIX_EPOCH,
                expires_at: None,
                last_used_at: None,
                revoked_at: None,
                revocation_reason: row.try_get(12)?,
            },
            [
                Some(row.try_get::<i64, _>(8)?),
                row.try_get(9)?,
                row.try_get(10)?,
                row.try_get(11)?,
            ],
        ))
    })();
    let (mut raw, [created, expires, used, revoked]) = raw.map_err(d)?;
    raw.created_at = from_micros(created.unwrap_or_default())?;
    raw.expires_at = opt_from_micros(expires)?;
    raw.last_used_at = opt_from_micros(used)?;
    raw.revoked_at = opt_from_micros(revoked)?;
    raw.into_record()
}

super::sql::impl_sql_token_store!(SqliteStore, decode: decode, timestamps: i64, micros, from_micros);
