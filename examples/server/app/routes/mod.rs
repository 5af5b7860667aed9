//! The routes of the token API, one file per resource: `auth` (log in, revoke the token in
//! use), `tokens` (create, list, revoke by id) and `me`.

mod auth;
mod me;
mod tokens;

use api_tokens::TokenStore;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};

use super::json::{method_not_allowed, not_found};
use super::state::AppState;

/// Every scope this service knows; a login token carries them all.
pub const ALL_SCOPES: &[&str] = &["profile:read", "tokens:read", "tokens:write"];
/// Scopes of a token created without `scopes`: read-only.
pub const DEFAULT_SCOPES: &[&str] = &["profile:read", "tokens:read"];
/// Largest accepted request body.
pub const BODY_LIMIT: usize = 64 * 1024;

api_tokens::scope_requirement!(pub ProfileRead = ["profile:read"]);
api_tokens::scope_requirement!(pub TokensRead = ["tokens:read"]);
api_tokens::scope_requirement!(pub TokensWrite = ["tokens:write"]);

/// The service's routes.
pub fn router<St: TokenStore>(state: AppState<St>) -> Router {
    Router::new()
        .route(
            "/auth/token",
            post(auth::login::<St>).delete(auth::revoke_current::<St>),
        )
        .route(
            "/api/v1/tokens",
            post(tokens::create::<St>).get(tokens::list::<St>),
        )
        .route("/api/v1/tokens/{id}", delete(tokens::revoke::<St>))
        .route("/api/v1/me", get(me::me::<St>))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}
