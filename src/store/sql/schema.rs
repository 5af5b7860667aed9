//! The SQL schema, by version, and how each version upgrades to the next.
//!
//! `migrate()` creates version 1 if the table is missing, then applies each later step in
//! turn, one transaction per step under the migration lock, recording each version as it
//! commits. A database at a version newer than this release is refused.
//!
//! | version | change |
//! |---|---|
//! | 1 | the table (api-tokens 0.1), its owner index, and the version table |
//! | 2 | `successor`: the token that replaced this one in a rotation |
//! | 3 | `created_by`: the token that created this one, indexed for revoking a token's descendants |
//! | 4 | PostgreSQL: a trigger that notifies every listener of each changed token ([`notify_trigger`]) |
//! | 5 | `suspended_at`, `metadata` (JSON text), `allowed_ips` (CIDR ranges); an index of active tokens by expiry, for expiry notices |
//! | 6 | usage limits (`remaining`, `refill_interval`, `refill_amount`, `refilled_at`) and rate limits (`rate_limit`, `rate_per_seconds`, `rate_bucket`: a successor shares its predecessor's count) |

use super::{Dialect, TableName};
use crate::error::{StoreError, StoreErrorKind};

/// The schema version this release writes and reads.
pub(crate) const SCHEMA_VERSION: i64 = 6;

/// Types that differ between the dialects.
struct Types {
    bytes: &'static str,
    time: &'static str,
    len: &'static str,
    without_rowid: &'static str,
}

fn types(d: Dialect) -> Types {
    match d {
        Dialect::Sqlite => Types {
            bytes: "BLOB",
            time: "INTEGER",
            len: "length",
            without_rowid: " WITHOUT ROWID",
        },
        Dialect::Postgres => Types {
            bytes: "BYTEA",
            time: "TIMESTAMPTZ",
            len: "octet_length",
            without_rowid: "",
        },
    }
}

/// Version 1, exactly as api-tokens 0.1 created it; idempotent.
pub(crate) fn create_v1(t: &TableName, d: Dialect) -> String {
    let Types {
        bytes,
        time,
        len,
        without_rowid,
    } = types(d);
    let (table, versions, index) = (t.sql(), t.with_suffix("_schema"), t.index("owner_idx"));
    let schema = match (d, t.schema_sql()) {
        (Dialect::Postgres, Some(s)) => format!("CREATE SCHEMA IF NOT EXISTS {s};"),
        _ => String::new(),
    };
    format!(
        "{schema}
         CREATE TABLE IF NOT EXISTS {versions} (version INTEGER NOT NULL);
         CREATE TABLE IF NOT EXISTS {table} (
             id {bytes} PRIMARY KEY NOT NULL CHECK ({len}(id) = 16),
             owner TEXT NOT NULL,
             tenant TEXT,
             name TEXT NOT NULL,
             description TEXT,
             scopes TEXT NOT NULL,
             hash {bytes} NOT NULL CHECK ({len}(hash) = 32),
             prefix TEXT NOT NULL,
             created_at {time} NOT NULL,
             expires_at {time},
             last_used_at {time},
             revoked_at {time},
             revocation_reason TEXT
         ){without_rowid};
         CREATE INDEX IF NOT EXISTS {index} ON {table} (owner, created_at DESC, id DESC);"
    )
}

/// The statements that bring a schema at version `to - 1` to version `to`.
pub(crate) fn upgrade_to(to: i64, t: &TableName, d: Dialect) -> String {
    let Types { bytes, len, .. } = types(d);
    let table = t.sql();
    match to {
        2 => format!(
            "ALTER TABLE {table} ADD COLUMN successor {bytes} \
             CHECK (successor IS NULL OR {len}(successor) = 16);"
        ),
        3 => format!(
            "ALTER TABLE {table} ADD COLUMN created_by {bytes} \
             CHECK (created_by IS NULL OR {len}(created_by) = 16); \
             CREATE INDEX IF NOT EXISTS {index} ON {table} (created_by) \
             WHERE created_by IS NOT NULL;",
            index = t.index("created_by_idx")
        ),
        4 => match d {
            Dialect::Postgres => notify_trigger(t, WATCHED_V4),
            // One process owns a SQLite file: a cache there hears of every change itself.
            Dialect::Sqlite => "SELECT 1;".to_owned(),
        },
        5 => {
            let time = types(d).time;
            let columns = format!(
                "ALTER TABLE {table} ADD COLUMN suspended_at {time}; \
                 ALTER TABLE {table} ADD COLUMN metadata TEXT; \
                 ALTER TABLE {table} ADD COLUMN allowed_ips TEXT; \
                 CREATE INDEX IF NOT EXISTS {index} ON {table} (prefix, expires_at, id) \
                 WHERE revoked_at IS NULL AND expires_at IS NOT NULL;",
                index = t.index("expiring_idx")
            );
            match d {
                // The trigger watches the new columns too.
                Dialect::Postgres => columns + &notify_trigger(t, WATCHED_V5),
                Dialect::Sqlite => columns,
            }
        }
        6 => {
            let Types { time, bytes, .. } = types(d);
            let columns = format!(
                "ALTER TABLE {table} ADD COLUMN remaining BIGINT; \
                 ALTER TABLE {table} ADD COLUMN refill_interval TEXT; \
                 ALTER TABLE {table} ADD COLUMN refill_amount BIGINT; \
                 ALTER TABLE {table} ADD COLUMN refilled_at {time}; \
                 ALTER TABLE {table} ADD COLUMN rate_limit INTEGER; \
                 ALTER TABLE {table} ADD COLUMN rate_per_seconds INTEGER; \
                 ALTER TABLE {table} ADD COLUMN rate_bucket {bytes};"
            );
            match d {
                // The limits are watched. The count of uses left changes on every use and
                // is not (a cache never answers from it: a use is always counted in the
                // store), except when a token starts or stops counting its uses.
                Dialect::Postgres => {
                    let (limits, function) = (t.index("limits_changes"), notify_function(t));
                    columns
                        + &notify_trigger(t, WATCHED_V6)
                        + &format!(
                            "DROP TRIGGER IF EXISTS {limits} ON {table};
                             CREATE TRIGGER {limits} AFTER UPDATE OF remaining ON {table}
                                 FOR EACH ROW
                                 WHEN ((OLD.remaining IS NULL) IS DISTINCT FROM (NEW.remaining IS NULL))
                                 EXECUTE FUNCTION {function}();
                             ALTER TABLE {table} ENABLE ALWAYS TRIGGER {limits};"
                        )
                }
                Dialect::Sqlite => columns,
            }
        }
        _ => unreachable!("no step to schema version {to}"),
    }
}

/// Every column but `last_used_at`, at version 4: a change to any of them may change what a
/// verification decides, so it notifies; last use alone never does (it would notify once
/// per token per interval for nothing).
const WATCHED_V4: &str = "id, owner, tenant, name, description, scopes, hash, prefix, \
     created_at, expires_at, revoked_at, revocation_reason, successor, created_by";

/// [`WATCHED_V4`] and the columns of version 5.
const WATCHED_V5: &str = "id, owner, tenant, name, description, scopes, hash, prefix, \
     created_at, expires_at, revoked_at, revocation_reason, successor, created_by, \
     suspended_at, metadata, allowed_ips";

/// [`WATCHED_V5`] and the limits of version 6 (not the count of uses left).
const WATCHED_V6: &str = "id, owner, tenant, name, description, scopes, hash, prefix, \
     created_at, expires_at, revoked_at, revocation_reason, successor, created_by, \
     suspended_at, metadata, allowed_ips, refill_interval, refill_amount, rate_limit, \
     rate_per_seconds, rate_bucket";

/// The statement that gives the PostgreSQL channel on which a table's trigger announces
/// changes (`$1`: the table's name, as in its statements): `api_tokens_changes_<oid>`, by
/// the table's OID, so the same however the table is named (`api_tokens`,
/// `public.api_tokens`) and after a rename.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) const CHANNEL_QUERY: &str =
    "SELECT 'api_tokens_changes_' || $1::text::regclass::oid::text";

/// The name of the trigger that announces a table's changes (unquoted, as in `pg_trigger`).
#[cfg_attr(not(all(feature = "postgres", feature = "cache")), allow(dead_code))]
pub(crate) fn trigger_name(t: &TableName) -> String {
    t.bare_with_suffix("_changes")
}

/// The trigger that announces every committed change of a token on the table's channel
/// ([`CHANNEL_QUERY`], by `TG_RELID`), with the token's id in hex as the payload (`*` when
/// the table is truncated): after an insert (so that a cached "unknown id" is dropped), a
/// delete, and an update that sets any of `watched`. PostgreSQL sends a notification only
/// when its transaction commits, and in commit order, so a listener hears of a change if
/// and only if it happened, whoever made it (this crate, another service, an
/// administrator's SQL). The triggers fire `ALWAYS`, under `session_replication_role =
/// replica` too (logical replication, `pg_restore`); the function's `search_path` is fixed,
/// so no schema can shadow what it calls.
pub(crate) fn notify_trigger(t: &TableName, watched: &str) -> String {
    let table = t.sql();
    let function = notify_function(t);
    let (changes, truncated) = (t.index("changes"), t.index("truncated"));
    format!(
        "CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql
         SET search_path = pg_catalog, pg_temp AS $body$
         DECLARE
             channel text := 'api_tokens_changes_' || TG_RELID::text;
         BEGIN
             IF TG_OP = 'TRUNCATE' THEN
                 PERFORM pg_catalog.pg_notify(channel, '*');
             ELSIF TG_OP = 'DELETE' THEN
                 PERFORM pg_catalog.pg_notify(channel, pg_catalog.encode(OLD.id, 'hex'));
             ELSE
                 PERFORM pg_catalog.pg_notify(channel, pg_catalog.encode(NEW.id, 'hex'));
                 IF TG_OP = 'UPDATE' AND OLD.id IS DISTINCT FROM NEW.id THEN
                     PERFORM pg_catalog.pg_notify(channel, pg_catalog.encode(OLD.id, 'hex'));
                 END IF;
             END IF;
             RETURN NULL;
         END
         $body$;
         DROP TRIGGER IF EXISTS {changes} ON {table};
         CREATE TRIGGER {changes} AFTER INSERT OR DELETE OR UPDATE OF {watched} ON {table}
             FOR EACH ROW EXECUTE FUNCTION {function}();
         ALTER TABLE {table} ENABLE ALWAYS TRIGGER {changes};
         DROP TRIGGER IF EXISTS {truncated} ON {table};
         CREATE TRIGGER {truncated} AFTER TRUNCATE ON {table}
             FOR EACH STATEMENT EXECUTE FUNCTION {function}();
         ALTER TABLE {table} ENABLE ALWAYS TRIGGER {truncated};"
    )
}

/// The trigger function of [`notify_trigger`], qualified by the table's schema.
fn notify_function(t: &TableName) -> String {
    match t.schema_sql() {
        Some(s) => format!("{s}.{}", t.index("notify")),
        None => t.index("notify"),
    }
}

/// `SELECT MAX(version)` of the version table.
pub(crate) fn read_version(t: &TableName) -> String {
    format!("SELECT MAX(version) FROM {}", t.with_suffix("_schema"))
}

/// Record that the schema is at `version` (a placeholder for the version, in `d`).
pub(crate) fn record_version(t: &TableName, d: Dialect) -> String {
    let placeholder = if d == Dialect::Sqlite { "?1" } else { "$1" };
    format!(
        "INSERT INTO {} (version) VALUES ({placeholder})",
        t.with_suffix("_schema")
    )
}

/// Refuse a database whose schema this release does not know.
pub(crate) fn refuse_newer(found: i64) -> Result<(), StoreError> {
    if found > SCHEMA_VERSION {
        return Err(StoreError::new(
            StoreErrorKind::Other,
            "the database holds a newer token schema than this release supports; upgrade api-tokens",
        ));
    }
    Ok(())
}
