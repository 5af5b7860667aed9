//! A complete token service: the token API (`POST/DELETE /auth/token`,
//! `/api/v1/tokens`, `/api/v1/me`) on SQLite or PostgreSQL.
//!
//! ```text
//! cargo run --example server --all-features
//! ```
//!
//! Configuration, from the environment:
//! - `BIND`: address to listen on (default `127.0.0.1:8080`);
//! - `DATABASE_URL`: `sqlite://PATH` or `postgres://…` (default `sqlite://api-tokens.db`);
//! - `DATABASE_CREATE`: `true` to create a missing SQLite file (the first start). Otherwise a
//!   given SQLite file must exist, so that a vanished file stops the server instead of
//!   silently replacing every token with an empty database. The default demo database is
//!   created when missing, with a notice;
//! - `DEMO_USERS`: `email:password:tenant` entries separated by commas (default: one demo
//!   user, with a warning);
//! - `TOKEN_PREFIX`: the tokens' prefix (default `api_prod`).

mod app;

use std::sync::Arc;

use api_tokens::{ApiTokens, PostgresStore, SqliteStore, TokenStore};

const DEMO_USER: &str = "demo@example.com:demo-password:tenant_demo";

#[tokio::main]
async fn main() {
    if let Err(message) = run().await {
        eprintln!("error: {message}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), String> {
    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:8080".into());
    let given = std::env::var("DATABASE_URL").ok();
    let create = match std::env::var("DATABASE_CREATE").as_deref() {
        Ok("true" | "1") => true,
        Ok("false" | "0" | "") | Err(_) => given.is_none(),
        Ok(other) => {
            return Err(format!(
                "DATABASE_CREATE must be true or false, not {other:?}"
            ));
        }
    };
    let database = given.unwrap_or_else(|| "sqlite://api-tokens.db".into());
    let prefix = std::env::var("TOKEN_PREFIX").unwrap_or_else(|_| "api_prod".into());
    let users = match std::env::var("DEMO_USERS") {
        Ok(spec) => spec,
        Err(_) => {
            eprintln!(
                "warning: DEMO_USERS is not set; using the built-in demo user demo@example.com \
                 (its password is in the README); set DEMO_USERS for real users"
            );
            DEMO_USER.into()
        }
    };
    let users = Arc::new(app::Users::from_spec(&users)?);

    if database.starts_with("postgres://") || database.starts_with("postgresql://") {
        let store = PostgresStore::connect(&database)
            .await
            .map_err(|e| e.to_string())?;
        store.migrate().await.map_err(|e| e.to_string())?;
        serve(store, &prefix, users, &bind).await
    } else if database.starts_with("sqlite:") {
        let store = open_sqlite(&database, create).await?;
        store.migrate().await.map_err(|e| e.to_string())?;
        serve(store, &prefix, users, &bind).await
    } else {
        Err("DATABASE_URL must start with sqlite:// or postgres://".into())
    }
}

/// An existing SQLite database, or (when `create`) a new one, with a notice.
async fn open_sqlite(url: &str, create: bool) -> Result<SqliteStore, String> {
    match SqliteStore::connect_existing(url).await {
        Ok(store) => Ok(store),
        Err(_) if create => {
            let store = SqliteStore::connect(url).await.map_err(|e| e.to_string())?;
            eprintln!("notice: created a new, empty token database at {url}");
            Ok(store)
        }
        Err(e) => Err(format!(
            "cannot open the token database {url}: {e}; if this is the first start, set \
             DATABASE_CREATE=true to create it"
        )),
    }
}

async fn serve<St: TokenStore>(
    store: St,
    prefix: &str,
    users: Arc<app::Users>,
    bind: &str,
) -> Result<(), String> {
    let tokens = ApiTokens::new(store, prefix).map_err(|e| e.to_string())?;
    let state = app::AppState {
        tokens,
        users,
        limiter: Arc::default(),
    };
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|e| format!("cannot listen on {bind}: {e}"))?;
    eprintln!(
        "listening on http://{} (logins: at most {} failures per email per minute)",
        listener.local_addr().map_err(|e| e.to_string())?,
        app::MAX_FAILED_LOGINS
    );
    axum::serve(listener, app::router(state))
        .with_graceful_shutdown(shutdown())
        .await
        .map_err(|e| e.to_string())?;
    eprintln!("shut down cleanly");
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
