//! The example server's request bodies, queries and paths: arbitrary bytes sent to login,
//! create, list, revoke, edit, rotate and the admin's expiring list never get a 5xx or a
//! panic, every answer's body is JSON, and a created token's view never carries its hash.
//!
//! The first byte picks the route (and whether `Content-Type: application/json` is sent);
//! the rest is the body (for revoke, edit and rotate: `<path segment>\n<body>`; for the
//! listings: the query).
#![no_main]

#[path = "../../examples/server/app/mod.rs"]
#[allow(dead_code, unused_imports)]
mod app;

use std::sync::{Arc, OnceLock};

use api_tokens::{ApiTokens, DynTokenStore, Expiry, MemoryStore, NewToken, TokenPolicy};
use axum::body::{Body, to_bytes};
use axum::http::{Method, Request, header};
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
    })
}

/// What the caller's token carries: every scope of the service, the admin's too.
const ALL_SCOPES: [&str; 4] = ["profile:read", "tokens:read", "tokens:write", "admin:tokens"];

/// Hashing the users' passwords is slow (Argon2): once per process.
fn users() -> Arc<app::Users> {
    static USERS: OnceLock<Arc<app::Users>> = OnceLock::new();
    USERS
        .get_or_init(|| {
            Arc::new(app::Users::from_spec("alice@example.com:alice-pw:tenant_a").expect("users"))
        })
        .clone()
}

/// Alice's id and tenant, found by her password once per process.
async fn alice() -> (String, String) {
    static ALICE: tokio::sync::OnceCell<(String, String)> = tokio::sync::OnceCell::const_new();
    ALICE
        .get_or_init(|| async {
            let state = template().await;
            let user = users()
                .check(&state.passwords, "alice@example.com", "alice-pw".to_owned().into())
                .await
                .expect("a password checker")
                .expect("alice logs in");
            (user.id, user.tenant)
        })
        .await
        .clone()
}

/// The application state every input starts from (its password threads and limiters are
/// made once); each input gets a fresh token store in it.
async fn template() -> app::AppState {
    static STATE: tokio::sync::OnceCell<app::AppState> = tokio::sync::OnceCell::const_new();
    STATE
        .get_or_init(|| async {
            let config = app::Config::from_lookup(|name| match name {
                "LOGIN_ATTEMPTS_PER_ADDRESS"
                | "LOGIN_ATTEMPTS_PER_NETWORK"
                | "LOGIN_ATTEMPTS_PER_ACCOUNT_ADDRESS"
                | "LOGIN_ATTEMPTS_PER_ACCOUNT"
                | "CONFIRM_ATTEMPTS_PER_TOKEN" => Some("1000000000".into()),
                _ => None,
            })
            .expect("a valid configuration");
            let tokens = ApiTokens::new(DynTokenStore::new(MemoryStore::new()), "api_fuzz")
                .expect("a valid configuration");
            app::AppState::new(tokens, users(), config)
        })
        .await
        .clone()
}

async fn send(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    // A fresh store per input, so that nothing accumulates across millions of runs.
    let policy = TokenPolicy::default().max_active_per_owner(Some(50));
    let tokens = ApiTokens::builder(DynTokenStore::new(MemoryStore::new()), "api_fuzz")
        .policy(policy)
        .build()
        .expect("a valid configuration");
    let (id, tenant) = alice().await;
    let login = tokens
        .issue(
            NewToken::new(id, "fuzz login")
                .tenant(tenant)
                .scopes(ALL_SCOPES.iter().copied())
                .expires(Expiry::InDays(30)),
        )
        .await
        .expect("issue the caller's token");
    let bearer = format!("Bearer {}", login.plaintext.expose_secret());
    let state = app::AppState {
        tokens,
        ..template().await
    };
    let split = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
    let segment = std::str::from_utf8(&rest[..split]);
    let after = rest.get(split + 1..).unwrap_or_default();
    let (method, uri, body): (Method, String, &[u8]) = match selector % 7 {
        0 => (Method::POST, "/auth/token".into(), rest),
        1 => (Method::POST, "/api/v1/tokens".into(), rest),
        n @ (2 | 6) => {
            let Ok(query) = std::str::from_utf8(rest) else {
                return;
            };
            let path = if n == 2 {
                "/api/v1/tokens"
            } else {
                "/api/v1/admin/tokens/expiring"
            };
            (Method::GET, format!("{path}?{query}"), &[][..])
        }
        n => {
            let Ok(segment) = segment else {
                return;
            };
            match n {
                3 => (Method::DELETE, format!("/api/v1/tokens/{segment}"), after),
                4 => (Method::PATCH, format!("/api/v1/tokens/{segment}"), after),
                _ => (
                    Method::POST,
                    format!("/api/v1/tokens/{segment}/rotate"),
                    after,
                ),
            }
        }
    };
    let mut request = Request::builder().method(method).uri(uri);
    if selector & 0x80 == 0 {
        request = request.header(header::CONTENT_TYPE, "application/json");
    }
    if selector % 7 != 0 {
        request = request.header(header::AUTHORIZATION, &bearer);
    }
    let Ok(request) = request.body(Body::from(body.to_vec())) else {
        return; // not a valid URI: no server would see it
    };
    let response = app::router(state)
        .oneshot(request)
        .await
        .expect("the router is infallible");
    let status = response.status();
    let bytes = to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("a readable body");
    assert!(
        !status.is_server_error(),
        "{status} for input {data:?}: {}",
        String::from_utf8_lossy(&bytes)
    );
    if !bytes.is_empty() {
        let json: serde_json::Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{status}: the body is not JSON ({e})"));
        if let Some(info) = json.get("token_info") {
            assert!(info.get("hash").is_none(), "a token view carries its hash");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    runtime().block_on(send(data));
});
