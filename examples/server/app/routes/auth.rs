//! `POST /auth/token` (log in with email and password) and `DELETE /auth/token` (revoke the
//! token in use).

use std::time::Instant;

use api_tokens::web::AuthHeaders;
use api_tokens::{AuthError, Expiry, NewToken};
use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use zeroize::Zeroizing;

use super::{ADMIN_SCOPE, ALL_SCOPES};
use crate::app::caller::{AnyScope, Caller, ClientAddress};
use crate::app::json::{JsonBody, error, failed, one_time_json, passwords_busy, too_many_attempts};
use crate::app::state::AppState;
use crate::app::users::User;
use crate::app::views::rfc3339;

/// Emails longer than this are refused before any limiter or hash sees them.
const MAX_EMAIL_BYTES: usize = 254;
/// Passwords longer than this are refused before they are hashed.
const MAX_PASSWORD_BYTES: usize = 1024;

#[derive(Deserialize)]
pub struct LoginRequest {
    email: String,
    password: Zeroizing<String>,
}

/// `POST /auth/token`: log in with email and password, get a 365-day token with every scope
/// (and `admin:tokens` for an administrator).
///
/// The attempt is counted against the client's address, the email from that address and
/// the email overall before the password is checked (one atomic step per limit, so
/// parallel attempts cannot outrun it); unknown emails are counted and hashed the same.
pub async fn login(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    JsonBody(body): JsonBody<LoginRequest>,
) -> Response {
    let email = body.email.trim().to_lowercase();
    if email.len() > MAX_EMAIL_BYTES || body.password.len() > MAX_PASSWORD_BYTES {
        return invalid_credentials();
    }
    if let Err(limited) = state.limiters.login(&email, address) {
        return too_many_attempts(limited);
    }
    let user = match state
        .users
        .check(&state.passwords, &email, body.password)
        .await
    {
        Ok(Some(user)) => user,
        Ok(None) => return invalid_credentials(),
        Err(_busy) => return passwords_busy(),
    };
    let started = Instant::now();
    let issued = state
        .tokens
        .issue(
            NewToken::new(&user.id, "login token")
                .tenant(&user.tenant)
                .scopes(login_scopes(&user))
                .expires(Expiry::InDays(365)),
        )
        .await;
    metrics::histogram!("store_operation_duration_seconds", "operation" => "issue")
        .record(started.elapsed());
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
        Err(e) => failed(e),
    }
}

/// A login token's scopes: every scope of the token API, and `admin:tokens` for an admin.
fn login_scopes(user: &User) -> impl Iterator<Item = &'static str> {
    let admin = user.admin.then_some(ADMIN_SCOPE);
    ALL_SCOPES.iter().copied().chain(admin)
}

fn invalid_credentials() -> Response {
    error(
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
        "the email or password is not correct",
    )
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
///
/// A token held back only by its rate or usage limit (429: its secret matched, and its
/// tenant) can still be revoked by whoever holds it, so that a thief who keeps a leaked
/// token's limit spent cannot stop its holder from ending it.
pub async fn revoke_current(State(state): State<AppState>, mut parts: Parts) -> Response {
    const REASON: Option<&str> = Some("revoked by its holder");
    let revoked = match Caller::<AnyScope>::from_request_parts(&mut parts, &state).await {
        Ok(caller) => {
            state
                .tokens
                .revoke(caller.owner(), caller.token_id(), REASON)
                .await
        }
        Err(refused) if refused.status() == StatusCode::TOO_MANY_REQUESTS => {
            let headers = AuthHeaders::from_pairs(
                parts
                    .headers
                    .iter()
                    .map(|(name, value)| (name.as_str(), value.as_bytes())),
            );
            let Ok((presented, _)) = headers.credentials() else {
                return refused;
            };
            match state.tokens.revoke_presented(presented, REASON).await {
                // A removed user's token is revoked all the same, and answered as on every
                // route.
                Ok(who) if state.users.by_id(who.owner()).is_none() => {
                    return AuthError::Invalid.into_response();
                }
                Ok(_) => Ok(()),
                Err(e) => Err(e),
            }
        }
        Err(refused) => return refused,
    };
    match revoked {
        Ok(()) => Json(json!({ "message": "Token revoked successfully" })).into_response(),
        Err(e) => failed(e),
    }
}
