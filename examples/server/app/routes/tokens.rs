//! `/api/v1/tokens`: create a token, list the caller's tokens, revoke one by id or all.

use std::time::Instant;

use api_tokens::{
    Error, Expiry, FieldError, ListRequest, NewToken, RateLimit, Refill, RefillInterval, Scopes,
    TokenId, UsageLimit,
};
use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use zeroize::Zeroizing;

use super::{DEFAULT_SCOPES, TokensRead, TokensWrite};
use crate::app::caller::Caller;
use crate::app::config::MAX_TOKEN_NESTING;
use crate::app::json::{
    JsonBody, error, failed, nullable, one_time_json, passwords_busy, timestamp, too_many_attempts,
};
use crate::app::state::AppState;
use crate::app::views::TokenView;

#[derive(Deserialize)]
pub struct CreateRequest {
    name: Option<String>,
    description: Option<String>,
    /// Absent: the policy's default; `null`: never (if `ALLOW_NEVER_EXPIRING`).
    #[serde(default, deserialize_with = "nullable")]
    expires_in_days: Option<Option<i64>>,
    /// An RFC 3339 instant, instead of `expires_in_days`; `null`: never, as
    /// `expires_in_days: null`.
    #[serde(default, deserialize_with = "nullable")]
    expires_at: Option<Option<String>>,
    scopes: Option<Vec<String>>,
    /// A JSON object kept with the token (at most 4 KiB, nested at most 5 deep).
    metadata: Option<serde_json::Value>,
    /// CIDR ranges or addresses the token may be used from.
    allowed_ips: Option<Vec<String>>,
    /// Uses the token has (at least 1); each successful request consumes one.
    remaining: Option<u64>,
    /// How the uses are topped up: `{"interval": "daily"|"monthly", "amount": n}`.
    refill: Option<RefillRequest>,
    /// How often the token may be used: `{"limit": n, "per_seconds": s}`.
    rate_limit: Option<RateLimitRequest>,
}

#[derive(Deserialize)]
pub struct RefillRequest {
    interval: String,
    amount: u64,
}

#[derive(Deserialize)]
pub struct RateLimitRequest {
    limit: u32,
    per_seconds: u32,
}

impl CreateRequest {
    /// The usage and rate limits asked for, or the fields that are wrong.
    fn limits(&self) -> Result<(Option<UsageLimit>, Option<RateLimit>), Error> {
        let mut details = Vec::new();
        let usage = match (self.remaining, &self.refill) {
            (None, None) => None,
            (None, Some(_)) => {
                details.push(FieldError::new(
                    "refill",
                    "needs `remaining`, the uses to start with",
                ));
                None
            }
            (Some(remaining), refill) => match UsageLimit::new(remaining) {
                Ok(usage) => match refill {
                    None => Some(usage),
                    Some(r) => match RefillInterval::parse(&r.interval)
                        .ok_or_else(|| {
                            FieldError::new("refill.interval", "must be daily or monthly")
                        })
                        .and_then(|interval| Refill::new(interval, r.amount))
                    {
                        Ok(refill) => Some(usage.refill(refill)),
                        Err(e) => {
                            details.push(e);
                            None
                        }
                    },
                },
                Err(e) => {
                    details.push(e);
                    None
                }
            },
        };
        let rate = match &self.rate_limit {
            None => None,
            Some(r) => match RateLimit::new(r.limit, r.per_seconds) {
                Ok(rate) => Some(rate),
                Err(e) => {
                    details.push(e);
                    None
                }
            },
        };
        if details.is_empty() {
            Ok((usage, rate))
        } else {
            Err(Error::Invalid(api_tokens::ValidationErrors(details)))
        }
    }
}

impl CreateRequest {
    /// The expiry asked for, or the field error naming why it cannot be.
    fn expiry(&self) -> Result<Expiry, FieldError> {
        // A `null` beside a value is a field left unset (as clients that send every field
        // do); two values, or a date beside `expires_in_days: null`, contradict each other.
        match (&self.expires_in_days, &self.expires_at) {
            (Some(_), Some(Some(_))) => Err(FieldError::new(
                "expires_at",
                "give either expires_in_days or expires_at, not both",
            )),
            (None, None) => Ok(Expiry::PolicyDefault),
            (Some(Some(days)), _) => Ok(Expiry::InDays(*days)),
            (Some(None), _) | (None, Some(None)) => Ok(Expiry::Never),
            (None, Some(Some(at))) => timestamp("expires_at", at).map(Expiry::At),
        }
    }
}

/// `POST /api/v1/tokens`: create a token for the caller (needs `tokens:write`), as a child
/// of the caller's token (`NewToken::child_of`): it can only grant scopes the caller's token
/// holds (403), belongs to the caller's tenant, never outlives the caller's token (its
/// expiry, asked for or the policy's default, is cut to the creator's, and the response
/// shows the expiry it got), and is revoked when the caller's token is. Tokens nest at most
/// `MAX_TOKEN_NESTING` levels below a login (403 beyond).
///
/// `expires_in_days: null` (or `expires_at: null`) asks for a token that never expires:
/// refused (422) unless `ALLOW_NEVER_EXPIRING=true`, and even then cut to the creator's
/// expiry, as above.
/// `metadata` (an object) and `allowed_ips` (CIDR ranges) are kept with the token; a token
/// created by a token limited to some addresses is limited to them too (or to a part).
pub async fn create(
    State(state): State<AppState>,
    auth: Caller<TokensWrite>,
    JsonBody(mut body): JsonBody<CreateRequest>,
) -> Response {
    let requested = body
        .scopes
        .take()
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
    match lineage(&state, &auth).await {
        Ok((_, depth)) if depth >= MAX_TOKEN_NESTING => {
            return error(
                StatusCode::FORBIDDEN,
                "nesting_limit",
                "this token was created by too many generations of tokens to create more; \
                 create the token from a login token",
            );
        }
        Ok(_) => {}
        Err(refused) => return refused,
    }
    let expiry = match body.expiry() {
        Ok(Expiry::Never) if !state.config.allow_never_expiring => {
            let (field, instead) = match body.expires_in_days {
                Some(None) => ("expires_in_days", "give 1 to 365 days"),
                _ => ("expires_at", "give a date within 365 days"),
            };
            return Error::from(FieldError::new(
                field,
                format!("null (never expires) is not allowed on this server; {instead}"),
            ))
            .into_response();
        }
        Ok(expiry) => expiry,
        Err(e) => return Error::from(e).into_response(),
    };
    let mut new = NewToken::child_of(&auth, body.name.take().unwrap_or_default())
        .scopes(scopes.iter())
        .expires(expiry);
    if let Some(description) = body.description.take() {
        new = new.description(description);
    }
    if let Some(metadata) = body.metadata.take() {
        new = new.metadata(metadata);
    }
    if let Some(ranges) = body.allowed_ips.take() {
        new = new.allowed_ips(ranges);
    }
    match body.limits() {
        Ok((usage, rate)) => {
            if let Some(usage) = usage {
                new = new.usage(usage);
            }
            if let Some(rate) = rate {
                new = new.rate_limit(rate);
            }
        }
        Err(e) => return e.into_response(),
    }
    let started = Instant::now();
    let issued = state.tokens.issue(new).await;
    metrics::histogram!("store_operation_duration_seconds", "operation" => "issue")
        .record(started.elapsed());
    match issued {
        Ok(issued) => one_time_json(
            StatusCode::CREATED,
            &Created {
                token: issued.plaintext.expose_secret(),
                token_info: TokenView::from(&issued.info()),
            },
        ),
        Err(e) => failed(e),
    }
}

/// Where the caller's token stands among the tokens created from a login: the branch it
/// belongs to (the token just below the login that it descends from, or the login token
/// itself) and how many tokens lie between it and the login (0 for a login token). At most
/// `MAX_TOKEN_NESTING` reads: deeper tokens are never created.
async fn lineage<R>(state: &AppState, auth: &Caller<R>) -> Result<(TokenId, usize), Response> {
    // `path` runs from the caller's token up towards the login.
    let mut path = vec![auth.token_id()];
    while path.len() <= MAX_TOKEN_NESTING + 1 {
        let id = path[path.len() - 1];
        match state.tokens.get(auth.owner(), id).await {
            Ok(info) => match info.created_by {
                Some(parent) => path.push(parent),
                None => break,
            },
            // A creator purged long ago: the chain starts here.
            Err(Error::NotFound) => break,
            Err(e) => return Err(failed(e)),
        }
    }
    let depth = path.len() - 1;
    let branch = path[depth.saturating_sub(1)];
    Ok((branch, depth))
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
pub async fn list(
    State(state): State<AppState>,
    auth: Caller<TokensRead>,
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
    let started = Instant::now();
    let listed = state.tokens.list(&request).await;
    metrics::histogram!("store_operation_duration_seconds", "operation" => "list")
        .record(started.elapsed());
    match listed {
        Ok(page) => Json(json!({
            "data": page.data.iter().map(TokenView::from).collect::<Vec<_>>(),
            "meta": page.meta,
        }))
        .into_response(),
        Err(e) => failed(e),
    }
}

#[derive(Deserialize)]
pub struct RevokeRequest {
    password: Option<Zeroizing<String>>,
    reason: Option<String>,
}

/// `DELETE /api/v1/tokens/{id}`: revoke one of the caller's tokens, confirmed by the
/// owner's password (needs `tokens:write`). Another user's token is not found.
///
/// Confirmations are limited per branch (`CONFIRM_ATTEMPTS_PER_TOKEN`: a token created by a
/// login and every token created from it, from any address; a login token is a branch of
/// its own), never by the email's login limits,
/// and checked on a password checker of their own: failed or flooded logins, which anyone
/// can send, cannot stop a token holder from revoking a leaked token. Revoking a token
/// revokes the tokens it created too.
pub async fn revoke(
    State(state): State<AppState>,
    auth: Caller<TokensWrite>,
    path: Result<Path<String>, PathRejection>,
    JsonBody(body): JsonBody<RevokeRequest>,
) -> Response {
    let no_such_token = || error(StatusCode::NOT_FOUND, "not_found", "no such token");
    let Some(id) = path.ok().and_then(|Path(id)| id.parse::<TokenId>().ok()) else {
        return no_such_token();
    };
    match state.tokens.get(auth.owner(), id).await {
        Ok(_) => {}
        Err(Error::NotFound) => return no_such_token(),
        Err(e) => return failed(e),
    }
    if let Err(refused) = confirm(&state, &auth, body.password).await {
        return refused;
    }
    let started = Instant::now();
    // On a task of its own, so that a deadline or a client hanging up never leaves the
    // token revoked and the tokens it created not yet.
    let (tokens, owner) = (state.tokens.clone(), auth.owner().to_owned());
    let revoking =
        tokio::spawn(async move { tokens.revoke(&owner, id, body.reason.as_deref()).await });
    let Ok(revoked) = revoking.await else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "the revocation failed",
        );
    };
    metrics::histogram!("store_operation_duration_seconds", "operation" => "revoke")
        .record(started.elapsed());
    match revoked {
        Ok(()) => Json(json!({ "message": "Token revoked successfully" })).into_response(),
        Err(e) => failed(e),
    }
}

/// `DELETE /api/v1/tokens`: revoke every token of the caller in the caller's tenant,
/// including the one in use, confirmed by the owner's password (needs `tokens:write`).
/// Answers `{"revoked": n}`.
pub async fn revoke_all(
    State(state): State<AppState>,
    auth: Caller<TokensWrite>,
    JsonBody(body): JsonBody<RevokeRequest>,
) -> Response {
    if let Err(refused) = confirm(&state, &auth, body.password).await {
        return refused;
    }
    let started = Instant::now();
    let revoked = state
        .tokens
        .revoke_all(auth.owner(), auth.tenant(), body.reason.as_deref())
        .await;
    metrics::histogram!("store_operation_duration_seconds", "operation" => "revoke_all")
        .record(started.elapsed());
    match revoked {
        Ok(n) => Json(json!({ "revoked": n })).into_response(),
        Err(e) => failed(e),
    }
}

/// Check the caller's password, under the confirmation limit of the caller's branch: a
/// thief holding a leaked token, and whatever it mints from it, shares one allowance, and
/// cannot spend the allowance of the login that created the leaked token.
async fn confirm(
    state: &AppState,
    auth: &Caller<TokensWrite>,
    password: Option<Zeroizing<String>>,
) -> Result<(), Response> {
    let Some(password) = password.filter(|p| !p.is_empty()) else {
        return Err(Error::from(FieldError::new(
            "password",
            "is required to confirm the revocation",
        ))
        .into_response());
    };
    let (branch, _) = lineage(state, auth).await?;
    state.limiters.confirm(branch).map_err(too_many_attempts)?;
    match state
        .users
        .check(&state.confirm_passwords, &auth.user.email, password)
        .await
    {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(error(
            StatusCode::FORBIDDEN,
            "wrong_password",
            "the password is not correct; nothing was revoked",
        )),
        Err(_busy) => Err(passwords_busy()),
    }
}
