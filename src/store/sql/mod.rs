//! What the SQL stores share: table names, statements, deadlines, error mapping and row
//! decoding. The `TokenStore` implementation itself is in `store_impl.rs`, the schema and
//! its upgrades in `schema.rs`.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use crate::error::{ConfigError, StoreError, StoreErrorKind};
use crate::hash::TokenHash;
use crate::limits::MAX_TABLE_NAME_CHARS;
use crate::record::{
    IpAllowlist, Metadata, RateLimit, Refill, RefillInterval, Scopes, TokenRecord, UsageLimit,
};
use crate::token::TokenId;

pub(crate) mod schema;
mod store_impl;

pub(crate) use store_impl::impl_sql_token_store;

/// The table both SQL stores use unless told otherwise.
pub(crate) const DEFAULT_TABLE: &str = "api_tokens";

/// How long a store call may take unless configured: past it, the call fails with
/// `Unavailable`, whatever the network or the database is doing.
pub(crate) const DEFAULT_DEADLINE: Duration = Duration::from_secs(5);

/// A validated `table` or `schema.table` name. Each part is folded to lower case (as
/// PostgreSQL does with unquoted names) and quoted where it is spliced into SQL, so a
/// reserved word such as `user` is a usable name.
#[derive(Debug, Clone)]
pub(crate) struct TableName {
    /// As given (`auth.api_tokens`).
    given: String,
    schema: Option<String>,
    table: String,
}

impl TableName {
    /// Parse `name`; `schemas` says whether `schema.table` is allowed (not on SQLite, whose
    /// "schemas" are attached databases a store cannot create).
    pub(crate) fn parse(name: &str, schemas: bool) -> Result<Self, ConfigError> {
        let refuse = |reason: &'static str| ConfigError::TableName {
            name: name.chars().take(120).collect(),
            reason,
        };
        let ident = |s: &str| {
            !s.is_empty()
                && s.len() <= MAX_TABLE_NAME_CHARS
                && !s.as_bytes()[0].is_ascii_digit()
                && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        };
        let (schema, table) = match name.split_once('.') {
            Some(_) if !schemas => {
                return Err(refuse(
                    "a SQLite store takes a table name without a schema (attach databases yourself)",
                ));
            }
            Some((schema, table)) if ident(schema) && ident(table) => (Some(schema), table),
            None if ident(name) => (None, name),
            _ => return Err(refuse("it is not a plain identifier")),
        };
        // Names the database reserves for itself, which `migrate` could not create.
        let reserved = |s: &str, prefix: &str| {
            s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix)
        };
        if !schemas && reserved(table, "sqlite_") {
            return Err(refuse(
                "SQLite reserves table names that start with sqlite_",
            ));
        }
        if schema.is_some_and(|s| reserved(s, "pg_")) {
            return Err(refuse(
                "PostgreSQL reserves schema names that start with pg_",
            ));
        }
        Ok(Self {
            given: name.to_owned(),
            schema: schema.map(str::to_ascii_lowercase),
            table: table.to_ascii_lowercase(),
        })
    }

    /// The name as given (`auth.api_tokens`).
    pub(crate) fn given(&self) -> &str {
        &self.given
    }

    /// The table, quoted and qualified: `"auth"."api_tokens"`.
    pub(crate) fn sql(&self) -> String {
        self.with_suffix("")
    }

    /// A table next to this one, quoted and qualified: `"auth"."api_tokens_schema"`.
    pub(crate) fn with_suffix(&self, suffix: &str) -> String {
        match &self.schema {
            Some(s) => format!("\"{s}\".\"{}{suffix}\"", self.table),
            None => format!("\"{}{suffix}\"", self.table),
        }
    }

    /// An index name (unqualified: an index lives in its table's schema), quoted.
    pub(crate) fn index(&self, suffix: &str) -> String {
        format!("\"{}_{suffix}\"", self.table)
    }

    /// A name next to the table's, unquoted and unqualified (`api_tokens_changes`), as the
    /// catalogs show it.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn bare_with_suffix(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.table)
    }

    /// The schema, quoted, if one was given.
    pub(crate) fn schema_sql(&self) -> Option<String> {
        self.schema.as_ref().map(|s| format!("\"{s}\""))
    }

    /// A key naming this table for locks (`auth.api_tokens`).
    pub(crate) fn key(&self) -> String {
        match &self.schema {
            Some(s) => format!("{s}.{}", self.table),
            None => self.table.clone(),
        }
    }
}

/// Placeholder style of a SQL dialect.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// `?1`, `?2`, …
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    Sqlite,
    /// `$1`, `$2`, …
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    Postgres,
}

impl Dialect {
    /// The statement written with `$n` placeholders, in this dialect.
    fn render(self, sql: String) -> Arc<str> {
        match self {
            Self::Sqlite => sql.replace('$', "?").into(),
            Self::Postgres => sql.into(),
        }
    }
}

/// Columns in the order every `SELECT` returns them and every `INSERT` binds them.
pub(crate) const COLUMNS: &str = "id, owner, tenant, name, description, scopes, hash, prefix, \
     created_at, expires_at, last_used_at, revoked_at, revocation_reason, successor, created_by, \
     suspended_at, metadata, allowed_ips, remaining, refill_interval, refill_amount, refilled_at, \
     rate_limit, rate_per_seconds, rate_bucket";

/// How many columns [`COLUMNS`] names.
pub(crate) const COLUMN_COUNT: usize = 25;

/// Every statement a store runs, built once from the table name. Each is a plain string so
/// the driver caches one prepared statement per connection.
#[derive(Debug)]
pub(crate) struct Statements {
    pub(crate) insert: Arc<str>,
    pub(crate) insert_capped: Arc<str>,
    /// The ids of every descendant of `$1` of owner `$2` and prefix `$3`.
    pub(crate) descendants: Arc<str>,
    /// Consume one use of `$1`, refilling first if the period that starts at `$2` (daily)
    /// or `$3` (monthly) has not been applied yet; returns the uses left, or no row.
    pub(crate) consume_use: Arc<str>,
    /// An owner's active tokens of an issuer: `$1` owner, `$2` prefix, `$3` now.
    pub(crate) count_active: Arc<str>,
    /// Revoke every descendant of `$1` of owner `$2` and prefix `$3`, at `$4`, reason `$5`.
    pub(crate) revoke_descendants: Arc<str>,
    pub(crate) get: Arc<str>,
    pub(crate) get_for_update: Arc<str>,
    pub(crate) write_back: Arc<str>,
    pub(crate) record_last_use: Arc<str>,
    /// Many last uses in one statement: PostgreSQL binds two arrays (`unnest`), SQLite one
    /// JSON object from hex id to microseconds (`json_each`).
    pub(crate) record_last_uses: Arc<str>,
    pub(crate) revoke_all: Arc<str>,
    pub(crate) revoke_all_tenant: Arc<str>,
    pub(crate) purge: Arc<str>,
    /// Tokens not revoked expiring in `($2, $3]` of prefix `$1`, soonest first: `LIMIT $4
    /// OFFSET $5`; and their count.
    pub(crate) list_expiring: Arc<str>,
    pub(crate) count_expiring: Arc<str>,
    /// Indexed by `tenant as usize * 2 + active_only as usize`.
    pub(crate) list: [Arc<str>; 4],
    /// Same index as `list`.
    pub(crate) count: [Arc<str>; 4],
}

impl Statements {
    pub(crate) fn new(table: &TableName, d: Dialect) -> Self {
        let t = table.sql();
        let list_where = |tenant: bool, active: bool| {
            // $1 owner, $2 prefix, then $3 now (active only), then the tenant.
            let mut w = "owner = $1 AND prefix = $2".to_owned();
            let mut next = 3;
            if active {
                w += &format!(
                    " AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ${next})"
                );
                next += 1;
            }
            if tenant {
                w += &format!(" AND tenant = ${next}");
                next += 1;
            }
            (w, next)
        };
        // Every descendant of `$1` of owner `$2` and prefix `$3`, as `family(id)`. UNION,
        // not UNION ALL: each token once, however it is reached.
        let family = format!(
            "WITH RECURSIVE family(id) AS ( \
                 SELECT id FROM {t} WHERE created_by = $1 AND owner = $2 AND prefix = $3 \
                 UNION \
                 SELECT c.id FROM {t} AS c JOIN family AS f ON c.created_by = f.id \
                 WHERE c.owner = $2 AND c.prefix = $3 \
             )"
        );
        let variants = [(false, false), (false, true), (true, false), (true, true)];
        let list = variants.map(|(tenant, active)| {
            let (w, n) = list_where(tenant, active);
            d.render(format!(
                "SELECT {COLUMNS} FROM {t} WHERE {w} \
                 ORDER BY created_at DESC, id DESC LIMIT ${n} OFFSET ${}",
                n + 1
            ))
        });
        let count = variants.map(|(tenant, active)| {
            let (w, _) = list_where(tenant, active);
            d.render(format!("SELECT COUNT(*) FROM {t} WHERE {w}"))
        });
        let values = (1..=COLUMN_COUNT)
            .map(|n| format!("${n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let for_update = if d == Dialect::Postgres {
            " FOR UPDATE"
        } else {
            ""
        };
        Self {
            insert: d.render(format!("INSERT INTO {t} ({COLUMNS}) VALUES ({values})")),
            // $2 owner, $8 prefix (as inserted), $26 now, $27 the cap.
            insert_capped: d.render(format!(
                "INSERT INTO {t} ({COLUMNS}) SELECT {values} WHERE \
                 (SELECT COUNT(*) FROM {t} WHERE owner = $2 AND prefix = $8 \
                 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $26)) < $27"
            )),
            consume_use: {
                let start = "CASE refill_interval WHEN 'daily' THEN $2 ELSE $3 END";
                let due = format!(
                    "(refill_amount IS NOT NULL AND (refilled_at IS NULL OR refilled_at < {start}))"
                );
                d.render(format!(
                    "UPDATE {t} SET \
                     remaining = CASE WHEN {due} THEN refill_amount - 1 ELSE remaining - 1 END, \
                     refilled_at = CASE WHEN {due} THEN {start} ELSE refilled_at END \
                     WHERE id = $1 AND remaining IS NOT NULL \
                     AND (({due} AND refill_amount > 0) OR remaining > 0) \
                     RETURNING remaining"
                ))
            },
            descendants: d.render(format!("{family} SELECT id FROM family")),
            count_active: d.render(format!(
                "SELECT COUNT(*) FROM {t} WHERE owner = $1 AND prefix = $2 \
                 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $3)"
            )),
            revoke_descendants: d.render(format!(
                "{family} UPDATE {t} SET revoked_at = $4, revocation_reason = $5 \
                 WHERE id IN (SELECT id FROM family) AND revoked_at IS NULL"
            )),
            get: d.render(format!("SELECT {COLUMNS} FROM {t} WHERE id = $1")),
            get_for_update: d.render(format!(
                "SELECT {COLUMNS} FROM {t} WHERE id = $1{for_update}"
            )),
            write_back: d.render(format!(
                "UPDATE {t} SET owner = $2, tenant = $3, name = $4, description = $5, \
                 scopes = $6, hash = $7, prefix = $8, created_at = $9, expires_at = $10, \
                 last_used_at = $11, revoked_at = $12, revocation_reason = $13, \
                 successor = $14, created_by = $15, suspended_at = $16, metadata = $17, \
                 allowed_ips = $18, remaining = $19, refill_interval = $20, refill_amount = $21, \
                 refilled_at = $22, rate_limit = $23, rate_per_seconds = $24, rate_bucket = $25 \
                 WHERE id = $1"
            )),
            record_last_use: d.render(format!(
                "UPDATE {t} SET last_used_at = $2 \
                 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)"
            )),
            record_last_uses: match d {
                Dialect::Postgres => format!(
                    "UPDATE {t} AS t SET last_used_at = v.at \
                     FROM unnest($1::bytea[], $2::timestamptz[]) AS v(id, at) \
                     WHERE t.id = v.id AND (t.last_used_at IS NULL OR t.last_used_at < v.at)"
                )
                .into(),
                // Written for SQLite directly: `render` would turn a JSON path's `$` into `?`.
                Dialect::Sqlite => format!(
                    "UPDATE {t} SET last_used_at = v.at \
                     FROM (SELECT unhex(key) AS id, value AS at FROM json_each(?1)) AS v \
                     WHERE {t}.id = v.id AND ({t}.last_used_at IS NULL OR {t}.last_used_at < v.at)"
                )
                .into(),
            },
            revoke_all: d.render(format!(
                "UPDATE {t} SET revoked_at = $3, revocation_reason = $4 \
                 WHERE owner = $1 AND prefix = $2 AND revoked_at IS NULL"
            )),
            revoke_all_tenant: d.render(format!(
                "UPDATE {t} SET revoked_at = $3, revocation_reason = $4 \
                 WHERE owner = $1 AND prefix = $2 AND tenant = $5 AND revoked_at IS NULL"
            )),
            purge: d.render(format!(
                "DELETE FROM {t} WHERE revoked_at < $1 OR expires_at < $1"
            )),
            list_expiring: d.render(format!(
                "SELECT {COLUMNS} FROM {t} WHERE prefix = $1 AND revoked_at IS NULL \
                 AND expires_at IS NOT NULL AND expires_at > $2 AND expires_at <= $3 \
                 ORDER BY expires_at, id LIMIT $4 OFFSET $5"
            )),
            count_expiring: d.render(format!(
                "SELECT COUNT(*) FROM {t} WHERE prefix = $1 AND revoked_at IS NULL \
                 AND expires_at IS NOT NULL AND expires_at > $2 AND expires_at <= $3"
            )),
            list,
            count,
        }
    }

    /// The `list`/`count` variant for a filter.
    pub(crate) fn variant(tenant: bool, active_only: bool) -> usize {
        usize::from(tenant) * 2 + usize::from(active_only)
    }
}

/// How long `migrate` may take: one deadline per transaction it may need, so it never waits
/// without end (behind a long transaction, say) while every verification queues behind its
/// lock.
pub(crate) fn migration_deadline(deadline: Duration) -> Duration {
    let steps = u32::try_from(schema::SCHEMA_VERSION).unwrap_or(u32::MAX);
    deadline.saturating_mul(steps.saturating_add(1))
}

/// Run `work` within `deadline`: past it, the call fails with `Unavailable`, and the work is
/// dropped (a transaction in flight rolls back).
pub(crate) async fn within<T>(
    deadline: Duration,
    work: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(deadline, work).await {
        Ok(done) => done,
        Err(_) => Err(StoreError::new(
            StoreErrorKind::Unavailable,
            "the database did not answer within the store's deadline; try again later",
        )
        .with_source(DeadlinePassed(deadline))),
    }
}

/// The deadline that passed, as an error source.
#[derive(Debug)]
struct DeadlinePassed(Duration);

impl fmt::Display for DeadlinePassed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no answer within {} ms", self.0.as_millis())
    }
}

impl std::error::Error for DeadlinePassed {}

/// Map a driver error to a [`StoreError`], keeping it as the source. `classify` knows the
/// backend's own error codes (SQLSTATEs for PostgreSQL, result codes for SQLite); what all
/// drivers share is decided here.
pub(crate) fn map_error(
    e: sqlx::Error,
    doing: &'static str,
    classify: fn(&str) -> StoreErrorKind,
) -> StoreError {
    let kind = match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreErrorKind::DuplicateId,
        sqlx::Error::Database(db) => db.code().as_deref().map_or(StoreErrorKind::Other, classify),
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => StoreErrorKind::Unavailable,
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::TypeNotFound { .. } => StoreErrorKind::Corrupt,
        _ => StoreErrorKind::Other,
    };
    if kind == StoreErrorKind::DuplicateId {
        return StoreError::duplicate_id().with_source(e);
    }
    StoreError::new(kind, doing).with_source(e)
}

/// A record's columns as the database returns them, before checking.
pub(crate) struct Row {
    pub(crate) id: Vec<u8>,
    pub(crate) owner: String,
    pub(crate) tenant: Option<String>,
    pub(crate) name: String,
    pub(crate) description: Option<String>,
    pub(crate) scopes: String,
    pub(crate) hash: Vec<u8>,
    pub(crate) prefix: String,
    pub(crate) created_at: OffsetDateTime,
    pub(crate) expires_at: Option<OffsetDateTime>,
    pub(crate) last_used_at: Option<OffsetDateTime>,
    pub(crate) revoked_at: Option<OffsetDateTime>,
    pub(crate) revocation_reason: Option<String>,
    pub(crate) successor: Option<Vec<u8>>,
    pub(crate) created_by: Option<Vec<u8>>,
    pub(crate) suspended_at: Option<OffsetDateTime>,
    pub(crate) metadata: Option<String>,
    pub(crate) allowed_ips: Option<String>,
    pub(crate) remaining: Option<i64>,
    pub(crate) refill_interval: Option<String>,
    pub(crate) refill_amount: Option<i64>,
    pub(crate) refilled_at: Option<OffsetDateTime>,
    pub(crate) rate_limit: Option<i64>,
    pub(crate) rate_per_seconds: Option<i64>,
    pub(crate) rate_bucket: Option<Vec<u8>>,
}

fn corrupt(what: &'static str) -> StoreError {
    StoreError::new(StoreErrorKind::Corrupt, what)
}

fn token_id(bytes: &[u8]) -> Result<TokenId, StoreError> {
    let id: [u8; 16] = bytes
        .try_into()
        .map_err(|_| corrupt("a stored token id is not 16 bytes"))?;
    Ok(TokenId::from_bytes(id))
}

impl Row {
    /// Check and convert to a record; a damaged row is [`StoreErrorKind::Corrupt`].
    pub(crate) fn into_record(self) -> Result<TokenRecord, StoreError> {
        let hash = TokenHash::from_slice(&self.hash)
            .ok_or_else(|| corrupt("a stored token hash is not 32 bytes"))?;
        let scopes = Scopes::parse(self.scopes.split(' ').filter(|s| !s.is_empty()))
            .map_err(|_| corrupt("a stored scope is not valid"))?;
        let usage = self.usage()?.map(Box::new);
        Ok(TokenRecord {
            id: token_id(&self.id)?,
            owner: self.owner.into(),
            tenant: self.tenant.map(Into::into),
            name: self.name.into(),
            description: self.description.map(Into::into),
            scopes,
            hash,
            prefix: self.prefix.into(),
            created_at: self.created_at,
            expires_at: self.expires_at,
            last_used_at: self.last_used_at,
            revoked_at: self.revoked_at,
            revocation_reason: self.revocation_reason.map(Into::into),
            successor: self.successor.as_deref().map(token_id).transpose()?,
            created_by: self.created_by.as_deref().map(token_id).transpose()?,
            suspended_at: self.suspended_at,
            metadata: self
                .metadata
                .as_deref()
                .map(Metadata::parse)
                .transpose()
                .map_err(|_| corrupt("a stored token's metadata is not a valid JSON object"))?,
            allowed_ips: self
                .allowed_ips
                .as_deref()
                .map(|text| IpAllowlist::parse(text.split(' ').filter(|s| !s.is_empty())))
                .transpose()
                .map_err(|_| corrupt("a stored token's IP allowlist is not valid"))?,
            usage,
            rate_limit: match (self.rate_limit, self.rate_per_seconds) {
                (None, None) => None,
                (Some(limit), Some(per)) => Some(
                    u32::try_from(limit)
                        .ok()
                        .zip(u32::try_from(per).ok())
                        .and_then(|(l, p)| RateLimit::new(l, p).ok())
                        .map(|l| match self.rate_bucket.as_deref().map(token_id) {
                            Some(Ok(bucket)) => Ok(l.shared_with(bucket)),
                            Some(Err(e)) => Err(e),
                            None => Ok(l),
                        })
                        .ok_or_else(|| corrupt("a stored token's rate limit is not valid"))??,
                ),
                _ => return Err(corrupt("a stored token's rate limit is half set")),
            },
        })
    }

    fn usage(&self) -> Result<Option<UsageLimit>, StoreError> {
        let bad = || corrupt("a stored token's usage limit is not valid");
        let Some(remaining) = self.remaining else {
            return Ok(None);
        };
        let refill = match (&self.refill_interval, self.refill_amount) {
            (None, None) => None,
            (Some(interval), Some(amount)) => Some(Refill {
                interval: RefillInterval::parse(interval).ok_or_else(bad)?,
                amount: u64::try_from(amount).map_err(|_| bad())?,
            }),
            _ => return Err(bad()),
        };
        Ok(Some(UsageLimit {
            remaining: u64::try_from(remaining).map_err(|_| bad())?,
            refill,
            refilled_at: self.refilled_at,
        }))
    }
}

/// `uses` with each id once, at its latest instant.
pub(crate) fn latest_per_id(uses: &[(TokenId, OffsetDateTime)]) -> Vec<(TokenId, OffsetDateTime)> {
    let mut latest = uses.to_vec();
    latest.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    latest.dedup_by_key(|(id, _)| *id);
    latest
}

/// Scopes as stored: space-separated (a scope never contains a space).
pub(crate) fn scopes_text(scopes: &Scopes) -> String {
    scopes.iter().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names() {
        for good in ["api_tokens", "auth.api_tokens", "T1", "_x", "user"] {
            TableName::parse(good, true).unwrap();
        }
        for bad in [
            "",
            "1tokens",
            "a.b.c",
            "tokens; DROP TABLE x",
            "a-b",
            "\"q\"",
            ".t",
            "s.",
            &"x".repeat(49),
        ] {
            assert!(TableName::parse(bad, true).is_err(), "{bad:?}");
        }
        assert!(TableName::parse("main.tokens", false).is_err());
        let t = TableName::parse("Auth.Tokens", true).unwrap();
        assert_eq!(t.sql(), "\"auth\".\"tokens\"");
        assert_eq!(t.with_suffix("_schema"), "\"auth\".\"tokens_schema\"");
        assert_eq!(t.index("owner_idx"), "\"tokens_owner_idx\"");
    }

    #[test]
    fn list_statements_number_their_placeholders() {
        let t = TableName::parse("t", true).unwrap();
        let s = Statements::new(&t, Dialect::Postgres);
        let full = &s.list[Statements::variant(true, true)];
        let lite = Statements::new(&t, Dialect::Sqlite);
        assert!(lite.get.ends_with("id = ?1"), "{}", lite.get);
        assert!(full.contains("owner = $1 AND prefix = $2") && full.contains("expires_at > $3"));
        assert!(full.contains("tenant = $4") && full.ends_with("LIMIT $5 OFFSET $6"));
        let bare = &s.list[Statements::variant(false, false)];
        assert!(bare.ends_with("LIMIT $3 OFFSET $4"), "{bare}");
        assert!(s.get_for_update.ends_with("FOR UPDATE"));
        assert!(!lite.get_for_update.contains("FOR UPDATE"));
    }
}
