//! The example server started in-process on 127.0.0.1:0, on SQLite or PostgreSQL, with a
//! real HTTP client and the requests the scenarios share. Used by `tests/server.rs` and
//! `tests/server_lifecycle.rs`.
#![allow(dead_code)] // each test file uses part of this

#[path = "../../examples/server/app/mod.rs"]
#[allow(dead_code, unused_imports)]
pub mod app;

use std::sync::Arc;

use api_tokens::{DynTokenStore, PostgresStore, SqliteStore, TokenStore};
use reqwest::StatusCode;
use serde_json::{Value, json};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

pub const USERS: &str = "alice@example.com:alice-pw:tenant_a,bob@example.com:bob-pw:tenant_b";

/// What every test server runs with, unless a test overrides it: limits high enough that
/// the scenarios' own logins never meet them, and the client address taken from a header
/// set by the loopback "proxy" the tests connect from, so a test can speak from several
/// addresses.
pub const TEST_SETTINGS: &[(&str, &str)] = &[
    ("LOGIN_ATTEMPTS_PER_ADDRESS", "10000"),
    ("LOGIN_ATTEMPTS_PER_ACCOUNT_ADDRESS", "10000"),
    ("LOGIN_ATTEMPTS_PER_ACCOUNT", "10000"),
    ("LOGIN_ATTEMPTS_PER_NETWORK", "10000"),
    ("CONFIRM_ATTEMPTS_PER_TOKEN", "10000"),
    ("CLIENT_IP_HEADER", "x-test-client-ip"),
    ("TRUSTED_PROXIES", "127.0.0.1/32"),
];

/// Where a server keeps its tokens, so a test can restart it on the same data.
#[derive(Clone)]
pub enum Db {
    Sqlite(String),
    Postgres { url: String, table: String },
}

pub struct Server {
    pub base: String,
    pub db: Db,
    pub settings: Vec<(String, String)>,
    pub users: Arc<app::Users>,
    pub task: tokio::task::JoinHandle<()>,
    pub http: reqwest::Client,
}

pub fn users() -> Arc<app::Users> {
    static USERS_ONCE: std::sync::OnceLock<Arc<app::Users>> = std::sync::OnceLock::new();
    USERS_ONCE
        .get_or_init(|| Arc::new(app::Users::from_spec(USERS).expect("valid users")))
        .clone()
}

/// The server's configuration: [`TEST_SETTINGS`], then `settings` over them.
pub fn config(settings: &[(String, String)]) -> app::Config {
    let mut all: std::collections::HashMap<String, String> = TEST_SETTINGS
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    all.extend(settings.iter().cloned());
    app::Config::from_lookup(|name| all.get(name).cloned()).expect("a valid test configuration")
}

pub async fn serve<St: TokenStore>(
    store: St,
    audit: app::AuditLog,
    users: Arc<app::Users>,
    config: app::Config,
) -> (String, tokio::task::JoinHandle<()>) {
    let sinks = audit.sink();
    let tokens = app::token_service(DynTokenStore::new(store), &config, Some(sinks.router()))
        .await
        .unwrap();
    let audit = sinks.start(&tokens);
    let state = app::AppState::new(tokens, users, config).with_audit(audit);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        app::serve(listener, state, std::future::pending()).await;
    });
    (base, task)
}

impl Server {
    pub async fn start(db: Db) -> Self {
        Self::start_with(db, users(), Vec::new()).await
    }

    pub async fn start_with(
        db: Db,
        users: Arc<app::Users>,
        settings: Vec<(String, String)>,
    ) -> Self {
        let config = config(&settings);
        let (base, task) = match &db {
            Db::Sqlite(url) => {
                let store = SqliteStore::connect(url).await.unwrap();
                store.migrate().await.unwrap();
                let audit = app::AuditLog::sqlite(store.pool().clone(), store.table())
                    .await
                    .unwrap();
                serve(store, audit, Arc::clone(&users), config).await
            }
            Db::Postgres { url, table } => {
                let pool = crate::common::pool_for(url, "api_tokens_server_tests", 4).await;
                let store = PostgresStore::with_table(pool, table).unwrap();
                store.migrate().await.unwrap();
                let audit = app::AuditLog::postgres(store.pool().clone(), store.table())
                    .await
                    .unwrap();
                serve(store, audit, Arc::clone(&users), config).await
            }
        };
        Self {
            base,
            db,
            settings,
            users,
            task,
            http: reqwest::Client::new(),
        }
    }

    /// Another server on the same data, with `settings` over the test defaults.
    pub async fn with(&self, settings: &[(&str, &str)]) -> Self {
        let settings = settings
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Self::start_with(self.db.clone(), Arc::clone(&self.users), settings).await
    }

    /// The server's store, opened again (to make records the API cannot, such as tokens
    /// issued in the past).
    pub async fn store(&self) -> DynTokenStore {
        match &self.db {
            Db::Sqlite(url) => DynTokenStore::new(SqliteStore::connect(url).await.unwrap()),
            Db::Postgres { url, table } => {
                let pool = crate::common::pool_for(url, "api_tokens_server_tests", 2).await;
                DynTokenStore::new(PostgresStore::with_table(pool, table).unwrap())
            }
        }
    }

    /// Another server on the same data, with other users.
    pub async fn with_users(&self, spec: &str) -> Self {
        let users = Arc::new(app::Users::from_spec(spec).expect("valid users"));
        Self::start_with(self.db.clone(), users, self.settings.clone()).await
    }

    pub async fn restart(self) -> Self {
        self.task.abort();
        let _ = self.task.await;
        Self::start_with(self.db, self.users, self.settings).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn login(&self, email: &str, password: &str) -> (StatusCode, Value) {
        send(
            self.http
                .post(self.url("/auth/token"))
                .json(&json!({ "email": email, "password": password })),
        )
        .await
    }

    pub async fn login_from(
        &self,
        email: &str,
        password: &str,
        address: &str,
    ) -> (StatusCode, Value) {
        send(
            self.http
                .post(self.url("/auth/token"))
                .header("x-test-client-ip", address)
                .json(&json!({ "email": email, "password": password })),
        )
        .await
    }

    /// A login token (every scope) for alice.
    pub async fn alice(&self) -> String {
        let (status, body) = self.login("alice@example.com", "alice-pw").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// The text of `GET /metrics` (Prometheus).
    pub async fn metrics(&self) -> String {
        let r = self.http.get(self.url("/metrics")).send().await.unwrap();
        r.text().await.unwrap()
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        send(self.http.get(self.url(path)).bearer_auth(token)).await
    }

    pub async fn create(&self, token: &str, body: Value) -> (StatusCode, Value) {
        send(
            self.http
                .post(self.url("/api/v1/tokens"))
                .bearer_auth(token)
                .json(&body),
        )
        .await
    }

    pub async fn revoke(&self, token: &str, id: &str, body: Value) -> (StatusCode, Value) {
        send(
            self.http
                .delete(self.url(&format!("/api/v1/tokens/{id}")))
                .bearer_auth(token)
                .json(&body),
        )
        .await
    }
}

/// A request whose headers are sent and whose body never finishes: it stays in flight
/// until the body deadline.
pub async fn slow_body_request(base: &str, path: &str) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let address = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream
        .write_all(
            format!(
                "POST {path} HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"em"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    stream
}

/// Send a request; its status and JSON body (`null` if the body is not JSON).
pub async fn send(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let r = request.send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

pub async fn sqlite_server() -> Server {
    let dir = tempfile::tempdir().unwrap().keep();
    let url = format!("sqlite://{}", dir.join("server.db").display());
    Server::start(Db::Sqlite(url)).await
}

pub async fn postgres_server() -> Server {
    let url = crate::common::url();
    let table = format!(
        "{}.srv_{:08x}",
        crate::common::run_schema(),
        crate::common::rand_u32()
    );
    Server::start(Db::Postgres { url, table }).await
}

pub fn parse_time(v: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(v.as_str().expect("a timestamp"), &Rfc3339).expect("RFC 3339")
}

pub fn assert_error(status: StatusCode, body: &Value, expected: StatusCode, code: &str) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert!(body["message"].is_string(), "{body}");
}

/// One `#[tokio::test]` per scenario, on SQLite and on PostgreSQL (`mod sqlite`, `mod
/// postgres`, the latter ignored without `API_TOKENS_TEST_POSTGRES_URL`): each scenario is
/// an `async fn(&Server)` of the test file.
#[allow(unused_macros)]
macro_rules! db_scenarios {
    (@one [$(#[$attr:meta])*] $start:expr; $name:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        $(#[$attr])*
        async fn $name() {
            super::$name(&$start.await).await;
        }
    };
    (@each $attrs:tt $start:expr; $($name:ident),*) => {
        $( db_scenarios!(@one $attrs $start; $name); )*
    };
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            db_scenarios!(@each [] super::sqlite_server(); $($name),*);
        }
        mod postgres {
            db_scenarios!(@each [#[cfg_attr(
                not(api_tokens_postgres_tests),
                ignore = "set API_TOKENS_TEST_POSTGRES_URL to run the PostgreSQL suite"
            )]] super::postgres_server(); $($name),*);
        }
    };
}
