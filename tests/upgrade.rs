//! Upgrading a populated database from schema version 1 (exactly as api-tokens 0.1 created
//! it) in place: every token still verifies, with its history intact, and every version
//! step is recorded.

#[cfg(feature = "postgres")]
mod common;

use api_tokens::{ApiTokens, AuthError, ListRequest, NewToken, TokenHash, TokenId, TokenStore};
use time::{Duration, OffsetDateTime};

/// The version-1 DDL of api-tokens 0.1, with `{t}` for the table and the dialect's types.
fn v1_ddl(t: &str, bytes: &str, time: &str, len: &str, rowid: &str) -> String {
    format!(
        "CREATE TABLE {t}_schema (version INTEGER NOT NULL);
         INSERT INTO {t}_schema (version) VALUES (1);
         CREATE TABLE {t} (
             id {bytes} PRIMARY KEY NOT NULL CHECK ({len}(id) = 16),
             owner TEXT NOT NULL, tenant TEXT, name TEXT NOT NULL, description TEXT,
             scopes TEXT NOT NULL,
             hash {bytes} NOT NULL CHECK ({len}(hash) = 32),
             prefix TEXT NOT NULL,
             created_at {time} NOT NULL, expires_at {time}, last_used_at {time},
             revoked_at {time}, revocation_reason TEXT
         ){rowid};
         CREATE INDEX {bare}_owner_idx ON {t} (owner, created_at DESC, id DESC);",
        bare = t.rsplit('.').next().unwrap_or(t)
    )
}

/// A version-1 row: a token's plaintext and the values of its columns.
struct OldToken {
    plaintext: String,
    id: [u8; 16],
    hash: [u8; 32],
    name: String,
    revoked: bool,
}

/// Tokens as 0.1 wrote them (the format has not changed): prefix `dz`, 16-byte id, 32-byte
/// secret, CRC32.
fn old_tokens(n: usize) -> Vec<OldToken> {
    (0..n)
        .map(|i| {
            let mut id = [0u8; 16];
            let mut secret = [0u8; 32];
            id[..8].copy_from_slice(&(i as u64 + 1).to_be_bytes());
            secret[..8].copy_from_slice(&(i as u64 * 7919 + 13).to_be_bytes());
            id[15] = i as u8;
            let signed = format!("dz_{}{}", hex::encode(id), hex::encode(secret));
            let plaintext = format!("{signed}{:08x}", crc32fast::hash(signed.as_bytes()));
            OldToken {
                plaintext,
                id,
                hash: *TokenHash::of_secret(&secret).as_bytes(),
                name: format!("old token {i}"),
                revoked: i % 3 == 0,
            }
        })
        .collect()
}

/// After the upgrade: the active tokens verify, the revoked ones are still revoked with
/// their reason, last use is kept, and the store works for new tokens and rotations.
async fn check_upgraded<S: TokenStore>(
    tokens: &ApiTokens<S>,
    old: &[OldToken],
    used: OffsetDateTime,
) {
    for t in old {
        let before = tokens
            .get("alice", TokenId::from_bytes(t.id))
            .await
            .expect("get");
        assert_eq!(before.last_used_at, Some(used), "last use is kept");
        let result = tokens.verify(&t.plaintext).await;
        if t.revoked {
            assert!(
                matches!(result, Err(AuthError::Revoked { .. })),
                "{}: {result:?}",
                t.name
            );
        } else {
            let who = result.unwrap_or_else(|e| panic!("{} no longer verifies: {e}", t.name));
            assert_eq!(who.owner(), "alice");
            assert_eq!(who.name(), t.name);
            assert_eq!(who.token_id(), TokenId::from_bytes(t.id));
        }
    }
    let all = ListRequest::new("alice")
        .per_page(100)
        .include_inactive(true);
    let listed = tokens.list(&all).await.expect("list");
    assert_eq!(listed.meta.total, old.len() as u64, "no row was lost");
    for info in listed.data.iter().filter(|i| i.revoked_at.is_some()) {
        assert_eq!(info.revocation_reason.as_deref(), Some("old reason"));
    }
    let fresh = tokens
        .issue(NewToken::new("alice", "after the upgrade"))
        .await
        .unwrap();
    let active = old.iter().find(|t| !t.revoked).unwrap();
    let id = tokens.format().parse(&active.plaintext).unwrap().id();
    let rotated = tokens
        .rotate("alice", id, Duration::ZERO)
        .await
        .expect("rotation works");
    tokens
        .verify(rotated.plaintext.expose_secret())
        .await
        .unwrap();
    tokens
        .verify(fresh.plaintext.expose_secret())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_populated_version_1_sqlite_file_upgrades_in_place() {
    use api_tokens::SqliteStore;
    use api_tokens::sqlx::{self, AssertSqlSafe};

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("v1.db").display());
    let store = SqliteStore::connect(&url).await.unwrap();
    let ddl = v1_ddl("api_tokens", "BLOB", "INTEGER", "length", " WITHOUT ROWID");
    sqlx::raw_sql(AssertSqlSafe(ddl))
        .execute(store.pool())
        .await
        .unwrap();
    let old = old_tokens(30);
    let created = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap() - Duration::days(3);
    let used = created + Duration::days(1);
    let micros = |t: OffsetDateTime| (t.unix_timestamp_nanos() / 1000) as i64;
    for (i, t) in old.iter().enumerate() {
        sqlx::query(
            "INSERT INTO api_tokens VALUES (?1, 'alice', NULL, ?2, NULL, 'tokens:read', ?3, 'dz', ?4, ?5, ?6, ?7, ?8)",
        )
        .bind(t.id.as_slice())
        .bind(&t.name)
        .bind(t.hash.as_slice())
        .bind(micros(created + Duration::seconds(i as i64)))
        .bind(micros(created + Duration::days(365)))
        .bind(micros(used))
        .bind(t.revoked.then(|| micros(used)))
        .bind(t.revoked.then_some("old reason"))
        .execute(store.pool())
        .await
        .unwrap();
    }
    store.migrate().await.expect("upgrade from version 1");
    let versions: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM api_tokens_schema ORDER BY version")
            .fetch_all(store.pool())
            .await
            .unwrap();
    assert_eq!(versions, [1, 2, 3, 4, 5, 6]);
    store
        .migrate()
        .await
        .expect("migrating again changes nothing");
    let tokens = ApiTokens::new(store, "dz").unwrap();
    check_upgraded(&tokens, &old, used).await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
#[cfg_attr(
    not(api_tokens_postgres_tests),
    ignore = "set API_TOKENS_TEST_POSTGRES_URL to run the PostgreSQL suite"
)]
async fn a_populated_version_1_postgres_table_upgrades_in_place() {
    use api_tokens::PostgresStore;
    use api_tokens::sqlx::{self, AssertSqlSafe};

    let pool = common::pool_for(&common::url(), "api_tokens_upgrade", 4).await;
    let table = format!("{}.v1_{:08x}", common::run_schema(), common::rand_u32());
    let ddl = v1_ddl(&table, "BYTEA", "TIMESTAMPTZ", "octet_length", "");
    sqlx::raw_sql(AssertSqlSafe(ddl))
        .execute(&pool)
        .await
        .unwrap();
    let old = old_tokens(30);
    let created = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap() - Duration::days(3);
    let used = created + Duration::days(1);
    for (i, t) in old.iter().enumerate() {
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO {table} VALUES ($1, 'alice', NULL, $2, NULL, 'tokens:read', $3, 'dz', $4, $5, $6, $7, $8)"
        )))
        .bind(t.id.as_slice())
        .bind(&t.name)
        .bind(t.hash.as_slice())
        .bind(created + Duration::seconds(i as i64))
        .bind(created + Duration::days(365))
        .bind(used)
        .bind(t.revoked.then_some(used))
        .bind(t.revoked.then_some("old reason"))
        .execute(&pool)
        .await
        .unwrap();
    }
    let store = PostgresStore::with_table(pool.clone(), &table).unwrap();
    store.migrate().await.expect("upgrade from version 1");
    let versions: Vec<i32> = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT version FROM {table}_schema ORDER BY version"
    )))
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(versions, [1, 2, 3, 4, 5, 6]);
    store
        .migrate()
        .await
        .expect("migrating again changes nothing");
    let tokens = ApiTokens::new(store, "dz").unwrap();
    check_upgraded(&tokens, &old, used).await;
}
