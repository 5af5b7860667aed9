//! `/api/v1/tokens/{id}/…`: rotate a token (with a grace period), edit it (narrowing only),
//! suspend and resume it.
//!
//! Each needs `tokens:write` and acts on a token **within the caller's reach**: a login
//! token reaches every token of its user; any other token reaches the tokens it created
//! (and those they created), and itself except to rotate. So a token handed to a script
//! cannot rotate the login that made it into a fresh token with every scope, nor suspend
//! its user's other tokens, nor rotate itself into a sibling that its revocation would not
//! reach.

use api_tokens::{Error, FieldError, TokenEdit, TokenId};
use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::TokensWrite;
use crate::app::caller::Caller;
use crate::app::config::MAX_TOKEN_NESTING;
use crate::app::json::{
    JsonBody, OptionalJsonBody, error, failed, nullable, one_time_json, timestamp,
};
use crate::app::state::AppState;
use crate::app::views::TokenView;

/// The longest grace period a rotation may give the old token: a day.
pub const MAX_GRACE_SECONDS: i64 = 86_400;

#[derive(Deserialize, Default)]
pub struct RotateRequest {
    /// How long the old token keeps working (0–86 400 s; default 0, revoked at once).
    grace_seconds: Option<i64>,
}

/// The body of `201 Created` after a rotation: the new token, shown this once.
#[derive(Serialize)]
struct Rotated<'a> {
    token: &'a str,
    token_info: TokenView,
}

/// `POST /api/v1/tokens/{id}/rotate {grace_seconds}` (the body may be left out: no grace):
/// a like-for-like replacement (name, scopes, metadata, address limits, lifetime), 201
/// `{token, token_info}`; the old token lives `grace_seconds` more (0: revoked at once,
/// reason `rotated`). A token is rotated at most once (409 `already_rotated`); a revoked or
/// expired one is 409 `not_active`.
pub async fn rotate(
    State(state): State<AppState>,
    auth: Caller<TokensWrite>,
    path: Result<Path<String>, PathRejection>,
    OptionalJsonBody(body): OptionalJsonBody<RotateRequest>,
) -> Response {
    let id = match reachable(&state, &auth, path, Itself::Excluded).await {
        Ok(id) => id,
        Err(refused) => return refused,
    };
    let grace = body.grace_seconds.unwrap_or(0);
    if !(0..=MAX_GRACE_SECONDS).contains(&grace) {
        return Error::from(FieldError::new(
            "grace_seconds",
            "must be a whole number of seconds from 0 to 86400",
        ))
        .into_response();
    }
    match state
        .tokens
        .rotate(auth.owner(), id, time::Duration::seconds(grace))
        .await
    {
        Ok(issued) => one_time_json(
            StatusCode::CREATED,
            &Rotated {
                token: issued.plaintext.expose_secret(),
                token_info: TokenView::from(&issued.info()),
            },
        ),
        Err(e) => failed(e),
    }
}

#[derive(Deserialize)]
pub struct EditRequest {
    name: Option<String>,
    /// `null` removes the description.
    #[serde(default, deserialize_with = "nullable")]
    description: Option<Option<String>>,
    /// A subset of the token's scopes.
    scopes: Option<Vec<String>>,
    /// An RFC 3339 instant no later than the token's expiry.
    #[serde(default, deserialize_with = "nullable")]
    expires_at: Option<Option<String>>,
    /// A new object, or `null` to remove it.
    #[serde(default, deserialize_with = "nullable")]
    metadata: Option<Option<serde_json::Value>>,
    /// Any other field: refused (422 naming it), so that a change asked for is never
    /// silently left undone (addresses, limits and owners cannot be edited).
    #[serde(flatten)]
    other: std::collections::BTreeMap<String, serde::de::IgnoredAny>,
}

/// The fields `PATCH` can change.
const EDITABLE: &str = "name, description, scopes, expires_at and metadata";
/// The fields it cannot change named in one answer, at most.
const MAX_NAMED: usize = 10;

/// `PATCH /api/v1/tokens/{id} {name?, description?, scopes?, expires_at?, metadata?}`:
/// 200 `token_info`. Scopes can only be narrowed and the expiry only brought forward
/// (422 naming the field otherwise); any other field is 422 naming it; a revoked or expired
/// token is 409 `not_active`.
pub async fn edit(
    State(state): State<AppState>,
    auth: Caller<TokensWrite>,
    path: Result<Path<String>, PathRejection>,
    JsonBody(body): JsonBody<EditRequest>,
) -> Response {
    let id = match reachable(&state, &auth, path, Itself::Included).await {
        Ok(id) => id,
        Err(refused) => return refused,
    };
    if !body.other.is_empty() {
        // Each named as sent, cut to 64 characters, and at most ten of them: an error never
        // echoes much of a body.
        let mut refused: Vec<FieldError> = body
            .other
            .keys()
            .take(MAX_NAMED)
            .map(|field| {
                let field: String = field.chars().take(64).collect();
                FieldError::new(field, format!("cannot be edited; a token's {EDITABLE} can"))
            })
            .collect();
        if body.other.len() > MAX_NAMED {
            refused.push(FieldError::new(
                "body",
                format!(
                    "has {} more fields that cannot be edited",
                    body.other.len() - MAX_NAMED
                ),
            ));
        }
        return Error::Invalid(api_tokens::ValidationErrors(refused)).into_response();
    }
    let mut edit = TokenEdit::new();
    if let Some(name) = body.name {
        edit = edit.name(name);
    }
    if let Some(description) = body.description {
        edit = edit.description(description);
    }
    if let Some(scopes) = body.scopes {
        edit = edit.scopes(scopes);
    }
    match body.expires_at {
        None => {}
        Some(None) => {
            return Error::from(FieldError::new(
                "expires_at",
                "cannot be removed: a token's life can only be shortened",
            ))
            .into_response();
        }
        Some(Some(at)) => match timestamp("expires_at", &at) {
            Ok(at) => edit = edit.expires_at(at),
            Err(e) => return Error::from(e).into_response(),
        },
    }
    if let Some(metadata) = body.metadata {
        edit = edit.metadata(metadata);
    }
    match state.tokens.edit(auth.owner(), id, &edit).await {
        Ok(info) => Json(TokenView::from(&info)).into_response(),
        Err(e) => failed(e),
    }
}

/// `POST /api/v1/tokens/{id}/suspend`: the token stops working (the same 401 as a revoked
/// one) until resumed; 200 `token_info` with `suspended_at`. A revoked token is 409.
pub async fn suspend(
    State(state): State<AppState>,
    auth: Caller<TokensWrite>,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    set_suspended(state, auth, path, true).await
}

/// `POST /api/v1/tokens/{id}/resume`: a suspended token works again; 200 `token_info`
/// (`suspended_at: null`). A revoked token is 409: revocation is final.
pub async fn resume(
    State(state): State<AppState>,
    auth: Caller<TokensWrite>,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    set_suspended(state, auth, path, false).await
}

async fn set_suspended(
    state: AppState,
    auth: Caller<TokensWrite>,
    path: Result<Path<String>, PathRejection>,
    suspend: bool,
) -> Response {
    let id = match reachable(&state, &auth, path, Itself::Included).await {
        Ok(id) => id,
        Err(refused) => return refused,
    };
    let done = if suspend {
        state.tokens.suspend(auth.owner(), id).await
    } else {
        state.tokens.resume(auth.owner(), id).await
    };
    match done {
        Ok(info) => Json(TokenView::from(&info)).into_response(),
        Err(e) => failed(e),
    }
}

/// Whether a token other than a login reaches itself.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Itself {
    Included,
    /// Rotating: a token's successor is created by the token's creator, so a token rotating
    /// itself would make a token that revoking it does not reach.
    Excluded,
}

/// The token the path names, if it is the caller's user's (404 otherwise) and within the
/// caller's reach (403 `out_of_reach` otherwise).
async fn reachable(
    state: &AppState,
    auth: &Caller<TokensWrite>,
    path: Result<Path<String>, PathRejection>,
    itself: Itself,
) -> Result<TokenId, Response> {
    let no_such_token = || error(StatusCode::NOT_FOUND, "not_found", "no such token");
    let Some(id) = path.ok().and_then(|Path(id)| id.parse::<TokenId>().ok()) else {
        return Err(no_such_token());
    };
    let target = match state.tokens.get(auth.owner(), id).await {
        Ok(info) => info,
        Err(Error::NotFound) => return Err(no_such_token()),
        Err(e) => return Err(failed(e)),
    };
    let caller = auth.token_id();
    let caller_is_login = match state.tokens.get(auth.owner(), caller).await {
        Ok(info) => info.created_by.is_none(),
        Err(e) => return Err(failed(e)),
    };
    if caller_is_login || (id == caller && itself == Itself::Included) {
        return Ok(id);
    }
    // Walk up from the target towards the login: the caller must be on the way.
    let mut parent = target.created_by;
    for _ in 0..=MAX_TOKEN_NESTING {
        match parent {
            Some(p) if p == caller => return Ok(id),
            Some(p) => match state.tokens.get(auth.owner(), p).await {
                Ok(info) => parent = info.created_by,
                Err(Error::NotFound) => break,
                Err(e) => return Err(failed(e)),
            },
            None => break,
        }
    }
    let message = if id == caller {
        "a token cannot rotate itself (its successor would escape its creator's \
         revocation); rotate it with the token that created it, or a login token"
    } else {
        "this token can manage only itself and the tokens it created; use a login token \
         to manage the others"
    };
    Err(error(StatusCode::FORBIDDEN, "out_of_reach", message))
}
