//! [`PostgresStore`]: tokens in PostgreSQL (feature `postgres`), shared by every instance of
//! a service.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{AssertSqlSafe, Postgres, Row as _, Transaction};
use time::OffsetDateTime;

use super::sql::schema::{self, SCHEMA_VERSION};
use super::sql::{self, DEFAULT_DEADLINE, Dialect, Statements, TableName, map_error};
use crate::error::{ConfigError, StoreError, StoreErrorKind};
use crate::record::TokenRecord;

/// A store in PostgreSQL, through a [`PgPool`] you already have or one opened with
/// [`connect`](Self::connect).
///
/// Ids and hashes are `BYTEA`, timestamps `TIMESTAMPTZ`. Verification is one `SELECT` by
/// primary key. Every call fails with `Unavailable` rather than wait past the store's
/// [deadline](Self::with_deadline) (5 s by default), whatever the network does.
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
    deadline: Duration,
}

impl PostgresStore {
    /// A store over `pool`, in the table `api_tokens`. Call [`migrate`](Self::migrate) once
    /// at startup.
    pub fn new(pool: PgPool) -> Self {
        Self::with_table(pool, sql::DEFAULT_TABLE).expect("the default table name is valid")
    }

    /// A store over `pool` in `table` or `schema.table` (each part 1–48 characters of
    /// `[A-Za-z0-9_]`, not starting with a digit, folded to lower case as PostgreSQL folds
    /// unquoted names; reserved words such as `user` are fine).
    pub fn with_table(pool: PgPool, table: &str) -> Result<Self, ConfigError> {
        let table = TableName::parse(table, true)?;
        let sql = Statements::new(&table, Dialect::Postgres);
        Ok(Self {
            pool,
            table: Arc::new(table),
            sql: Arc::new(sql),
            deadline: DEFAULT_DEADLINE,
        })
    }

    /// The same store with every call bounded by `deadline` (default 5 s): past it the call
    /// fails with `Unavailable` (503), even when the network stops answering.
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// Open a pool for `url` whose connections time out as this store's calls do: an
    /// acquire timeout and a server-side `statement_timeout` of the default deadline, so
    /// verification fails closed quickly while the database is unreachable or stuck. Does
    /// not migrate.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(error("the PostgreSQL URL is not valid"))?
            .options([(
                "statement_timeout",
                DEFAULT_DEADLINE.as_millis().to_string(),
            )]);
        let pool = PgPoolOptions::new()
            .acquire_timeout(DEFAULT_DEADLINE)
            .connect_with(options)
            .await
            .map_err(error("could not connect to PostgreSQL"))?;
        Ok(Self::new(pool))
    }

    /// The pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The table name, as given.
    pub fn table(&self) -> &str {
        self.table.given()
    }

    /// The PostgreSQL channel on which this table's trigger (installed by
    /// [`migrate`](Self::migrate)) announces every committed change of a token, with the
    /// token's id in hex as the payload (`*` when the table is truncated):
    /// `api_tokens_changes_<the table's OID>`. A `CachedStore` listens on it (feature
    /// `cache`); so can anything else. Asks the database (the table must exist).
    pub async fn notification_channel(&self) -> Result<String, StoreError> {
        sql::within(self.deadline, async {
            sqlx::query_scalar::<_, String>(schema::CHANNEL_QUERY)
                .bind(self.table.sql())
                .fetch_one(&self.pool)
                .await
                .map_err(error("could not find the table's notification channel"))
        })
        .await
    }

    /// The table's name as its statements write it (quoted, qualified if given so).
    #[cfg(feature = "cache")]
    pub(crate) fn table_sql(&self) -> String {
        self.table.sql()
    }

    /// The name of the table's notification trigger, as the catalog shows it.
    #[cfg(feature = "cache")]
    pub(crate) fn trigger_name(&self) -> String {
        schema::trigger_name(&self.table)
    }

    /// The deadline every call is bounded by.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// Create the schema (and its schema, for `schema.table`), or upgrade an older one in
    /// place without losing a row: each version step runs in its own transaction under a
    /// transaction-scoped advisory lock that all of this crate's migrations share, so
    /// instances starting at once do not collide. Idempotent. Fails if the database holds a
    /// newer schema than this release knows.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        sql::within(sql::migration_deadline(self.deadline), self.migrate_steps()).await
    }

    async fn migrate_steps(&self) -> Result<(), StoreError> {
        let failed = || error("could not migrate the PostgreSQL schema");
        let t = &*self.table;
        let mut tx = self.migration().await?;
        sqlx::raw_sql(AssertSqlSafe(schema::create_v1(t, Dialect::Postgres)))
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
            let mut tx = self.migration().await?;
            if read_version(&mut tx, t).await?.unwrap_or(1) < to {
                sqlx::raw_sql(AssertSqlSafe(schema::upgrade_to(to, t, Dialect::Postgres)))
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

    /// A transaction holding the migration lock. One key for every table: migrations are
    /// rare, and `CREATE SCHEMA IF NOT EXISTS` races between tables of the same schema.
    async fn migration(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        let failed = || error("could not migrate the PostgreSQL schema");
        let mut tx = begin(&self.pool, self.deadline).await.map_err(failed())?;
        let key = i64::from(crc32fast::hash(b"api_tokens:migrate"));
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(key)
            .execute(&mut *tx)
            .await
            .map_err(failed())?;
        Ok(tx)
    }
}

async fn read_version(
    tx: &mut Transaction<'static, Postgres>,
    t: &TableName,
) -> Result<Option<i64>, StoreError> {
    let version: Option<i32> = sqlx::query_scalar(AssertSqlSafe(schema::read_version(t)))
        .fetch_one(&mut **tx)
        .await
        .map_err(error("could not read the PostgreSQL schema version"))?;
    Ok(version.map(i64::from))
}

async fn record_version(
    tx: &mut Transaction<'static, Postgres>,
    t: &TableName,
    version: i64,
) -> Result<(), StoreError> {
    sqlx::query(AssertSqlSafe(schema::record_version(t, Dialect::Postgres)))
        .bind(i32::try_from(version).unwrap_or(i32::MAX))
        .execute(&mut **tx)
        .await
        .map_err(error("could not record the PostgreSQL schema version"))?;
    Ok(())
}

/// A transaction that the server itself ends if it outlives `deadline`: its statements
/// time out, lock waits time out, and an idle transaction (its client partitioned away or
/// gone) is terminated, releasing its row and advisory locks. Without this, a client that
/// gave up at its deadline could leave locks on the server until TCP noticed, hours later,
/// and every revocation of that token would fail meanwhile.
async fn begin(
    pool: &PgPool,
    deadline: Duration,
) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    bound_on_server(&mut tx, deadline).await?;
    Ok(tx)
}

/// Set the server-side limits of the current transaction (`SET LOCAL`, in one round trip).
async fn bound_on_server(
    tx: &mut Transaction<'static, Postgres>,
    deadline: Duration,
) -> Result<(), sqlx::Error> {
    let ms = deadline.as_millis().clamp(1, i32::MAX as u128).to_string();
    sqlx::query(
        "SELECT set_config('statement_timeout', $1, true), \
                set_config('lock_timeout', $1, true), \
                set_config('idle_in_transaction_session_timeout', $1, true)",
    )
    .bind(ms)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A read-only transaction whose statements all see the snapshot its first one took.
async fn snapshot(pool: &PgPool) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
}

/// Serialise one owner's multi-record writes for the rest of the transaction.
async fn lock_owner(tx: &mut Transaction<'static, Postgres>, key: &str) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(key)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Map a driver error, classifying PostgreSQL's SQLSTATEs.
fn error(doing: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| map_error(e, doing, classify)
}

/// What a SQLSTATE means for a caller. Unavailable (try again later): connection
/// exceptions (08), insufficient resources (53: disk full, out of memory, too many
/// connections), operator intervention (57P: shutting down, starting up, terminated; 57014:
/// a statement timeout), serialization failures and deadlocks (40001, 40P01), a lock not
/// available (55P03) and a read-only standby (25006). Corrupt: data or index corruption
/// (XX001, XX002). Everything else, including data exceptions (22, which input validation
/// prevents), is a plain 500: never "unavailable".
fn classify(code: &str) -> StoreErrorKind {
    match code {
        c if c.starts_with("08") || c.starts_with("53") || c.starts_with("57P") => {
            StoreErrorKind::Unavailable
        }
        "57014" | "40001" | "40P01" | "55P03" | "25006" => StoreErrorKind::Unavailable,
        "XX001" | "XX002" => StoreErrorKind::Corrupt,
        _ => StoreErrorKind::Other,
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
            successor: row.try_get(13)?,
            created_by: row.try_get(14)?,
            suspended_at: row.try_get(15)?,
            metadata: row.try_get(16)?,
            allowed_ips: row.try_get(17)?,
            remaining: row.try_get(18)?,
            refill_interval: row.try_get(19)?,
            refill_amount: row.try_get(20)?,
            refilled_at: row.try_get(21)?,
            rate_limit: row.try_get::<Option<i32>, _>(22)?.map(i64::from),
            rate_per_seconds: row.try_get::<Option<i32>, _>(23)?.map(i64::from),
            rate_bucket: row.try_get(24)?,
        })
    })();
    raw.map_err(error("could not read a token row"))?
        .into_record()
}

/// PostgreSQL keeps `TIMESTAMPTZ` as it is.
fn same(t: OffsetDateTime) -> OffsetDateTime {
    t
}

super::sql::impl_sql_token_store!(
    PostgresStore, db: Postgres, decode: decode, timestamps: OffsetDateTime, same,
    error: error, begin: begin, snapshot: snapshot, lock_owner: lock_owner,
    last_uses: bind_last_uses
);

/// Many last uses as two arrays, ids and instants, for `unnest`.
fn bind_last_uses<'q>(
    q: sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>,
    uses: &'q [(crate::token::TokenId, OffsetDateTime)],
) -> sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments> {
    let ids: Vec<&[u8]> = uses
        .iter()
        .map(|(id, _)| id.as_bytes().as_slice())
        .collect();
    let ats: Vec<OffsetDateTime> = uses.iter().map(|(_, at)| *at).collect();
    q.bind(ids).bind(ats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_are_classified_for_postgres() {
        for unavailable in [
            "08006", "53100", "53300", "57P01", "57014", "40001", "40P01",
        ] {
            assert_eq!(
                classify(unavailable),
                StoreErrorKind::Unavailable,
                "{unavailable}"
            );
        }
        // Data exceptions are never "unavailable": a NUL byte (22021) used to be read as
        // SQLite's BUSY because 22021 & 0xff == 5.
        for other in ["22021", "22P02", "42P01", "23502", "00005"] {
            assert_eq!(classify(other), StoreErrorKind::Other, "{other}");
        }
        assert_eq!(classify("XX001"), StoreErrorKind::Corrupt);
    }

    /// The expiry listing and its count can read the partial index on `(prefix,
    /// expires_at, id)` of tokens not revoked (with sequential scans priced out, as they
    /// would be on a large table).
    #[tokio::test]
    #[cfg_attr(
        not(api_tokens_postgres_tests),
        ignore = "set API_TOKENS_TEST_POSTGRES_URL to run the PostgreSQL suite"
    )]
    async fn the_expiry_listing_reads_its_index() {
        let url = std::env::var("API_TOKENS_TEST_POSTGRES_URL").unwrap();
        let pool = PgPool::connect(&url).await.unwrap();
        let mut random = [0u8; 4];
        getrandom::fill(&mut random).unwrap();
        let schema = format!("api_tokens_plan_{}", hex::encode(random));
        sqlx::raw_sql(AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&pool)
            .await
            .unwrap();
        let store = PostgresStore::with_table(pool.clone(), &format!("{schema}.tokens")).unwrap();
        store.migrate().await.unwrap();
        let now = OffsetDateTime::now_utc();
        let mut connection = pool.acquire().await.unwrap();
        sqlx::raw_sql("SET enable_seqscan = off")
            .execute(&mut *connection)
            .await
            .unwrap();
        for (statement, paged) in [
            (&store.sql.list_expiring, true),
            (&store.sql.count_expiring, false),
        ] {
            let explain = format!("EXPLAIN {statement}");
            let mut query = sqlx::query_scalar::<_, String>(AssertSqlSafe(explain))
                .bind("dz")
                .bind(now)
                .bind(now + time::Duration::days(7));
            if paged {
                query = query.bind(10_i64).bind(0_i64);
            }
            let plan = query.fetch_all(&mut *connection).await.unwrap().join("\n");
            assert!(plan.contains("tokens_expiring_idx"), "{statement}:\n{plan}");
        }
        drop(connection);
        sqlx::raw_sql(AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
            .execute(&pool)
            .await
            .unwrap();
    }
}
