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

use super::{Dialect, TableName};
use crate::error::{StoreError, StoreErrorKind};

/// The schema version this release writes and reads.
pub(crate) const SCHEMA_VERSION: i64 = 2;

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
        _ => unreachable!("no step to schema version {to}"),
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
