//! A complete token service: the token API (`POST/DELETE /auth/token`,
//! `/api/v1/tokens`, `/api/v1/me`) on SQLite or PostgreSQL, with health checks
//! (`/healthz`, `/readyz`), Prometheus metrics (`/metrics`) and request logs.
//!
//! ```text
//! cargo run --example server --all-features
//! ```
//!
//! Every setting comes from the environment; the README's server section lists them all,
//! and `app/config.rs` reads them. The main ones:
//! - `BIND` (default `127.0.0.1:8080`), `DATABASE_URL` (`sqlite://PATH` or `postgres://…`;
//!   default `sqlite://api-tokens.db`), `DATABASE_CREATE` (`true` to create a missing SQLite
//!   file; the default demo database is created when missing, with a notice);
//! - `DEMO_USERS`: `email:password:tenant` entries separated by commas (default: one demo
//!   user, with a warning); `TOKEN_PREFIX` (default `api_prod`);
//! - `RUST_LOG` (default `info`) and `LOG_FORMAT` (`text` or `json`).

mod app;

use std::sync::Arc;
use std::time::{Duration, Instant};

use std::str::FromStr;

use api_tokens::sqlx::Connection;
use api_tokens::sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions};
use api_tokens::{
    CachedStore, CachedStoreBuilder, DynTokenStore, PostgresStore, SqliteStore, TokenStore,
};
use app::{AuditLog, CacheMetrics, Config};

const DEMO_USER: &str = "demo@example.com:demo-password:tenant_demo";

#[tokio::main]
async fn main() {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(message) => {
            eprintln!("error: {message}");
            std::process::exit(1);
        }
    };
    init_logs(config.log_json);
    if let Err(message) = run(config).await {
        tracing::error!("{message}");
        std::process::exit(1);
    }
}

/// Logs to stderr, at the level `RUST_LOG` gives (default `info`).
fn init_logs(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if json {
        logs.json().init();
    } else {
        logs.init();
    }
}

async fn run(config: Config) -> Result<(), String> {
    let users = match &config.demo_users {
        Some(spec) => spec.clone(),
        None => {
            tracing::warn!(
                "DEMO_USERS is not set; using the built-in demo user demo@example.com (its \
                 password is in the README); set DEMO_USERS for real users"
            );
            DEMO_USER.into()
        }
    };
    let users = Arc::new(app::Users::from_spec(&users)?);
    let database = config
        .database_url
        .clone()
        .unwrap_or_else(|| "sqlite://api-tokens.db".into());
    let (store, cache, audit) =
        if database.starts_with("postgres://") || database.starts_with("postgresql://") {
            let store = open_postgres(&database, &config).await?;
            let audit = AuditLog::postgres(store.pool().clone(), store.table()).await?;
            if config.token_cache {
                // Other instances share the table: hear of their changes through PostgreSQL.
                let invalidations = store.invalidations();
                let (store, cache) = cached(CachedStore::builder(store).postgres(invalidations))?;
                (store, cache, audit)
            } else {
                (DynTokenStore::new(store), None, audit)
            }
        } else if database.starts_with("sqlite:") {
            let create = config
                .database_create
                .unwrap_or(config.database_url.is_none());
            let mut store = open_sqlite(&database, create).await?;
            if let Some(deadline) = config.store_deadline {
                store = store.with_deadline(deadline);
            }
            store.migrate().await.map_err(|e| e.to_string())?;
            let audit = AuditLog::sqlite(store.pool().clone(), store.table()).await?;
            if config.token_cache {
                // One process owns a SQLite file.
                let (store, cache) = cached(CachedStore::builder(store).single_instance())?;
                (store, cache, audit)
            } else {
                (DynTokenStore::new(store), None, audit)
            }
        } else {
            return Err("DATABASE_URL must start with sqlite:// or postgres://".into());
        };
    // Lifecycle events and failed verifications on queues of their own.
    let sinks = audit.sink();
    let tokens = app::token_service(store, &config, Some(sinks.router())).await?;
    let audit = sinks.start(&tokens);
    if config.redis_url.is_some() {
        tracing::info!("rate limits counted on Redis (REDIS_URL)");
    }
    let listener = tokio::net::TcpListener::bind(&config.bind)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.bind))?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    let health = match &config.health_bind {
        Some(bind) => Some(
            tokio::net::TcpListener::bind(bind)
                .await
                .map_err(|e| format!("cannot listen on HEALTH_BIND {bind}: {e}"))?,
        ),
        None => None,
    };
    let limits = config.limits.clone();
    let mut state = app::AppState::new(tokens, users, config).with_audit(audit);
    if let Some(cache) = cache {
        state = state.with_cache_metrics(cache);
    }
    // One shutdown signal for both listeners.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    if let Some(health) = health {
        let address = health.local_addr().map_err(|e| e.to_string())?;
        tracing::info!("health checks and metrics on http://{address}");
        let mut stopped = stopped.clone();
        tokio::spawn(app::serve_health(health, state.clone(), async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }));
    }
    tracing::info!(
        max_connections = limits.max_connections,
        max_in_flight = limits.max_in_flight,
        "listening on http://{address}"
    );
    app::serve(listener, state, async move {
        shutdown().await;
        let _ = stop.send(true);
    })
    .await;
    drop(stopped);
    Ok(())
}

/// Build the token cache (`TOKEN_CACHE=on`) and the gauges `/metrics` reports of it.
fn cached<S: TokenStore>(
    builder: CachedStoreBuilder<S>,
) -> Result<(DynTokenStore, Option<CacheMetrics>), String> {
    let cache = builder.build().map_err(|e| e.to_string())?;
    let watched = cache.clone();
    let metrics: CacheMetrics = Arc::new(move || {
        let s = watched.stats();
        vec![
            ("token_cache_hits", s.hits as f64),
            ("token_cache_negative_hits", s.negative_hits as f64),
            ("token_cache_misses", s.misses as f64),
            ("token_cache_coalesced", s.coalesced as f64),
            ("token_cache_store_reads", s.store_reads as f64),
            ("token_cache_bypassed", s.bypassed as f64),
            (
                "token_cache_invalidations_received",
                s.invalidations_received as f64,
            ),
            ("token_cache_flushed_on_doubt", s.flushed_on_doubt as f64),
            ("token_cache_last_use_batches", s.last_use_batches as f64),
            ("token_cache_entries", s.entries as f64),
            (
                "token_cache_trusted",
                f64::from(u8::from(watched.is_trusted())),
            ),
        ]
    });
    tracing::info!("token cache on");
    Ok((DynTokenStore::new(cache), Some(metrics)))
}

/// The PostgreSQL store, retrying an unreachable database with backoff (1 s doubling to
/// 10 s) for up to `DATABASE_STARTUP_TIMEOUT_SECS`, saying so each time.
async fn open_postgres(url: &str, config: &Config) -> Result<PostgresStore, String> {
    let options = PgConnectOptions::from_str(url)
        .map_err(|e| format!("DATABASE_URL is not a valid PostgreSQL URL: {e}"))?;
    let started = Instant::now();
    let mut wait = Duration::from_secs(1);
    loop {
        let attempt = async {
            // One direct connection first: its error names the cause (refused, unknown
            // host, authentication), where a pool would only say that it timed out.
            let probe = tokio::time::timeout(
                config.database_acquire_timeout,
                PgConnection::connect_with(&options),
            )
            .await
            .map_err(|_| "connecting timed out (DATABASE_ACQUIRE_TIMEOUT_MS)".to_owned())?
            .map_err(|e| e.to_string())?;
            let _ = probe.close().await;
            let pool = PgPoolOptions::new()
                .max_connections(config.database_max_connections)
                .acquire_timeout(config.database_acquire_timeout)
                .connect_lazy_with(options.clone());
            let mut store = PostgresStore::new(pool);
            if let Some(deadline) = config.store_deadline {
                store = store.with_deadline(deadline);
            }
            store.migrate().await.map_err(|e| e.to_string())?;
            Ok::<_, String>(store)
        };
        match attempt.await {
            Ok(store) => return Ok(store),
            Err(e) if started.elapsed() + wait <= config.database_startup_timeout => {
                // The error names the failure, never the URL or its password.
                tracing::warn!(
                    error = %e,
                    retry_in_secs = wait.as_secs(),
                    "PostgreSQL is unreachable; retrying"
                );
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(10));
            }
            Err(e) => {
                return Err(format!(
                    "PostgreSQL stayed unreachable for {} s (DATABASE_STARTUP_TIMEOUT_SECS): {e}",
                    started.elapsed().as_secs()
                ));
            }
        }
    }
}

/// An existing SQLite database, or (when `create`) a new one, with a notice.
async fn open_sqlite(url: &str, create: bool) -> Result<SqliteStore, String> {
    match SqliteStore::connect_existing(url).await {
        Ok(store) => Ok(store),
        Err(_) if create => {
            let store = SqliteStore::connect(url).await.map_err(|e| e.to_string())?;
            tracing::info!("created a new, empty token database at {url}");
            Ok(store)
        }
        Err(e) => Err(format!(
            "cannot open the token database {url}: {e}; if this is the first start, set \
             DATABASE_CREATE=true to create it"
        )),
    }
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
    tracing::info!("shutdown signal received");
}
