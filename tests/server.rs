//! The example server's API, end to end: its router started in-process on 127.0.0.1:0 and
//! driven with a real HTTP client, on SQLite and (with `API_TOKENS_TEST_POSTGRES_URL`) on
//! PostgreSQL.

#[path = "../examples/server/app/mod.rs"]
#[allow(dead_code)]
mod app;
mod common;

use std::sync::Arc;

use api_tokens::{ApiTokens, PostgresStore, SqliteStore, TokenStore};
use reqwest::StatusCode;
use reqwest::header::HeaderValue;
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime, format_description::well_known::Rfc3339};

const USERS: &str = "alice@example.com:alice-pw:tenant_a,bob@example.com:bob-pw:tenant_b";

/// Where a server keeps its tokens, so a test can restart it on the same data.
#[derive(Clone)]
enum Db {
    Sqlite(String),
    Postgres { url: String, table: String },
}

struct Server {
    base: String,
    db: Db,
    task: tokio::task::JoinHandle<()>,
    http: reqwest::Client,
}

fn users() -> Arc<app::Users> {
    static USERS_ONCE: std::sync::OnceLock<Arc<app::Users>> = std::sync::OnceLock::new();
    USERS_ONCE
        .get_or_init(|| Arc::new(app::Users::from_spec(USERS).expect("valid users")))
        .clone()
}

async fn serve<St: TokenStore>(store: St) -> (String, tokio::task::JoinHandle<()>) {
    let state = app::AppState {
        tokens: ApiTokens::new(store, "api_prod").unwrap(),
        users: users(),
        limiter: Arc::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app::router(state)).await.unwrap();
    });
    (base, task)
}

impl Server {
    async fn start(db: Db) -> Self {
        let (base, task) = match &db {
            Db::Sqlite(url) => {
                let store = SqliteStore::connect(url).await.unwrap();
                store.migrate().await.unwrap();
                serve(store).await
            }
            Db::Postgres { url, table } => {
                let pool = common::pool_for(url, "api_tokens_server_tests", 4).await;
                let store = PostgresStore::with_table(pool, table).unwrap();
                store.migrate().await.unwrap();
                serve(store).await
            }
        };
        Self {
            base,
            db,
            task,
            http: reqwest::Client::new(),
        }
    }

    async fn restart(self) -> Self {
        self.task.abort();
        let _ = self.task.await;
        Self::start(self.db).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn login(&self, email: &str, password: &str) -> (StatusCode, Value) {
        send(
            self.http
                .post(self.url("/auth/token"))
                .json(&json!({ "email": email, "password": password })),
        )
        .await
    }

    /// A login token (every scope) for alice.
    async fn alice(&self) -> String {
        let (status, body) = self.login("alice@example.com", "alice-pw").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        send(self.http.get(self.url(path)).bearer_auth(token)).await
    }

    async fn create(&self, token: &str, body: Value) -> (StatusCode, Value) {
        send(
            self.http
                .post(self.url("/api/v1/tokens"))
                .bearer_auth(token)
                .json(&body),
        )
        .await
    }

    async fn revoke(&self, token: &str, id: &str, body: Value) -> (StatusCode, Value) {
        send(
            self.http
                .delete(self.url(&format!("/api/v1/tokens/{id}")))
                .bearer_auth(token)
                .json(&body),
        )
        .await
    }
}

/// Send a request; its status and JSON body (`null` if the body is not JSON).
async fn send(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let r = request.send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn sqlite_server() -> Server {
    let dir = tempfile::tempdir().unwrap().keep();
    let url = format!("sqlite://{}", dir.join("server.db").display());
    Server::start(Db::Sqlite(url)).await
}

async fn postgres_server() -> Server {
    let url = common::url();
    let table = format!("{}.srv_{:08x}", common::run_schema(), common::rand_u32());
    Server::start(Db::Postgres { url, table }).await
}

fn parse_time(v: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(v.as_str().expect("a timestamp"), &Rfc3339).expect("RFC 3339")
}

fn assert_error(status: StatusCode, body: &Value, expected: StatusCode, code: &str) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert!(body["message"].is_string(), "{body}");
}

// ---------------------------------------------------------------------------------------
// Scenarios, each run once per database.

async fn login_issues_a_bearer_token(s: &Server) {
    let (status, body) = s.login("Alice@Example.com", "alice-pw").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["access_token"].as_str().unwrap();
    assert!(token.starts_with("api_prod_"));
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["token_id"].as_str().unwrap().len(), 32);
    assert_eq!(body["user"]["email"], "alice@example.com");
    assert_eq!(body["user"]["tenant_id"], "tenant_a");
    assert!(body["user"]["id"].as_str().unwrap().starts_with("user_"));
    let lifetime = parse_time(&body["expires_at"]) - OffsetDateTime::now_utc();
    assert!(
        (lifetime - Duration::days(365)).abs() < Duration::minutes(1),
        "{lifetime}"
    );
    let (status, me) = s.get("/api/v1/me", token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        me["token"]["scopes"],
        json!(["profile:read", "tokens:read", "tokens:write"])
    );
}

async fn login_rejects_bad_requests_and_credentials(s: &Server) {
    let post = |body: &'static str, ctype: &'static str| {
        s.http
            .post(s.url("/auth/token"))
            .header("content-type", ctype)
            .body(body)
            .send()
    };
    for (body, ctype, expected) in [
        ("{not json", "application/json", StatusCode::BAD_REQUEST),
        (
            r#"{"email":"alice@example.com"}"#,
            "application/json",
            StatusCode::BAD_REQUEST,
        ),
        (
            r#"{"email":1,"password":2}"#,
            "application/json",
            StatusCode::BAD_REQUEST,
        ),
        ("", "application/json", StatusCode::BAD_REQUEST),
        (
            r#"{"email":"a","password":"b"}"#,
            "text/plain",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
    ] {
        let r = post(body, ctype).await.unwrap();
        assert_eq!(r.status(), expected, "{body}");
        let json: Value = r.json().await.unwrap();
        assert!(json["code"].is_string() && json["message"].is_string());
        assert!(
            !json.to_string().contains("alice@example.com"),
            "the body is not echoed"
        );
    }
    let (s1, wrong_password) = s.login("alice@example.com", "nope").await;
    let (s2, unknown_email) = s.login("nobody@example.com", "alice-pw").await;
    assert_error(
        s1,
        &wrong_password,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    );
    assert_eq!(
        (s1, &wrong_password),
        (s2, &unknown_email),
        "the same answer for both"
    );
}

async fn failed_logins_are_rate_limited(s: &Server) {
    for _ in 0..app::MAX_FAILED_LOGINS {
        let (status, _) = s.login("bob@example.com", "wrong").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let r = s
        .http
        .post(s.url("/auth/token"))
        .json(&json!({ "email": "bob@example.com", "password": "bob-pw" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "too_many_requests");
    let (status, _) = s.login("alice@example.com", "alice-pw").await;
    assert_eq!(status, StatusCode::OK, "other emails are not limited");
}

async fn delete_auth_token_revokes_only_the_token_in_use(s: &Server) {
    let first = s.alice().await;
    let second = s.alice().await;
    let r = s
        .http
        .delete(s.url("/auth/token"))
        .header("X-API-Key", &first)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["message"], "Token revoked successfully");
    let (status, body) = s.get("/api/v1/me", &first).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "invalid_token");
    let (status, _) = s.get("/api/v1/me", &second).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the user's other tokens keep working"
    );
    let r = s
        .http
        .delete(s.url("/auth/token"))
        .bearer_auth(&first)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "a revoked token cannot revoke"
    );
    let r = s.http.delete(s.url("/auth/token")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

async fn create_token_returns_the_token_once_with_its_info(s: &Server) {
    let alice = s.alice().await;
    let (status, body) = s
        .create(
            &alice,
            json!({ "name": "deploy-script", "description": "CI", "expires_in_days": 30 }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let token = body["token"].as_str().unwrap();
    let info = &body["token_info"];
    assert_eq!(info["name"], "deploy-script");
    assert_eq!(info["description"], "CI");
    assert_eq!(info["token_type"], "api");
    assert_eq!(
        info["scopes"],
        json!(["profile:read", "tokens:read"]),
        "read-only by default"
    );
    assert!(token.starts_with(info["token_prefix"].as_str().unwrap()));
    for field in ["last_used_at", "revoked_at", "revocation_reason"] {
        assert!(info[field].is_null(), "{field}");
    }
    let lifetime = parse_time(&info["expires_at"]) - parse_time(&info["created_at"]);
    assert_eq!(lifetime, Duration::days(30));
    let (status, _) = s.get("/api/v1/me", token).await;
    assert_eq!(status, StatusCode::OK);

    let (_, body) = s.create(&alice, json!({ "name": "default-expiry" })).await;
    let info = &body["token_info"];
    assert_eq!(
        parse_time(&info["expires_at"]) - parse_time(&info["created_at"]),
        Duration::days(365)
    );

    // A read-only token cannot create tokens; no token grants what it lacks.
    let (status, body) = s.create(token, json!({ "name": "x" })).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "insufficient_scope");
    let (_, body) = s
        .create(
            &alice,
            json!({ "name": "writer", "scopes": ["tokens:write", "tokens:read"] }),
        )
        .await;
    let writer = body["token"].as_str().unwrap();
    let (status, body) = s
        .create(writer, json!({ "name": "x", "scopes": ["profile:read"] }))
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "insufficient_scope");
    let (status, _) = s
        .create(writer, json!({ "name": "x", "scopes": ["tokens:read"] }))
        .await;
    assert_eq!(status, StatusCode::CREATED);
}

async fn create_token_validation_is_422_with_details(s: &Server) {
    let alice = s.alice().await;
    for (body, field) in [
        (json!({}), "name"),
        (json!({ "name": "" }), "name"),
        (json!({ "name": "x".repeat(256) }), "name"),
        (
            json!({ "name": "ok", "expires_in_days": 0 }),
            "expires_in_days",
        ),
        (
            json!({ "name": "ok", "expires_in_days": 366 }),
            "expires_in_days",
        ),
        (
            json!({ "name": "ok", "scopes": ["bad scope"] }),
            "scopes[0]",
        ),
    ] {
        let (status, resp) = s.create(&alice, body.clone()).await;
        assert_error(
            status,
            &resp,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        );
        let details = resp["details"].as_array().unwrap();
        assert!(
            details
                .iter()
                .any(|d| d["field"] == field && d["reason"].is_string()),
            "{body} -> {resp}"
        );
    }
    let (status, _) = s
        .create(&alice, json!({ "name": "ok", "expires_in_days": "soon" }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = s.get("/api/v1/tokens?per_page=100", &alice).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["meta"]["total"], 1,
        "only the login token: nothing was written"
    );
}

async fn list_tokens_is_private_paged_and_newest_first(s: &Server) {
    let alice = s.alice().await;
    let mut created = Vec::new();
    for i in 0..4 {
        let (_, body) = s.create(&alice, json!({ "name": format!("t{i}") })).await;
        created.push(body);
    }
    let (_, bob) = s.login("bob@example.com", "bob-pw").await;
    let bob = bob["access_token"].as_str().unwrap().to_owned();
    s.create(&bob, json!({ "name": "bobs" })).await;

    let (status, page) = s.get("/api/v1/tokens?page=1&per_page=2", &alice).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        page["meta"],
        json!({ "page": 1, "per_page": 2, "total": 5 })
    );
    let names: Vec<_> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].clone())
        .collect();
    assert_eq!(names, [json!("t3"), json!("t2")], "newest first");
    let (_, page3) = s.get("/api/v1/tokens?page=3&per_page=2", &alice).await;
    assert_eq!(page3["data"][0]["name"], "login token");
    let text = page3.to_string() + &page.to_string();
    assert!(
        !text.contains(&alice) && !text.contains("hash"),
        "never the plaintext or hash"
    );
    for t in &created {
        assert!(!text.contains(t["token"].as_str().unwrap()));
    }
    let (_, bobs) = s.get("/api/v1/tokens", &bob).await;
    assert_eq!(bobs["meta"]["total"], 2, "only the caller's own tokens");

    let id = created[0]["token_info"]["id"].as_str().unwrap();
    let (status, _) = s
        .revoke(
            &alice,
            id,
            json!({ "password": "alice-pw", "reason": "old" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, active) = s.get("/api/v1/tokens", &alice).await;
    assert_eq!(active["meta"]["total"], 4);
    let (_, all) = s
        .get("/api/v1/tokens?include_revoked=true&per_page=100", &alice)
        .await;
    assert_eq!(all["meta"]["total"], 5);
    let revoked = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .unwrap();
    assert_eq!(revoked["revocation_reason"], "old");
    assert!(revoked["revoked_at"].is_string());

    for query in [
        "page=0",
        "per_page=0",
        "per_page=101",
        "page=x",
        "per_page=-1",
        "include_revoked=maybe",
    ] {
        let (status, body) = s.get(&format!("/api/v1/tokens?{query}"), &alice).await;
        assert_error(
            status,
            &body,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        );
        assert!(
            body["details"].as_array().is_some_and(|d| !d.is_empty()),
            "{query}"
        );
    }
    let (_, body) = s
        .create(
            &alice,
            json!({ "name": "reader", "scopes": ["profile:read"] }),
        )
        .await;
    let (status, _) = s
        .get("/api/v1/tokens", body["token"].as_str().unwrap())
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "listing needs tokens:read");
}

async fn a_repeated_query_field_takes_its_last_value(s: &Server) {
    let alice = s.alice().await;
    for i in 0..3 {
        s.create(&alice, json!({ "name": format!("t{i}") })).await;
    }
    let (status, page) = s
        .get("/api/v1/tokens?per_page=1&page=3&page=2", &alice)
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["meta"]["page"], 2);
    assert_eq!(page["data"][0]["name"], "t1");
}

async fn revoke_by_id_needs_the_owners_password(s: &Server) {
    let alice = s.alice().await;
    let (_, created) = s.create(&alice, json!({ "name": "victim" })).await;
    let token = created["token"].as_str().unwrap();
    let id = created["token_info"]["id"].as_str().unwrap();

    let (status, body) = s.revoke(&alice, id, json!({ "password": "wrong" })).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "wrong_password");
    assert_eq!(
        s.get("/api/v1/me", token).await.0,
        StatusCode::OK,
        "untouched"
    );
    let (status, body) = s.revoke(&alice, id, json!({})).await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );

    let (_, bob) = s.login("bob@example.com", "bob-pw").await;
    let bob = bob["access_token"].as_str().unwrap().to_owned();
    let (status, body) = s.revoke(&bob, id, json!({ "password": "bob-pw" })).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, unknown) = s
        .revoke(
            &alice,
            "00000000000000000000000000000000",
            json!({ "password": "alice-pw" }),
        )
        .await;
    assert_eq!(
        (status, &unknown),
        (StatusCode::NOT_FOUND, &body),
        "another user's id looks like no id"
    );
    let (status, _) = s
        .revoke(&alice, "not-an-id", json!({ "password": "alice-pw" }))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, body) = s
        .revoke(
            &alice,
            id,
            json!({ "password": "alice-pw", "reason": "done" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["message"], "Token revoked successfully");
    assert_eq!(s.get("/api/v1/me", token).await.0, StatusCode::UNAUTHORIZED);
    let (status, body) = s
        .revoke(&alice, id, json!({ "password": "alice-pw" }))
        .await;
    assert_error(status, &body, StatusCode::CONFLICT, "already_revoked");
}

async fn me_shows_the_caller_and_the_token(s: &Server) {
    let alice = s.alice().await;
    let (status, me) = s.get("/api/v1/me", &alice).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["email"], "alice@example.com");
    assert_eq!(me["tenant_id"], "tenant_a");
    assert_eq!(me["token"]["name"], "login token");
    assert_eq!(me["token"]["id"].as_str().unwrap().len(), 32);
    let (_, body) = s
        .create(&alice, json!({ "name": "t", "scopes": ["tokens:read"] }))
        .await;
    let (status, body) = s.get("/api/v1/me", body["token"].as_str().unwrap()).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "insufficient_scope");
}

async fn the_tenant_header_is_honoured_on_every_route(s: &Server) {
    let alice = s.alice().await;
    let (_, created) = s.create(&alice, json!({ "name": "t" })).await;
    let id = created["token_info"]["id"].as_str().unwrap().to_owned();
    let requests = |tenant: &'static str| {
        [
            s.http.get(s.url("/api/v1/me")),
            s.http.get(s.url("/api/v1/tokens")),
            s.http
                .post(s.url("/api/v1/tokens"))
                .json(&json!({ "name": "n" })),
            s.http
                .delete(s.url(&format!("/api/v1/tokens/{id}")))
                .json(&json!({ "password": "alice-pw" })),
            s.http.delete(s.url("/auth/token")),
        ]
        .map(|r| r.bearer_auth(&alice).header("x-business-id", tenant))
    };
    for r in requests("tenant_b") {
        let r = r.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["code"], "wrong_tenant");
    }
    let (status, _) = s.get("/api/v1/me", &alice).await;
    assert_eq!(status, StatusCode::OK, "nothing above went through");
    for r in requests("tenant_a") {
        let r = r.send().await.unwrap();
        assert!(r.status().is_success(), "{}", r.status());
    }
}

async fn bad_input_never_yields_a_500(s: &Server) {
    let alice = s.alice().await;
    // Over the 64 KiB limit, yet small enough that the whole request sits in the loopback
    // socket buffers before the server answers 413 and closes the connection.
    let huge = "x".repeat(80 * 1024);
    let non_utf8 = HeaderValue::from_bytes(b"Bearer \xff\xfe\xfd").unwrap();
    let requests = vec![
        s.http.get(s.url("/api/v1/me")).bearer_auth("garbage"),
        s.http.get(s.url("/api/v1/me")).bearer_auth("api_prod_00"),
        s.http
            .get(s.url("/api/v1/me"))
            .bearer_auth("a".repeat(8 * 1024)),
        s.http
            .get(s.url("/api/v1/me"))
            .header("x-api-key", "b".repeat(8 * 1024)),
        s.http
            .get(s.url("/api/v1/me"))
            .header("authorization", non_utf8),
        s.http
            .get(s.url("/api/v1/me"))
            .bearer_auth(&alice)
            .header("x-business-id", HeaderValue::from_bytes(b"\xff").unwrap()),
        s.http
            .get(s.url("/api/v1/me"))
            .bearer_auth(format!("{alice}x")),
        s.http
            .get(s.url("/api/v1/me"))
            .bearer_auth(alice.to_uppercase()),
        s.http
            .post(s.url("/api/v1/tokens"))
            .bearer_auth(&alice)
            .header("content-type", "application/json")
            .body(huge.clone()),
        s.http
            .post(s.url("/auth/token"))
            .header("content-type", "application/json")
            .body(huge),
        s.http
            .post(s.url("/api/v1/tokens"))
            .bearer_auth(&alice)
            .header("content-type", "application/json")
            .body("[1,2"),
        s.http
            .post(s.url("/api/v1/tokens"))
            .bearer_auth(&alice)
            .header("content-type", "application/json")
            .body(vec![0xff, 0xfe]),
        s.http
            .post(s.url("/api/v1/tokens"))
            .bearer_auth(&alice)
            .json(&json!({ "name": ["x"] })),
        s.http
            .post(s.url("/api/v1/tokens"))
            .bearer_auth(&alice)
            .json(&json!({ "name": "x", "expires_in_days": 1e30 })),
        s.http
            .delete(s.url("/api/v1/tokens/%ff%fe"))
            .bearer_auth(&alice)
            .json(&json!({ "password": "alice-pw" })),
        s.http
            .get(s.url("/api/v1/tokens?page=99999999999999999999"))
            .bearer_auth(&alice),
        s.http
            .get(s.url("/api/v1/tokens?page=1&page=0"))
            .bearer_auth(&alice),
        s.http.get(s.url("/nowhere")),
        s.http.put(s.url("/api/v1/me")).bearer_auth(&alice),
    ];
    for (i, r) in requests.into_iter().enumerate() {
        let r = r.send().await.unwrap();
        let status = r.status();
        assert!(status.is_client_error(), "request {i}: {status}");
        assert_eq!(
            r.headers()["content-type"],
            "application/json",
            "request {i}"
        );
        let body: Value = r
            .json()
            .await
            .unwrap_or_else(|e| panic!("request {i}: {e}"));
        assert!(
            body["code"].is_string() && body["message"].is_string(),
            "request {i}: {body}"
        );
    }
    let (status, _) = s.get("/api/v1/me", &alice).await;
    assert_eq!(status, StatusCode::OK, "the server is still fine");
}

async fn a_restart_loses_nothing(s: Server) {
    let alice = s.alice().await;
    let (_, created) = s.create(&alice, json!({ "name": "survivor" })).await;
    let survivor = created["token"].as_str().unwrap().to_owned();
    let (_, doomed) = s.create(&alice, json!({ "name": "doomed" })).await;
    let doomed_id = doomed["token_info"]["id"].as_str().unwrap().to_owned();
    let (status, _) = s
        .revoke(&alice, &doomed_id, json!({ "password": "alice-pw" }))
        .await;
    assert_eq!(status, StatusCode::OK);
    s.get("/api/v1/me", &survivor).await;

    let s = s.restart().await;
    let (status, me) = s.get("/api/v1/me", &survivor).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    let (status, _) = s.get("/api/v1/me", doomed["token"].as_str().unwrap()).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a revocation survives a restart"
    );
    let (_, all) = s.get("/api/v1/tokens?include_revoked=true", &alice).await;
    assert_eq!(all["meta"]["total"], 3);
    let survivor_info = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "survivor")
        .unwrap();
    assert!(
        survivor_info["last_used_at"].is_string(),
        "last use was kept"
    );
}

macro_rules! api_tests {
    (@each $attrs:tt $start:expr; $name:ident $(, $rest:ident)*) => {
        api_tests!(@one $attrs $start; $name);
        api_tests!(@each $attrs $start; $($rest),*);
    };
    (@each $attrs:tt $start:expr;) => {};
    (@one [$(#[$attr:meta])*] $start:expr; $name:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        $(#[$attr])*
        async fn $name() {
            super::$name(&$start.await).await;
        }
    };
    (@attrs [$($attrs:tt)*] #[$attr:meta] $($rest:tt)*) => {
        api_tests!(@attrs [$($attrs)* #[$attr]] $($rest)*);
    };
    (@attrs [$(#[$attr:meta])*] $start:expr) => {
        api_tests!(@each [$(#[$attr])*] $start;
            login_issues_a_bearer_token,
            login_rejects_bad_requests_and_credentials,
            failed_logins_are_rate_limited,
            delete_auth_token_revokes_only_the_token_in_use,
            create_token_returns_the_token_once_with_its_info,
            create_token_validation_is_422_with_details,
            list_tokens_is_private_paged_and_newest_first,
            a_repeated_query_field_takes_its_last_value,
            revoke_by_id_needs_the_owners_password,
            me_shows_the_caller_and_the_token,
            the_tenant_header_is_honoured_on_every_route,
            bad_input_never_yields_a_500
        );
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        $(#[$attr])*
        async fn a_restart_loses_nothing() {
            super::a_restart_loses_nothing($start.await).await;
        }
    };
    ($($input:tt)+) => {
        api_tests!(@attrs [] $($input)+);
    };
}

mod sqlite {
    api_tests!(super::sqlite_server());
}

mod postgres {
    api_tests!(
        #[cfg_attr(
            not(api_tokens_postgres_tests),
            ignore = "set API_TOKENS_TEST_POSTGRES_URL to run the PostgreSQL suite"
        )]
        super::postgres_server()
    );
}
