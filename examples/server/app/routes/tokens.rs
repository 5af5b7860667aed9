//! `/api/v1/tokens`: create a token, list the caller's tokens, revoke one by id.

use api_tokens::axum::RequireScopes;
use api_tokens::{Error, Expiry, FieldError, ListRequest, NewToken, Scopes, TokenId, TokenStore};
use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{DEFAULT_SCOPES, TokensRead, TokensWrite};
use crate::app::json::{JsonBody, error, one_time_json, too_many_attempts};
use crate::app::state::AppState;
use crate::app::views::TokenView;

#[derive(Deserialize)]
pub struct CreateRequest {
    name: Option<String>,
    description: Option<String>,
    expires_in_days: Option<i64>,
    scopes: Option<Vec<String>>,
}

/// `POST /api/v1/tokens`: create a token for the caller (needs `tokens:write`). It can only
/// grant scopes the caller's token holds, and belongs to the caller's tenant.
pub async fn create<St: TokenStore>(
    State(state): State<AppState<St>>,
    auth: RequireScopes<TokensWrite, St>,
    JsonBody(body): JsonBody<CreateRequest>,
) -> Response {
    let requested = body
        .scopes
        .unwrap_or_else(|| DEFAULT_SCOPES.iter().map(|s| (*s).to_owned()).collect());
    let scopes = match Scopes::parse(&requested) {
        Ok(scopes) => scopes,
        Err(invalid) => return Error::Invalid(invalid).into_response(),
    };
    if !auth.scopes().contains_all(&scopes) {
        return error(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            "a token can only grant scopes that the token creating it holds",
        );
    }
    let mut new = NewToken::new(auth.owner(), body.name.unwrap_or_default())
        .scopes(scopes.iter())
        .expires(
            body.expires_in_days
                .map_or(Expiry::PolicyDefault, Expiry::InDays),
        );
    if let Some(tenant) = auth.tenant() {
        new = new.tenant(tenant);
    }
    if let Some(description) = body.description {
        new = new.description(description);
    }
    match state.tokens.issue(new).await {
        Ok(issued) => one_time_json(
            StatusCode::CREATED,
            &Created {
                token: issued.plaintext.expose_secret(),
                token_info: TokenView::from(&issued.info()),
            },
        ),
        Err(e) => e.into_response(),
    }
}

/// The body of `201 Created`: the token, shown this once, and its `token_info`.
#[derive(Serialize)]
struct Created<'a> {
    token: &'a str,
    token_info: TokenView,
}

/// `GET /api/v1/tokens?page=&per_page=&include_revoked=`: the caller's tokens, newest first
/// (needs `tokens:read`). The query is decoded by axum's `Query` into its pairs; each known
/// field is then checked with its own message, and a repeated field's last value wins.
pub async fn list<St: TokenStore>(
    State(state): State<AppState<St>>,
    auth: RequireScopes<TokensRead, St>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    let Ok(Query(pairs)) = query else {
        return Error::from(FieldError::new("query", "is not a valid query string"))
            .into_response();
    };
    let mut request = ListRequest::new(auth.owner());
    let mut details = Vec::new();
    for (key, value) in &pairs {
        match key.as_str() {
            "page" => match value.parse() {
                Ok(page) => request = request.page(page),
                Err(_) => details.push(FieldError::new(
                    "page",
                    "must be a whole number of 1 or more",
                )),
            },
            "per_page" => match value.parse() {
                Ok(n) => request = request.per_page(n),
                Err(_) => details.push(FieldError::new(
                    "per_page",
                    "must be a whole number from 1 to 100",
                )),
            },
            "include_revoked" => match value.as_str() {
                "true" | "1" => request = request.include_inactive(true),
                "false" | "0" => request = request.include_inactive(false),
                _ => details.push(FieldError::new("include_revoked", "must be true or false")),
            },
            _ => {}
        }
    }
    if !details.is_empty() {
        return Error::Invalid(api_tokens::ValidationErrors(details)).into_response();
    }
    match state.tokens.list(&request).await {
        Ok(page) => Json(json!({
            "data": page.data.iter().map(TokenView::from).collect::<Vec<_>>(),
            "meta": page.meta,
        }))
        .into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
pub struct RevokeRequest {
    password: Option<String>,
    reason: Option<String>,
}

/// `DELETE /api/v1/tokens/{id}`: revoke one of the caller's tokens, confirmed by the
/// owner's password (needs `tokens:write`). Another user's token is not found.
pub async fn revoke<St: TokenStore>(
    State(state): State<AppState<St>>,
    auth: RequireScopes<TokensWrite, St>,
    path: Result<Path<String>, PathRejection>,
    JsonBody(body): JsonBody<RevokeRequest>,
) -> Response {
    let no_such_token = || error(StatusCode::NOT_FOUND, "not_found", "no such token");
    let Some(id) = path.ok().and_then(|Path(id)| id.parse::<TokenId>().ok()) else {
        return no_such_token();
    };
    let Some(password) = body.password.filter(|p| !p.is_empty()) else {
        return Error::from(FieldError::new(
            "password",
            "is required to confirm the revocation",
        ))
        .into_response();
    };
    match state.tokens.get(auth.owner(), id).await {
        Ok(_) => {}
        Err(Error::NotFound) => return no_such_token(),
        Err(e) => return e.into_response(),
    }
    let Some(user) = state.users.by_id(auth.owner()).cloned() else {
        return no_such_token();
    };
    let key = user.email.to_lowercase();
    if let Some(wait) = state.limiter.blocked(&key) {
        return too_many_attempts(wait);
    }
    if state.users.check(&key, password).await.is_none() {
        state.limiter.failed(&key);
        return error(
            StatusCode::FORBIDDEN,
            "wrong_password",
            "the password is not correct; the token was not revoked",
        );
    }
    match state
        .tokens
        .revoke(auth.owner(), id, body.reason.as_deref())
        .await
    {
        Ok(()) => Json(json!({ "message": "Token revoked successfully" })).into_response(),
        Err(e) => e.into_response(),
    }
}
