//! What the SQL stores share: table names, statements, error mapping and row decoding.

use std::sync::Arc;

use time::OffsetDateTime;

use crate::error::{ConfigError, StoreError, StoreErrorKind};
use crate::hash::TokenHash;
use crate::record::{Scopes, TokenRecord};
use crate::token::TokenId;

/// The table both SQL stores use unless told otherwise.
pub(crate) const DEFAULT_TABLE: &str = "api_tokens";

/// The schema version this release writes and reads.
pub(crate) const SCHEMA_VERSION: i64 = 1;

const MAX_IDENT: usize = 48;

/// What a migration must do, given the highest schema version the database records:
/// `Ok(true)` to record this release's version (a new schema), `Ok(false)` for nothing more,
/// or an error if the database is newer than this release.
pub(crate) fn must_record_version(found: Option<i64>) -> Result<bool, StoreError> {
    match found {
        None => Ok(true),
        Some(v) if v > SCHEMA_VERSION => Err(StoreError::new(
            StoreErrorKind::Other,
            "the database holds a newer token schema than this release supports; upgrade api-tokens",
        )),
        Some(_) => Ok(false),
    }
}

/// A validated `table` or `schema.table` name, safe to splice into SQL.
#[derive(Debug, Clone)]
pub(crate) struct TableName {
    /// As written in SQL (`schema.table` or `table`).
    pub(crate) qualified: String,
    /// The table part alone, for naming indexes.
    pub(crate) bare: String,
}

impl TableName {
    pub(crate) fn parse(name: &str) -> Result<Self, ConfigError> {
        let ident = |s: &str| {
            !s.is_empty()
                && s.len() <= MAX_IDENT
                && !s.as_bytes()[0].is_ascii_digit()
                && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        };
        let bare = match name.split_once('.') {
            Some((schema, table)) if ident(schema) && ident(table) => table,
            None if ident(name) => name,
            _ => {
                return Err(ConfigError::TableName {
                    name: name.chars().take(120).collect(),
                    reason: "it is not a plain identifier",
                });
            }
        };
        Ok(Self {
            qualified: name.to_owned(),
            bare: bare.to_owned(),
        })
    }
}

/// Placeholder style of a SQL dialect.
#[derive(Clone, Copy)]
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
     created_at, expires_at, last_used_at, revoked_at, revocation_reason";

/// Every statement a store runs, built once from the table name. Each is a plain string so
/// the driver caches one prepared statement per connection.
#[derive(Debug)]
pub(crate) struct Statements {
    pub(crate) insert: Arc<str>,
    pub(crate) get: Arc<str>,
    pub(crate) record_last_use: Arc<str>,
    pub(crate) revoke: Arc<str>,
    pub(crate) revoked_at: Arc<str>,
    pub(crate) revoke_all: Arc<str>,
    pub(crate) revoke_all_tenant: Arc<str>,
    pub(crate) shorten_expiry: Arc<str>,
    pub(crate) purge: Arc<str>,
    /// Indexed by `tenant as usize * 2 + active_only as usize`.
    pub(crate) list: [Arc<str>; 4],
    /// Same index as `list`.
    pub(crate) count: [Arc<str>; 4],
}

impl Statements {
    pub(crate) fn new(table: &TableName, d: Dialect) -> Self {
        let t = &table.qualified;
        let list_where = |tenant: bool, active: bool| {
            // $1 owner, then $2 now (active only), then the tenant.
            let mut w = "owner = $1".to_owned();
            let mut next = 2;
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
        let values = (1..=13)
            .map(|n| format!("${n}"))
            .collect::<Vec<_>>()
            .join(", ");
        Self {
            insert: d.render(format!("INSERT INTO {t} ({COLUMNS}) VALUES ({values})")),
            get: d.render(format!("SELECT {COLUMNS} FROM {t} WHERE id = $1")),
            record_last_use: d.render(format!(
                "UPDATE {t} SET last_used_at = $2 \
                 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)"
            )),
            revoke: d.render(format!(
                "UPDATE {t} SET revoked_at = $3, revocation_reason = $4 \
                 WHERE id = $1 AND owner = $2 AND revoked_at IS NULL"
            )),
            revoked_at: d.render(format!(
                "SELECT revoked_at FROM {t} WHERE id = $1 AND owner = $2"
            )),
            revoke_all: d.render(format!(
                "UPDATE {t} SET revoked_at = $2, revocation_reason = $3 \
                 WHERE owner = $1 AND revoked_at IS NULL"
            )),
            revoke_all_tenant: d.render(format!(
                "UPDATE {t} SET revoked_at = $2, revocation_reason = $3 \
                 WHERE owner = $1 AND tenant = $4 AND revoked_at IS NULL"
            )),
            shorten_expiry: d.render(format!(
                "UPDATE {t} SET expires_at = $2 WHERE id = $1 AND revoked_at IS NULL \
                 AND (expires_at IS NULL OR expires_at > $2)"
            )),
            purge: d.render(format!(
                "DELETE FROM {t} WHERE revoked_at < $1 OR expires_at < $1"
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

/// Map a driver error to a [`StoreError`], keeping it as the source.
pub(crate) fn store_error(doing: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| {
        let kind = match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreErrorKind::DuplicateId,
            sqlx::Error::Database(db) => match db.code().as_deref() {
                // PostgreSQL: connection exceptions, too many connections, shutting down,
                // starting up, terminated by an administrator.
                Some(code)
                    if code.starts_with("08")
                        || code.starts_with("57P")
                        || code == "53300"
                        || code == "53000" =>
                {
                    StoreErrorKind::Unavailable
                }
                // SQLite: BUSY (5) or LOCKED (6), in any extended form.
                Some(code) if code.parse::<i32>().is_ok_and(|c| matches!(c & 0xff, 5 | 6)) => {
                    StoreErrorKind::Unavailable
                }
                _ => StoreErrorKind::Other,
            },
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
        let message = if kind == StoreErrorKind::DuplicateId {
            "a token with this id already exists"
        } else {
            doing
        };
        StoreError::new(kind, message).with_source(e)
    }
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
}

fn corrupt(what: &'static str) -> StoreError {
    StoreError::new(StoreErrorKind::Corrupt, what)
}

impl Row {
    /// Check and convert to a record; a damaged row is [`StoreErrorKind::Corrupt`].
    pub(crate) fn into_record(self) -> Result<TokenRecord, StoreError> {
        let id: [u8; 16] = self
            .id
            .as_slice()
            .try_into()
            .map_err(|_| corrupt("a stored token id is not 16 bytes"))?;
        let hash = TokenHash::from_slice(&self.hash)
            .ok_or_else(|| corrupt("a stored token hash is not 32 bytes"))?;
        let scopes = Scopes::parse(self.scopes.split(' ').filter(|s| !s.is_empty()))
            .map_err(|_| corrupt("a stored scope is not valid"))?;
        Ok(TokenRecord {
            id: TokenId::from_bytes(id),
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
        })
    }
}

/// Scopes as stored: space-separated (a scope never contains a space).
pub(crate) fn scopes_text(scopes: &Scopes) -> String {
    scopes.iter().collect::<Vec<_>>().join(" ")
}

/// The [`TokenStore`](super::TokenStore) implementation both SQL stores share: the same
/// statements and logic, differing only in how timestamps are stored.
///
/// - `$store`: the store type, with fields `pool` and `sql: Arc<Statements>`;
/// - `$decode`: `fn(&Row) -> Result<TokenRecord, StoreError>`;
/// - `$db_ts`, `$to_db`, `$from_db`: the stored form of a timestamp, and the conversions
///   `fn(OffsetDateTime) -> $db_ts` and `fn($db_ts) -> Result<OffsetDateTime, StoreError>`.
macro_rules! impl_sql_token_store {
    ($store:ty, decode: $decode:path, timestamps: $db_ts:ty, $to_db:path, $from_db:path) => {
        const _: () = {
            use std::sync::Arc;

            use sqlx::AssertSqlSafe;
            use time::OffsetDateTime;

            use $crate::error::StoreError;
            use $crate::record::TokenRecord;
            use $crate::store::sql::{Statements, scopes_text, store_error};
            use $crate::store::token_store::TokenStore;
            use $crate::store::{ListFilter, ListPage, RevokeOutcome};
            use $crate::token::TokenId;

            impl TokenStore for $store {
                async fn insert(&self, r: &TokenRecord) -> Result<(), StoreError> {
                    sqlx::query(AssertSqlSafe(Arc::clone(&self.sql.insert)))
                        .bind(r.id.as_bytes().as_slice())
                        .bind(&*r.owner)
                        .bind(r.tenant.as_deref())
                        .bind(&*r.name)
                        .bind(r.description.as_deref())
                        .bind(scopes_text(&r.scopes))
                        .bind(r.hash.as_bytes().as_slice())
                        .bind(&*r.prefix)
                        .bind($to_db(r.created_at))
                        .bind(r.expires_at.map($to_db))
                        .bind(r.last_used_at.map($to_db))
                        .bind(r.revoked_at.map($to_db))
                        .bind(r.revocation_reason.as_deref())
                        .execute(&self.pool)
                        .await
                        .map_err(store_error("could not insert the token"))?;
                    Ok(())
                }

                async fn get(&self, id: &TokenId) -> Result<Option<Arc<TokenRecord>>, StoreError> {
                    let row = sqlx::query(AssertSqlSafe(Arc::clone(&self.sql.get)))
                        .bind(id.as_bytes().as_slice())
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(store_error("could not read the token"))?;
                    Ok(row.as_ref().map($decode).transpose()?.map(Arc::new))
                }

                async fn list(&self, f: &ListFilter<'_>) -> Result<ListPage, StoreError> {
                    let v = Statements::variant(f.tenant.is_some(), !f.include_inactive);
                    let limit = i64::from(f.limit);
                    let offset = i64::try_from(f.offset).unwrap_or(i64::MAX);
                    let mut list =
                        sqlx::query(AssertSqlSafe(Arc::clone(&self.sql.list[v]))).bind(f.owner);
                    let mut count =
                        sqlx::query_scalar::<_, i64>(AssertSqlSafe(Arc::clone(&self.sql.count[v])))
                            .bind(f.owner);
                    if !f.include_inactive {
                        list = list.bind($to_db(f.now));
                        count = count.bind($to_db(f.now));
                    }
                    if let Some(tenant) = f.tenant {
                        list = list.bind(tenant);
                        count = count.bind(tenant);
                    }
                    let rows = list
                        .bind(limit)
                        .bind(offset)
                        .fetch_all(&self.pool)
                        .await
                        .map_err(store_error("could not list tokens"))?;
                    let total = count
                        .fetch_one(&self.pool)
                        .await
                        .map_err(store_error("could not count tokens"))?;
                    Ok(ListPage {
                        records: rows.iter().map($decode).collect::<Result<_, _>>()?,
                        total: u64::try_from(total).unwrap_or_default(),
                    })
                }

                async fn record_last_use(
                    &self,
                    id: &TokenId,
                    at: OffsetDateTime,
                ) -> Result<bool, StoreError> {
                    let done = sqlx::query(AssertSqlSafe(Arc::clone(&self.sql.record_last_use)))
                        .bind(id.as_bytes().as_slice())
                        .bind($to_db(at))
                        .execute(&self.pool)
                        .await
                        .map_err(store_error("could not record the token's last use"))?;
                    Ok(done.rows_affected() > 0)
                }

                async fn revoke(
                    &self,
                    id: &TokenId,
                    owner: &str,
                    at: OffsetDateTime,
                    reason: Option<&str>,
                ) -> Result<RevokeOutcome, StoreError> {
                    let done = sqlx::query(AssertSqlSafe(Arc::clone(&self.sql.revoke)))
                        .bind(id.as_bytes().as_slice())
                        .bind(owner)
                        .bind($to_db(at))
                        .bind(reason)
                        .execute(&self.pool)
                        .await
                        .map_err(store_error("could not revoke the token"))?;
                    if done.rows_affected() > 0 {
                        return Ok(RevokeOutcome::Revoked);
                    }
                    let revoked: Option<Option<$db_ts>> =
                        sqlx::query_scalar(AssertSqlSafe(Arc::clone(&self.sql.revoked_at)))
                            .bind(id.as_bytes().as_slice())
                            .bind(owner)
                            .fetch_optional(&self.pool)
                            .await
                            .map_err(store_error("could not read the token's revocation"))?;
                    Ok(match revoked {
                        Some(Some(at)) => RevokeOutcome::AlreadyRevoked($from_db(at)?),
                        // Not revoked yet the update matched nothing: it cannot be this owner's.
                        _ => RevokeOutcome::NotFound,
                    })
                }

                async fn revoke_all(
                    &self,
                    owner: &str,
                    tenant: Option<&str>,
                    at: OffsetDateTime,
                    reason: Option<&str>,
                ) -> Result<u64, StoreError> {
                    let query = match tenant {
                        None => sqlx::query(AssertSqlSafe(Arc::clone(&self.sql.revoke_all))),
                        Some(_) => {
                            sqlx::query(AssertSqlSafe(Arc::clone(&self.sql.revoke_all_tenant)))
                        }
                    };
                    let mut query = query.bind(owner).bind($to_db(at)).bind(reason);
                    if let Some(tenant) = tenant {
                        query = query.bind(tenant);
                    }
                    let done = query
                        .execute(&self.pool)
                        .await
                        .map_err(store_error("could not revoke the owner's tokens"))?;
                    Ok(done.rows_affected())
                }

                async fn shorten_expiry(
                    &self,
                    id: &TokenId,
                    at: OffsetDateTime,
                ) -> Result<bool, StoreError> {
                    let done = sqlx::query(AssertSqlSafe(Arc::clone(&self.sql.shorten_expiry)))
                        .bind(id.as_bytes().as_slice())
                        .bind($to_db(at))
                        .execute(&self.pool)
                        .await
                        .map_err(store_error("could not shorten the token's expiry"))?;
                    Ok(done.rows_affected() > 0)
                }

                async fn purge(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
                    let done = sqlx::query(AssertSqlSafe(Arc::clone(&self.sql.purge)))
                        .bind($to_db(before))
                        .execute(&self.pool)
                        .await
                        .map_err(store_error("could not purge tokens"))?;
                    Ok(done.rows_affected())
                }
            }
        };
    };
}
pub(crate) use impl_sql_token_store;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names() {
        for good in ["api_tokens", "auth.api_tokens", "T1", "_x"] {
            TableName::parse(good).unwrap();
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
            assert!(TableName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn list_statements_number_their_placeholders() {
        let s = Statements::new(&TableName::parse("t").unwrap(), Dialect::Postgres);
        let full = &s.list[Statements::variant(true, true)];
        let lite = Statements::new(&TableName::parse("t").unwrap(), Dialect::Sqlite);
        assert!(lite.get.ends_with("id = ?1"), "{}", lite.get);
        assert!(full.contains("owner = $1") && full.contains("expires_at > $2"));
        assert!(full.contains("tenant = $3") && full.ends_with("LIMIT $4 OFFSET $5"));
        let bare = &s.list[Statements::variant(false, false)];
        assert!(bare.ends_with("LIMIT $2 OFFSET $3"), "{bare}");
    }
}
