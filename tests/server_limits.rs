//! The example server's usage limits, rate limits (in the process, and shared on Redis by
//! two servers) and audit trail, over real HTTP on SQLite and PostgreSQL.

mod common;
#[macro_use]
mod server_harness;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use server_harness::*;

/// The caller's audit trail, read once: the read waits for the events queued before it,
/// so whatever the test did before is in it (no polling).
async fn audit(s: &Server, token: &str) -> Value {
    let (status, body) = s.get("/api/v1/audit?per_page=100", token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

// ---------------------------------------------------------------------------------------
// Scenarios, each run once per database.

/// `remaining` uses, each request consuming one, then 429 `usage_exceeded`; `token_info`
/// shows what is left; bad limits are 422 naming the field.
async fn a_token_with_remaining_uses_runs_out(s: &Server) {
    let alice = s.alice().await;
    let (status, created) = s
        .create(
            &alice,
            json!({ "name": "trial", "scopes": ["profile:read"], "remaining": 3,
                    "refill": { "interval": "monthly", "amount": 3 } }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["token_info"]["remaining"], 3);
    assert_eq!(
        created["token_info"]["refill"],
        json!({ "interval": "monthly", "amount": 3 })
    );
    let token = created["token"].as_str().unwrap();
    for _ in 0..3 {
        assert_eq!(s.get("/api/v1/me", token).await.0, StatusCode::OK);
    }
    let (status, body) = s.get("/api/v1/me", token).await;
    assert_error(
        status,
        &body,
        StatusCode::TOO_MANY_REQUESTS,
        "usage_exceeded",
    );
    let (_, listed) = s.get("/api/v1/tokens", &alice).await;
    let info = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "trial")
        .unwrap()
        .clone();
    assert_eq!(info["remaining"], 0);
    for (body, field) in [
        (json!({ "name": "x", "remaining": 0 }), "remaining"),
        (
            json!({ "name": "x", "refill": { "interval": "daily", "amount": 1 } }),
            "refill",
        ),
        (
            json!({ "name": "x", "remaining": 1, "refill": { "interval": "hourly", "amount": 1 } }),
            "refill.interval",
        ),
        (
            json!({ "name": "x", "remaining": 1, "refill": { "interval": "daily", "amount": 0 } }),
            "refill.amount",
        ),
        (
            json!({ "name": "x", "rate_limit": { "limit": 0, "per_seconds": 60 } }),
            "rate_limit.limit",
        ),
        (
            json!({ "name": "x", "rate_limit": { "limit": 5, "per_seconds": 0 } }),
            "rate_limit.per_seconds",
        ),
    ] {
        let (status, answer) = s.create(&alice, body.clone()).await;
        assert_error(
            status,
            &answer,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        );
        assert!(answer.to_string().contains(field), "{body}: {answer}");
    }
}

/// A rate-limited token: its burst, then 429 `rate_limited` with `Retry-After` and the
/// `RateLimit-*` headers; `token_info.rate_limit` shows the limit.
async fn a_rate_limited_token_gets_429_with_the_headers(s: &Server) {
    let alice = s.alice().await;
    let (status, created) = s
        .create(
            &alice,
            json!({ "name": "bot", "scopes": ["profile:read"], "rate_limit": { "limit": 2, "per_seconds": 60 } }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(
        created["token_info"]["rate_limit"],
        json!({ "limit": 2, "per_seconds": 60 })
    );
    let token = created["token"].as_str().unwrap();
    for _ in 0..2 {
        assert_eq!(s.get("/api/v1/me", token).await.0, StatusCode::OK);
    }
    let r = s
        .http
        .get(s.url("/api/v1/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let header = |name: &str| r.headers()[name].to_str().unwrap().to_owned();
    let retry: u64 = header("retry-after").parse().unwrap();
    assert!((29..=30).contains(&retry), "{retry}");
    assert_eq!(header("ratelimit-limit"), "2");
    assert_eq!(header("ratelimit-remaining"), "0");
    assert!(header("ratelimit-reset").parse::<u64>().unwrap() >= retry);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "rate_limited");
    assert_eq!(
        s.get("/api/v1/me", &alice).await.0,
        StatusCode::OK,
        "other tokens unaffected"
    );
}

/// With `REDIS_URL`, two servers on one database share each token's count: a limit of 3
/// spent across both.
async fn two_servers_share_rate_limits_on_redis(s: &Server) {
    let url = std::env::var("API_TOKENS_TEST_REDIS_URL").unwrap_or_default();
    if url.is_empty() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "in CI the Redis tests must run: set API_TOKENS_TEST_REDIS_URL"
        );
        eprintln!("API_TOKENS_TEST_REDIS_URL is not set; the shared-limit scenario is skipped");
        return;
    }
    let a = s.with(&[("REDIS_URL", &url)]).await;
    let b = s.with(&[("REDIS_URL", &url)]).await;
    let alice = a.alice().await;
    let (status, created) = a
        .create(
            &alice,
            json!({ "name": "shared", "scopes": ["profile:read"], "rate_limit": { "limit": 3, "per_seconds": 3600 } }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let token = created["token"].as_str().unwrap();
    assert_eq!(a.get("/api/v1/me", token).await.0, StatusCode::OK);
    assert_eq!(b.get("/api/v1/me", token).await.0, StatusCode::OK);
    assert_eq!(a.get("/api/v1/me", token).await.0, StatusCode::OK);
    let (status, body) = b.get("/api/v1/me", token).await;
    assert_error(status, &body, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
}

/// The caller's audit trail: its own events, newest first, with token ids, reasons and the
/// codes of failed verifications; never another user's; needs `tokens:read`.
async fn the_audit_trail_shows_a_user_its_own_events(s: &Server) {
    let alice = s.alice().await;
    let (_, created) = s
        .create(
            &alice,
            json!({ "name": "audited", "scopes": ["profile:read"] }),
        )
        .await;
    let id = created["token_info"]["id"].as_str().unwrap().to_owned();
    let token = created["token"].as_str().unwrap().to_owned();
    let (status, body) = s.get("/api/v1/tokens", &token).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "insufficient_scope");
    s.revoke(
        &alice,
        &id,
        json!({ "password": "alice-pw", "reason": "no longer needed" }),
    )
    .await;
    assert_eq!(
        s.get("/api/v1/me", &token).await.0,
        StatusCode::UNAUTHORIZED
    );
    let trail = audit(s, &alice).await;
    let events: Vec<&Value> = trail["data"].as_array().unwrap().iter().collect();
    let find = |event: &str| {
        events
            .iter()
            .find(|e| e["event"] == event && e["token_id"] == id.as_str())
            .copied()
            .unwrap_or_else(|| panic!("no {event} of {id} in {trail}"))
    };
    assert!(find("issued")["at"].is_string());
    assert_eq!(find("revoked")["reason"], "no longer needed");
    let failures: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "verify_failed" && e["token_id"] == id.as_str())
        .map(|e| e["code"].as_str().unwrap())
        .collect();
    assert!(
        failures.contains(&"insufficient_scope") && failures.contains(&"revoked"),
        "{failures:?}"
    );
    let first_at = events[0]["at"].as_str().unwrap();
    let last_at = events[events.len() - 1]["at"].as_str().unwrap();
    assert!(first_at >= last_at, "newest first");
    assert!(!trail.to_string().contains(&token), "never a token");
    assert!(trail["meta"]["total"].as_u64().unwrap() >= 4);

    let (_, bob) = s.login("bob@example.com", "bob-pw").await;
    let bob = bob["access_token"].as_str().unwrap();
    let (_, theirs) = s.get("/api/v1/audit", bob).await;
    assert!(
        !theirs.to_string().contains(&id),
        "another user's events are not shown: {theirs}"
    );
    let (status, body) = s.get("/api/v1/audit?per_page=101", &alice).await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
}

/// `token` with another secret (and a checksum that matches it): what anyone who has seen
/// a token's id can send.
fn with_wrong_secret(token: &str, n: u32) -> String {
    let body = &token[..token.len() - 8];
    let (head, secret) = body.split_at(body.len() - 8);
    let secret: String = format!("{n:08x}")
        .chars()
        .zip(secret.chars())
        .map(|(a, b)| {
            if a == b {
                if a == '0' { '1' } else { '0' }
            } else {
                a
            }
        })
        .collect();
    let signed = format!("{head}{secret}");
    format!("{signed}{:08x}", crc32fast::hash(signed.as_bytes()))
}

/// Wrong secrets for a real token id (which need no secret to send) are kept at most once a
/// minute per token: a flood of them neither buries the owner's trail nor delays its
/// lifecycle events.
async fn a_flood_of_wrong_secrets_does_not_bury_the_trail(s: &Server) {
    let alice = s.alice().await;
    let (_, created) = s
        .create(
            &alice,
            json!({ "name": "target", "scopes": ["profile:read"] }),
        )
        .await;
    let id = created["token_info"]["id"].as_str().unwrap().to_owned();
    let token = created["token"].as_str().unwrap().to_owned();
    for n in 0..60 {
        let forged = with_wrong_secret(&token, n);
        assert_ne!(forged, token);
        let (status, body) = s.get("/api/v1/me", &forged).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    }
    // A last failure of another kind: once it is in the trail, so is every one before it
    // (one writer, in order).
    let wrong_tenant = s.http.get(s.url("/api/v1/me")).bearer_auth(&token);
    let (status, body) = send(wrong_tenant.header("x-business-id", "tenant_b")).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "wrong_tenant");
    s.revoke(
        &alice,
        &id,
        json!({ "password": "alice-pw", "reason": "flooded" }),
    )
    .await;
    let trail = audit(s, &alice).await;
    let events = trail["data"].as_array().unwrap();
    let of = |key: &str, value: &str| {
        events
            .iter()
            .any(|e| e[key] == value && e["token_id"] == id.as_str())
    };
    assert!(
        of("event", "revoked") && of("code", "wrong_tenant"),
        "{trail}"
    );
    let invalid = trail["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["token_id"] == id.as_str() && e["code"] == "invalid")
        .count();
    // One a minute; two if the flood crossed a minute's end.
    assert!((1..=2).contains(&invalid), "{invalid} kept: {trail}");
    // The repeats left out are counted (the recorder is the process's: at least these).
    let metrics = s.metrics().await;
    let repeated: u64 = metrics
        .lines()
        .find(|l| l.starts_with(r#"audit_events_dropped_total{why="repeated"}"#))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no count of repeats in\n{metrics}"));
    assert!(repeated >= 58, "{repeated}");
}

/// A token held back by its rate or usage limit (a thief may keep it spent) can still be
/// revoked by its holder with `DELETE /auth/token`; a wrong tenant still cannot.
async fn a_spent_token_can_still_revoke_itself(s: &Server) {
    let alice = s.alice().await;
    for limits in [
        json!({ "rate_limit": { "limit": 1, "per_seconds": 3600 } }),
        json!({ "remaining": 1 }),
    ] {
        let mut body = json!({ "name": "spent", "scopes": ["profile:read"] });
        body.as_object_mut()
            .unwrap()
            .extend(limits.as_object().unwrap().clone());
        let (status, created) = s.create(&alice, body).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let token = created["token"].as_str().unwrap();
        assert_eq!(s.get("/api/v1/me", token).await.0, StatusCode::OK);
        assert_eq!(
            s.get("/api/v1/me", token).await.0,
            StatusCode::TOO_MANY_REQUESTS
        );
        let revoke = || s.http.delete(s.url("/auth/token")).bearer_auth(token);
        let (status, body) = send(revoke().header("x-business-id", "tenant_b")).await;
        assert_error(status, &body, StatusCode::FORBIDDEN, "wrong_tenant");
        let (status, body) = send(revoke()).await;
        assert_eq!(status, StatusCode::OK, "{limits}: {body}");
        let (status, body) = s.get("/api/v1/me", token).await;
        assert_error(status, &body, StatusCode::UNAUTHORIZED, "invalid_token");
    }
}

/// A PostgreSQL server, alice's login and a token of hers (`created`, as the API answered),
/// every event so far written, and a transaction holding the server's audit table locked:
/// the audit writers' inserts wait for it, reads and the token tables do not.
async fn with_the_audit_table_locked() -> (
    Server,
    String,
    Value,
    api_tokens::sqlx::Transaction<'static, api_tokens::sqlx::Postgres>,
) {
    use api_tokens::sqlx::{self, AssertSqlSafe};
    let s = postgres_server().await;
    let Db::Postgres { url, table } = &s.db else {
        unreachable!("a PostgreSQL server")
    };
    let alice = s.alice().await;
    let (status, created) = s
        .create(
            &alice,
            json!({ "name": "audited", "scopes": ["profile:read"] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    audit(&s, &alice).await;
    let pool = common::pool_for(url, "api_tokens_audit_lock", 1).await;
    let mut hold = pool.begin().await.unwrap();
    sqlx::raw_sql(AssertSqlSafe(format!(
        "LOCK TABLE {table}_audit IN EXCLUSIVE MODE"
    )))
    .execute(&mut *hold)
    .await
    .unwrap();
    (s, alice, created, hold)
}

/// The trail read right after an action shows it even when writing it is slow: the read
/// waits for every event queued before it. On PostgreSQL, where the audit table can be
/// locked while the token tables stay free: the revocation's event waits for the lock,
/// and so does the read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(api_tokens_postgres_tests),
    ignore = "set API_TOKENS_TEST_POSTGRES_URL to run the PostgreSQL suite"
)]
async fn the_trail_read_after_a_slow_write_shows_it() {
    let (s, alice, created, hold) = with_the_audit_table_locked().await;
    let id = created["token_info"]["id"].as_str().unwrap().to_owned();
    let (status, body) = s
        .revoke(
            &alice,
            &id,
            json!({ "password": "alice-pw", "reason": "slow" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        hold.rollback().await.unwrap();
    });
    let started = std::time::Instant::now();
    let trail = audit(&s, &alice).await;
    let waited = started.elapsed();
    release.await.unwrap();
    assert!(
        trail["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"] == "revoked" && e["token_id"] == id.as_str()),
        "the revocation is in the trail read after it: {trail}"
    );
    assert!(
        waited >= Duration::from_millis(300),
        "the read waited: {waited:?}"
    );
}

/// A flood of failures, which anyone holding a token's id can send, never slows the trail's
/// reads: with the audit table locked and hundreds of failures waiting behind it, a read
/// answers at once with what is written (it waits only for a backlog of up to a batch).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(api_tokens_postgres_tests),
    ignore = "set API_TOKENS_TEST_POSTGRES_URL to run the PostgreSQL suite"
)]
async fn a_backlog_of_failures_does_not_hold_the_reads_up() {
    let (s, alice, created, hold) = with_the_audit_table_locked().await;
    let token = created["token"].as_str().unwrap().to_owned();
    // The first failure is written (and waits for the lock); the rest queue behind it.
    for n in 0..300 {
        let (status, _) = s.get("/api/v1/me", &with_wrong_secret(&token, n)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let started = std::time::Instant::now();
    audit(&s, &alice).await;
    let waited = started.elapsed();
    hold.rollback().await.unwrap();
    assert!(
        waited < Duration::from_millis(600),
        "the read did not wait for the flood: {waited:?}"
    );
}

/// `REDIS_DEADLINE_MS` is how long the server's rate-limit check waits for Redis: with
/// Redis stalled behind a proxy, a rate-limited token is refused (503
/// `rate_limiter_unavailable`, the default `REDIS_FAILURE=refuse`) once that long has
/// passed, not at the library's 50 ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(api_tokens_redis_tests),
    ignore = "set API_TOKENS_TEST_REDIS_URL to run the Redis suite"
)]
async fn the_redis_deadline_is_the_configured_one() {
    let redis = std::env::var("API_TOKENS_TEST_REDIS_URL").expect("set at build time");
    let target = redis
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let target = tokio::net::lookup_host(target)
        .await
        .unwrap()
        .next()
        .unwrap();
    let proxy = common::tcp_proxy::Proxy::start(target).await;
    let url = format!("redis://{}", proxy.addr);
    let s = sqlite_server()
        .await
        .with(&[("REDIS_URL", &url), ("REDIS_DEADLINE_MS", "1500")])
        .await;
    let alice = s.alice().await;
    let (status, created) = s
        .create(
            &alice,
            json!({ "name": "limited", "scopes": ["profile:read"],
                    "rate_limit": { "limit": 100, "per_seconds": 60 } }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let token = created["token"].as_str().unwrap();
    assert_eq!(s.get("/api/v1/me", token).await.0, StatusCode::OK);
    proxy.stall(true);
    let started = std::time::Instant::now();
    let (status, body) = s.get("/api/v1/me", token).await;
    let waited = started.elapsed();
    proxy.stall(false);
    assert_error(
        status,
        &body,
        StatusCode::SERVICE_UNAVAILABLE,
        "rate_limiter_unavailable",
    );
    assert!(
        (Duration::from_millis(1400)..Duration::from_secs(5)).contains(&waited),
        "refused after the configured 1.5 s: {waited:?}"
    );
}

/// The audit writers end once the token service is gone, having written what was queued:
/// they hold the store, not the service (whose sink holds their queues open).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_writers_end_with_the_service() {
    use api_tokens::{DynTokenStore, NewToken, SqliteStore};
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("audit.db").display());
    let store = SqliteStore::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    let log = app::AuditLog::sqlite(store.pool().clone(), store.table())
        .await
        .unwrap();
    let sinks = log.sink();
    let tokens = app::token_service(
        DynTokenStore::new(store),
        &config(&[]),
        Some(sinks.router()),
    )
    .await
    .unwrap();
    let log = sinks.start(&tokens);
    assert_eq!(log.running_writers(), 2);
    tokens
        .issue(NewToken::new("alice@example.com", "ci"))
        .await
        .unwrap();
    drop(tokens);
    let started = std::time::Instant::now();
    while log.running_writers() > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the writers outlive the service"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (events, total) = log.list("alice@example.com", 1, 10).await.unwrap();
    assert_eq!(
        (events.len(), total),
        (1, 1),
        "what was queued is written first"
    );
}

db_scenarios!(
    a_spent_token_can_still_revoke_itself,
    a_flood_of_wrong_secrets_does_not_bury_the_trail,
    a_token_with_remaining_uses_runs_out,
    a_rate_limited_token_gets_429_with_the_headers,
    two_servers_share_rate_limits_on_redis,
    the_audit_trail_shows_a_user_its_own_events,
);
