//! `POST /auth/token` (log in with email and password) and `DELETE /auth/token` (revoke the
//! token in use).

use api_tokens::axum::Authenticated;
use api_tokens::{Expiry, NewToken, TokenStore};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::ALL_SCOPES;
use crate::app::json::{JsonBody, error, one_time_json, too_many_attempts};
use crate::app::state::AppState;
use crate::app::views::rfc3339;

#[derive(Deserialize)]
pub struct LoginRequest {
    email: String,
    password: String,
}

/// `POST /auth/token`: log in with email and password, get a 365-day token with every scope.
pub async fn login<St: TokenStore>(
    State(state): State<AppState<St>>,
    JsonBody(body): JsonBody<LoginRequest>,
) -> Response {
    let key = body.email.trim().to_lowercase();
    if let Some(wait) = state.limiter.blocked(&key) {
        return too_many_attempts(wait);
    }
    let Some(user) = state.users.check(&key, body.password).await else {
        state.limiter.failed(&key);
        return error(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "the email or password is not correct",
        );
    };
    state.limiter.succeeded(&key);
    let issued = state
        .tokens
        .issue(
            NewToken::new(&user.id, "login token")
                .tenant(&user.tenant)
                .scopes(ALL_SCOPES.iter().copied())
                .expires(Expiry::InDays(365)),
        )
        .await;
    match issued {
        Ok(issued) => one_time_json(
            StatusCode::OK,
            &LoginResponse {
                access_token: issued.plaintext.expose_secret(),
                token_id: issued.record.id.to_string(),
                token_type: "Bearer",
                expires_at: issued.record.expires_at.map(rfc3339),
                user: UserView {
                    id: &user.id,
                    email: &user.email,
                    tenant_id: &user.tenant,
                },
            },
        ),
        Err(e) => e.into_response(),
    }
}

/// The body of a successful login (the token API's `auth.LoginResponse`).
#[derive(Serialize)]
struct LoginResponse<'a> {
    access_token: &'a str,
    token_id: String,
    token_type: &'static str,
    expires_at: Option<String>,
    user: UserView<'a>,
}

#[derive(Serialize)]
struct UserView<'a> {
    id: &'a str,
    email: &'a str,
    tenant_id: &'a str,
}

/// `DELETE /auth/token`: revoke the token this request is authenticated with.
pub async fn revoke_current<St: TokenStore>(
    State(state): State<AppState<St>>,
    auth: Authenticated<St>,
) -> Response {
    match state
        .tokens
        .revoke(auth.owner(), auth.token_id(), Some("revoked by its holder"))
        .await
    {
        Ok(()) => Json(json!({ "message": "Token revoked successfully" })).into_response(),
        Err(e) => e.into_response(),
    }
}
