//! [`SqliteStore`]: tokens in a SQLite database file (feature `sqlite`).

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
};
use sqlx::{AssertSqlSafe, Row as _, Sqlite, Transaction};
use time::OffsetDateTime;

use super::sql::schema::{self, SCHEMA_VERSION};
use super::sql::{self, DEFAULT_DEADLINE, Dialect, Statements, TableName, map_error};
use crate::error::{ConfigError, StoreError, StoreErrorKind};
use crate::record::TokenRecord;

/// A store in a SQLite database, through a [`SqlitePool`] you already have or one opened
/// with [`connect`](Self::connect) or [`connect_existing`](Self::connect_existing).
///
/// Timestamps are stored as integer microseconds since the Unix epoch, so they compare
/// numerically; ids and hashes as `BLOB`s. Verification is one `SELECT` by primary key.
/// Every call fails with `Unavailable` rather than wait past the store's
/// [deadline](Self::with_deadline) (5 s by default).
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
    deadline: Duration,
}

impl SqliteStore {
    /// A store over `pool`, in the table `api_tokens`. Call [`migrate`](Self::migrate) once
    /// at startup.
    pub fn new(pool: SqlitePool) -> Self {
        Self::with_table(pool, sql::DEFAULT_TABLE).expect("the default table name is valid")
    }

    /// A store over `pool` in `table` (1–48 characters of `[A-Za-z0-9_]`, not starting with
    /// a digit; no `schema.` part: SQLite's schemas are attached databases, which a store
    /// cannot create).
    pub fn with_table(pool: SqlitePool, table: &str) -> Result<Self, ConfigError> {
        let table = TableName::parse(table, false)?;
        let sql = Statements::new(&table, Dialect::Sqlite);
        Ok(Self {
            pool,
            table: Arc::new(table),
            sql: Arc::new(sql),
            deadline: DEFAULT_DEADLINE,
        })
    }

    /// The same store with every call bounded by `deadline` (default 5 s): past it the call
    /// fails with `Unavailable` (503) instead of waiting for a busy database.
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// The connection options this crate recommends for `url` (`sqlite://path` or
    /// `sqlite::memory:`): create the file if missing, WAL journal, a 5-second busy timeout.
    pub fn connect_options(url: &str) -> Result<SqliteConnectOptions, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(error("the SQLite URL is not valid"))?
            .create_if_missing(true)
            .busy_timeout(Duration::from_secs(5));
        Ok(if is_memory(url) {
            options
        } else {
            options.journal_mode(SqliteJournalMode::Wal)
        })
    }

    /// Open a pool for `url` with [`connect_options`](Self::connect_options), creating the
    /// database file if it is missing. An in-memory database gets a single connection that
    /// is never closed, so it lives as long as the pool. Does not migrate.
    ///
    /// Use it for the first start; afterwards prefer
    /// [`connect_existing`](Self::connect_existing), so that a database file that vanished
    /// is an error rather than a new, empty database in which every token is unknown.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::open(url, Self::connect_options(url)?).await
    }

    /// Like [`connect`](Self::connect), but the database file must already exist: a missing
    /// file fails with a [`StoreError`] instead of being created empty.
    pub async fn connect_existing(url: &str) -> Result<Self, StoreError> {
        let options = Self::connect_options(url)?.create_if_missing(false);
        Self::open(url, options).await
    }

    async fn open(url: &str, options: SqliteConnectOptions) -> Result<Self, StoreError> {
        let pool = if is_memory(url) {
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            SqlitePoolOptions::new()
        }
        .acquire_timeout(DEFAULT_DEADLINE)
        .connect_with(options)
        .await
        .map_err(error("could not open the SQLite database"))?;
        Ok(Self::new(pool))
    }

    /// The pool.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The table name, as given.
    pub fn table(&self) -> &str {
        self.table.given()
    }

    /// The deadline every call is bounded by.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// Create the schema, or upgrade an older one in place without losing a row: each
    /// version step runs in its own `BEGIN IMMEDIATE` transaction, so processes starting
    /// at once do not collide. Idempotent. Fails if the database holds a newer schema than
    /// this release knows.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        sql::within(sql::migration_deadline(self.deadline), self.migrate_steps()).await
    }

    async fn migrate_steps(&self) -> Result<(), StoreError> {
        let failed = || error("could not migrate the SQLite schema");
        let t = &*self.table;
        let mut tx = begin(&self.pool, self.deadline).await.map_err(failed())?;
        sqlx::raw_sql(AssertSqlSafe(schema::create_v1(t, Dialect::Sqlite)))
            .execute(&mut *tx)
            .await
            .map_err(failed())?;
        let found = read_version(&mut tx, t).await?;
        if found.is_none() {
            record_version(&mut tx, t, 1).await?;
        }
        tx.commit().await.map_err(failed())?;
        let mut version = found.unwrap_or(1);
        schema::refuse_newer(version)?;
        while version < SCHEMA_VERSION {
            let to = version + 1;
            let mut tx = begin(&self.pool, self.deadline).await.map_err(failed())?;
            if read_version(&mut tx, t).await?.unwrap_or(1) < to {
                sqlx::raw_sql(AssertSqlSafe(schema::upgrade_to(to, t, Dialect::Sqlite)))
                    .execute(&mut *tx)
                    .await
                    .map_err(failed())?;
                record_version(&mut tx, t, to).await?;
            }
            tx.commit().await.map_err(failed())?;
            version = to;
        }
        Ok(())
    }
}

async fn read_version(
    tx: &mut Transaction<'static, Sqlite>,
    t: &TableName,
) -> Result<Option<i64>, StoreError> {
    sqlx::query_scalar(AssertSqlSafe(schema::read_version(t)))
        .fetch_one(&mut **tx)
        .await
        .map_err(error("could not read the SQLite schema version"))
}

async fn record_version(
    tx: &mut Transaction<'static, Sqlite>,
    t: &TableName,
    version: i64,
) -> Result<(), StoreError> {
    sqlx::query(AssertSqlSafe(schema::record_version(t, Dialect::Sqlite)))
        .bind(version)
        .execute(&mut **tx)
        .await
        .map_err(error("could not record the SQLite schema version"))?;
    Ok(())
}

fn is_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

/// A transaction that holds the database's write lock from its first statement, so that
/// what it reads cannot change before it writes.
/// (The deadline is enforced on the client: an SQLite transaction dies with its
/// connection, and the busy timeout bounds the wait for the lock.)
async fn begin(
    pool: &SqlitePool,
    _deadline: Duration,
) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
    pool.begin_with("BEGIN IMMEDIATE").await
}

/// A read transaction: SQLite keeps one snapshot from its first read to its end.
async fn snapshot(pool: &SqlitePool) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
    pool.begin_with("BEGIN DEFERRED").await
}

/// SQLite's write lock (taken by `BEGIN IMMEDIATE`) already serialises every writer.
async fn lock_owner(_: &mut Transaction<'static, Sqlite>, _: &str) -> Result<(), sqlx::Error> {
    Ok(())
}

/// Map a driver error, classifying SQLite's result codes (in any extended form).
fn error(doing: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| map_error(e, doing, classify)
}

/// What a SQLite result code means for a caller:
///
/// - `BUSY` (5), `LOCKED` (6): another writer holds the database; try again: unavailable;
/// - `FULL` (13): the disk or the database is full; retrying once space is freed may
///   succeed: unavailable (503);
/// - `IOERR` (10), `CANTOPEN` (14): the file cannot be read or written now: unavailable;
/// - `READONLY` (8): the database cannot be written until an operator fixes it: a 500;
/// - `CORRUPT` (11), `NOTADB` (26): the file is damaged: corrupt.
fn classify(code: &str) -> StoreErrorKind {
    match code.parse::<i32>().map(|c| c & 0xff) {
        Ok(5 | 6 | 10 | 13 | 14) => StoreErrorKind::Unavailable,
        Ok(11 | 26) => StoreErrorKind::Corrupt,
        _ => StoreErrorKind::Other,
    }
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
                successor: row.try_get(13)?,
                created_by: row.try_get(14)?,
                suspended_at: None,
                metadata: row.try_get(16)?,
                allowed_ips: row.try_get(17)?,
                remaining: row.try_get(18)?,
                refill_interval: row.try_get(19)?,
                refill_amount: row.try_get(20)?,
                refilled_at: None,
                rate_limit: row.try_get(22)?,
                rate_per_seconds: row.try_get(23)?,
                rate_bucket: row.try_get(24)?,
            },
            [
                Some(row.try_get::<i64, _>(8)?),
                row.try_get(9)?,
                row.try_get(10)?,
                row.try_get(11)?,
                row.try_get(15)?,
                row.try_get(21)?,
            ],
        ))
    })();
    let (mut raw, [created, expires, used, revoked, suspended, refilled]) =
        raw.map_err(error("could not read a token row"))?;
    raw.created_at = from_micros(created.unwrap_or_default())?;
    raw.expires_at = opt_from_micros(expires)?;
    raw.last_used_at = opt_from_micros(used)?;
    raw.revoked_at = opt_from_micros(revoked)?;
    raw.suspended_at = opt_from_micros(suspended)?;
    raw.refilled_at = opt_from_micros(refilled)?;
    raw.into_record()
}

super::sql::impl_sql_token_store!(
    SqliteStore, db: Sqlite, decode: decode, timestamps: i64, micros,
    error: error, begin: begin, snapshot: snapshot, lock_owner: lock_owner,
    last_uses: bind_last_uses
);

/// Many last uses as one JSON object, hex id to microseconds, for `json_each`.
fn bind_last_uses<'q>(
    q: sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments>,
    uses: &'q [(crate::token::TokenId, OffsetDateTime)],
) -> sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments> {
    let mut json = String::with_capacity(2 + uses.len() * 56);
    json.push('{');
    for (i, (id, at)) in uses.iter().enumerate() {
        if i > 0 {
            json.push(',');
        }
        // Hex ids and integers need no escaping.
        json.push_str(&format!(
            "\"{}\":{}",
            hex::encode(id.as_bytes()),
            micros(*at)
        ));
    }
    json.push('}');
    q.bind(json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::AssertSqlSafe;

    /// The expiry listing and its count read the partial index on `(prefix, expires_at,
    /// id)` of tokens not revoked, never the whole table.
    #[tokio::test]
    async fn the_expiry_listing_reads_its_index() {
        let store = SqliteStore::connect("sqlite::memory:").await.unwrap();
        store.migrate().await.unwrap();
        for statement in [&store.sql.list_expiring, &store.sql.count_expiring] {
            let plan: Vec<(i64, i64, i64, String)> =
                sqlx::query_as(AssertSqlSafe(format!("EXPLAIN QUERY PLAN {statement}")))
                    .fetch_all(store.pool())
                    .await
                    .unwrap();
            let steps: Vec<&str> = plan.iter().map(|step| step.3.as_str()).collect();
            assert!(
                steps
                    .iter()
                    .any(|s| s.contains("USING") && s.contains("INDEX api_tokens_expiring_idx")),
                "{statement}: {steps:?}"
            );
            assert!(
                !steps.contains(&"SCAN api_tokens"),
                "no full scan: {steps:?}"
            );
        }
    }
}
