//! Upgrading a populated database from schema version 1 (exactly as api-tokens 0.1 created
//! it) in place: every token still verifies, every column of every row reads back as it was
//! written, the lifecycle added since works on old tokens, and every version step is
//! recorded.

#[cfg(feature = "postgres")]
mod common;

use api_tokens::{
    ApiTokens, AuthError, ListRequest, NewToken, TokenEdit, TokenHash, TokenId, TokenStore,
};
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
    tenant: Option<String>,
    name: String,
    description: Option<String>,
    /// As 0.1 wrote them: space-separated, sorted.
    scopes: &'static str,
    created: OffsetDateTime,
    expires: Option<OffsetDateTime>,
    used: Option<OffsetDateTime>,
    revoked: Option<OffsetDateTime>,
}

/// Tokens as 0.1 wrote them (the format has not changed): prefix `dz`, 16-byte id, 32-byte
/// secret, CRC32; created one second apart from `created`, with every column varied
/// (tenant or none, description or none, one scope or two, an expiry or none, used or
/// never, revoked or not).
fn old_tokens(n: usize, created: OffsetDateTime) -> Vec<OldToken> {
    (0..n)
        .map(|i| {
            let mut id = [0u8; 16];
            let mut secret = [0u8; 32];
            id[..8].copy_from_slice(&(i as u64 + 1).to_be_bytes());
            secret[..8].copy_from_slice(&(i as u64 * 7919 + 13).to_be_bytes());
            id[15] = i as u8;
            let signed = format!("dz_{}{}", hex::encode(id), hex::encode(secret));
            let plaintext = format!("{signed}{:08x}", crc32fast::hash(signed.as_bytes()));
            let created = created + Duration::seconds(i as i64);
            OldToken {
                plaintext,
                id,
                hash: *TokenHash::of_secret(&secret).as_bytes(),
                tenant: (i % 4 == 1).then(|| "biz_1".to_owned()),
                name: format!("old token {i}"),
                description: (i % 2 == 0).then(|| format!("made by 0.1, number {i}")),
                scopes: if i % 5 == 2 {
                    "a:read tokens:read"
                } else {
                    "tokens:read"
                },
                created,
                expires: (i % 7 != 3).then(|| created + Duration::days(365)),
                used: (i % 6 != 5).then(|| created + Duration::days(1)),
                revoked: (i % 3 == 0).then(|| created + Duration::days(2)),
            }
        })
        .collect()
}

/// After the upgrade: every column of every row reads back as it was written, the new
/// columns are empty, the active tokens verify, the revoked ones are still revoked with
/// their reason, and the store works for new tokens, rotations, edits and suspensions of
/// old tokens.
async fn check_upgraded<S: TokenStore>(tokens: &ApiTokens<S>, old: &[OldToken]) {
    for t in old {
        let info = tokens
            .get("alice", TokenId::from_bytes(t.id))
            .await
            .expect("get");
        let what = &t.name;
        assert_eq!(&*info.owner, "alice", "{what}");
        assert_eq!(info.tenant_id.as_deref(), t.tenant.as_deref(), "{what}");
        assert_eq!(&*info.name, t.name, "{what}");
        assert_eq!(
            info.description.as_deref(),
            t.description.as_deref(),
            "{what}"
        );
        assert_eq!(
            info.scopes.iter().collect::<Vec<_>>().join(" "),
            t.scopes,
            "{what}"
        );
        assert_eq!(info.created_at, t.created, "{what}");
        assert_eq!(info.expires_at, t.expires, "{what}");
        assert_eq!(info.last_used_at, t.used, "{what}: last use is kept");
        assert_eq!(info.revoked_at, t.revoked, "{what}");
        assert_eq!(
            info.revocation_reason.as_deref(),
            t.revoked.map(|_| "old reason"),
            "{what}"
        );
        assert_eq!(
            (
                info.suspended_at,
                info.metadata.is_none(),
                info.allowed_ips.is_none()
            ),
            (None, true, true),
            "{what}: the new columns are empty"
        );
        assert_eq!((info.replaced_by, info.created_by), (None, None), "{what}");
        let result = tokens.verify(&t.plaintext).await;
        if t.revoked.is_some() {
            assert!(
                matches!(result, Err(AuthError::Revoked { .. })),
                "{what}: {result:?}"
            );
        } else {
            let who = result.unwrap_or_else(|e| panic!("{what} no longer verifies: {e}"));
            assert_eq!(who.owner(), "alice");
            assert_eq!(who.name(), t.name);
            assert_eq!(who.tenant(), t.tenant.as_deref());
            assert_eq!(who.token_id(), TokenId::from_bytes(t.id));
        }
    }
    let all = ListRequest::new("alice")
        .per_page(100)
        .include_inactive(true);
    let listed = tokens.list(&all).await.expect("list");
    assert_eq!(listed.meta.total, old.len() as u64, "no row was lost");
    let fresh = tokens
        .issue(NewToken::new("alice", "after the upgrade"))
        .await
        .unwrap();
    let mut active = old.iter().filter(|t| t.revoked.is_none());
    // The lifecycle added since 0.1 works on an old token: edit, suspend, resume.
    let edited = TokenId::from_bytes(active.next().unwrap().id);
    let info = tokens
        .edit("alice", edited, &TokenEdit::new().name("renamed"))
        .await
        .expect("an old token can be edited");
    assert_eq!(&*info.name, "renamed");
    tokens.suspend("alice", edited).await.expect("suspend");
    let suspended = old
        .iter()
        .find(|t| TokenId::from_bytes(t.id) == edited)
        .unwrap();
    assert!(matches!(
        tokens.verify(&suspended.plaintext).await,
        Err(AuthError::Suspended { .. })
    ));
    tokens.resume("alice", edited).await.expect("resume");
    tokens.verify(&suspended.plaintext).await.expect("resumed");
    let rotating = active.next().unwrap();
    let id = tokens.format().parse(&rotating.plaintext).unwrap().id();
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
    let created = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap() - Duration::days(3);
    let old = old_tokens(30, created);
    let micros = |t: OffsetDateTime| (t.unix_timestamp_nanos() / 1000) as i64;
    for t in &old {
        sqlx::query(
            "INSERT INTO api_tokens VALUES (?1, 'alice', ?2, ?3, ?4, ?5, ?6, 'dz', ?7, ?8, ?9, ?10, ?11)",
        )
        .bind(t.id.as_slice())
        .bind(&t.tenant)
        .bind(&t.name)
        .bind(&t.description)
        .bind(t.scopes)
        .bind(t.hash.as_slice())
        .bind(micros(t.created))
        .bind(t.expires.map(micros))
        .bind(t.used.map(micros))
        .bind(t.revoked.map(micros))
        .bind(t.revoked.map(|_| "old reason"))
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
    check_upgraded(&tokens, &old).await;
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
    let created = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap() - Duration::days(3);
    let old = old_tokens(30, created);
    for t in &old {
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO {table} VALUES ($1, 'alice', $2, $3, $4, $5, $6, 'dz', $7, $8, $9, $10, $11)"
        )))
        .bind(t.id.as_slice())
        .bind(&t.tenant)
        .bind(&t.name)
        .bind(&t.description)
        .bind(t.scopes)
        .bind(t.hash.as_slice())
        .bind(t.created)
        .bind(t.expires)
        .bind(t.used)
        .bind(t.revoked)
        .bind(t.revoked.map(|_| "old reason"))
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
    check_upgraded(&tokens, &old).await;
}
