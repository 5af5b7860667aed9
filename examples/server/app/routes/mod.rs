//! The routes of the token API, one file per resource: `auth` (log in, revoke the token in
//! use), `tokens` (create, list, revoke one or all), `manage` (rotate, edit, suspend,
//! resume), `admin` (tokens about to expire, across users), `secret_scanning` (GitHub's
//! leak reports), `audit` (the caller's trail), `me`, and `health` (liveness, readiness). The router puts the request deadline, the cap on requests in flight and the
//! body deadline around the API routes, and its log line and metrics around every route.

mod admin;
mod audit;
mod auth;
mod health;
mod manage;
mod me;
mod secret_scanning;
mod tokens;

use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware;
use axum::response::Response;
use axum::routing::{delete, get, post};
pub use health::Readiness;
use tower::{BoxError, ServiceBuilder};
use tower_http::timeout::RequestBodyTimeoutLayer;

use super::json::{error, method_not_allowed, not_found, unavailable};
use super::observe;
use super::state::AppState;

/// Every scope of the token API; a login token carries them all.
pub const ALL_SCOPES: &[&str] = &["profile:read", "tokens:read", "tokens:write"];
/// The administrator's scope, on the login tokens of `DEMO_USERS` entries marked `admin`.
pub const ADMIN_SCOPE: &str = "admin:tokens";
/// Scopes of a token created without `scopes`: read-only.
pub const DEFAULT_SCOPES: &[&str] = &["profile:read", "tokens:read"];
/// Largest accepted request body.
pub const BODY_LIMIT: usize = 64 * 1024;

api_tokens::scope_requirement!(pub ProfileRead = ["profile:read"]);
api_tokens::scope_requirement!(pub TokensRead = ["tokens:read"]);
api_tokens::scope_requirement!(pub TokensWrite = ["tokens:write"]);
api_tokens::scope_requirement!(pub AdminTokens = ["admin:tokens"]);

/// The service's routes.
pub fn router(state: AppState) -> Router {
    let limits = &state.config.limits;
    let request_timeout = limits.request_timeout;
    // One cap for all API routes together: `layer` wraps each route, so the semaphore is
    // made once and shared (`GlobalConcurrencyLimitLayer`), and a request over it is shed
    // at once (`load_shed`) rather than queued.
    let guard = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(move |e: BoxError| async move {
            refused(&e, request_timeout)
        }))
        .load_shed()
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
            limits.max_in_flight,
        ))
        .timeout(limits.request_timeout);
    let api = Router::new()
        .route(
            "/auth/token",
            post(auth::login).delete(auth::revoke_current),
        )
        .route(
            "/api/v1/tokens",
            post(tokens::create)
                .get(tokens::list)
                .delete(tokens::revoke_all),
        )
        .route(
            "/api/v1/tokens/{id}",
            delete(tokens::revoke).patch(manage::edit),
        )
        .route("/api/v1/tokens/{id}/rotate", post(manage::rotate))
        .route("/api/v1/tokens/{id}/suspend", post(manage::suspend))
        .route("/api/v1/tokens/{id}/resume", post(manage::resume))
        .route("/api/v1/admin/tokens/expiring", get(admin::expiring))
        .route("/api/v1/me", get(me::me))
        .route("/api/v1/audit", get(audit::list))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        // GitHub batches its matches: this one route takes up to 1 MiB.
        .route(
            "/api/v1/secret-scanning",
            post(secret_scanning::report)
                .layer(DefaultBodyLimit::max(secret_scanning::MAX_BODY_BYTES)),
        )
        .layer(RequestBodyTimeoutLayer::new(limits.body_read_timeout))
        .layer(guard);
    // Health and metrics stay outside the in-flight cap and the limits: they must answer
    // when the API is shedding requests (and on `HEALTH_BIND`, when it sheds connections).
    Router::new()
        .merge(api)
        .merge(health_routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(observe::track))
        .with_state(state)
}

/// Only `/healthz`, `/readyz` and `/metrics`, for `HEALTH_BIND`.
pub fn health_router(state: AppState) -> Router {
    Router::new()
        .merge(health_routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(observe::track))
        .with_state(state)
}

fn health_routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(observe::metrics))
}

/// The answer when the guard refused a request, with a log line saying why.
fn refused(e: &BoxError, request_timeout: Duration) -> Response {
    if e.is::<tower::load_shed::error::Overloaded>() {
        metrics::counter!("requests_shed_total", "reason" => "in_flight").increment(1);
        tracing::warn!("shed a request: MAX_IN_FLIGHT requests are in flight; answered 503");
        unavailable("the server is busy; try again shortly")
    } else if e.is::<tower::timeout::error::Elapsed>() {
        metrics::counter!("requests_shed_total", "reason" => "deadline").increment(1);
        tracing::warn!(
            deadline_ms = request_timeout.as_millis() as u64,
            "a request passed REQUEST_TIMEOUT_MS; answered 503"
        );
        unavailable("the request took too long; try again")
    } else {
        tracing::error!(error = %e, "a request failed in the server's middleware; answered 500");
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "the server failed",
        )
    }
}
