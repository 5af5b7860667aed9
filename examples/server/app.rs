//! The example token service's router: the seeds' token API on top of `api-tokens`.
//!
//! Kept apart from `main.rs` (configuration, startup, shutdown) so the integration tests can
//! start exactly this router in-process.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant};

use api_tokens::axum::{Authenticated, ErrorBody, RequireScopes};
use api_tokens::{
    ApiTokens, Error, Expiry, ListRequest, NewToken, Scopes, TokenId, TokenInfo, TokenStore,
};
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRef, FromRequest, Path, RawQuery, Request, State};
use axum::http::{HeaderValue, StatusCode, header::RETRY_AFTER};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::json;
use time::OffsetDateTime;

/// Every scope this service knows; a login token carries them all.
pub const ALL_SCOPES: &[&str] = &["profile:read", "tokens:read", "tokens:write"];
/// Scopes of a token created without `scopes`: read-only.
pub const DEFAULT_SCOPES: &[&str] = &["profile:read", "tokens:read"];
/// Failed logins per email per minute before 429.
pub const MAX_FAILED_LOGINS: usize = 5;
/// Largest accepted request body.
pub const BODY_LIMIT: usize = 64 * 1024;

api_tokens::scope_requirement!(pub ProfileRead = ["profile:read"]);
api_tokens::scope_requirement!(pub TokensRead = ["tokens:read"]);
api_tokens::scope_requirement!(pub TokensWrite = ["tokens:write"]);

/// A user who can log in.
#[derive(Debug, Clone)]
pub struct User {
    /// Stable id, derived from the email so it survives restarts.
    pub id: String,
    /// Login email, as configured.
    pub email: String,
    /// The tenant the user's tokens belong to.
    pub tenant: String,
    password_hash: String,
}

/// The users of this service, from `DEMO_USERS`.
#[derive(Debug)]
pub struct Users {
    by_email: HashMap<String, User>,
    by_id: HashMap<String, User>,
    /// Checked against when an email is unknown, so timing does not reveal which exist.
    dummy_hash: String,
}

impl Users {
    /// Parse `email:password:tenant` entries separated by commas, hashing each password.
    pub fn from_spec(spec: &str) -> Result<Self, String> {
        let mut by_email = HashMap::new();
        let mut by_id = HashMap::new();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let mut parts = entry.splitn(3, ':');
            let (Some(email), Some(password), Some(tenant)) =
                (parts.next(), parts.next(), parts.next())
            else {
                return Err(format!(
                    "a DEMO_USERS entry is not `email:password:tenant` (for the user starting {:?})",
                    entry.chars().take(3).collect::<String>()
                ));
            };
            if email.is_empty() || password.is_empty() || tenant.is_empty() {
                return Err("a DEMO_USERS entry has an empty email, password or tenant".into());
            }
            let digest = api_tokens::TokenHash::of_secret(email.to_lowercase().as_bytes());
            let id = format!("user_{}", hex::encode(&digest.as_bytes()[..8]));
            let user = User {
                id: id.clone(),
                email: email.to_owned(),
                tenant: tenant.to_owned(),
                password_hash: password_auth::generate_hash(password),
            };
            if by_email
                .insert(email.to_lowercase(), user.clone())
                .is_some()
            {
                return Err(format!("DEMO_USERS lists {email} twice"));
            }
            by_id.insert(id, user);
        }
        if by_email.is_empty() {
            return Err("DEMO_USERS lists no user".into());
        }
        Ok(Self {
            by_email,
            by_id,
            dummy_hash: password_auth::generate_hash("not a password anyone has"),
        })
    }

    fn by_id(&self, id: &str) -> Option<&User> {
        self.by_id.get(id)
    }

    /// The user with this email and password, checked off the async runtime.
    async fn check(self: &Arc<Self>, email: &str, password: String) -> Option<User> {
        let user = self.by_email.get(&email.to_lowercase()).cloned();
        let hash = user
            .as_ref()
            .map_or_else(|| self.dummy_hash.clone(), |u| u.password_hash.clone());
        let ok = tokio::task::spawn_blocking(move || {
            password_auth::verify_password(password, &hash).is_ok()
        })
        .await
        .unwrap_or(false);
        user.filter(|_| ok)
    }
}

/// Failed password attempts per email within the last minute.
#[derive(Debug, Default)]
pub struct Limiter {
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl Limiter {
    const WINDOW: StdDuration = StdDuration::from_secs(60);

    /// `Some(seconds to wait)` if `key` has used up its attempts.
    fn blocked(&self, key: &str) -> Option<u64> {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let recent = map.get_mut(key)?;
        while recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Self::WINDOW)
        {
            recent.pop_front();
        }
        (recent.len() >= MAX_FAILED_LOGINS).then(|| {
            let oldest = recent.front().copied().unwrap_or(now);
            (Self::WINDOW - now.duration_since(oldest)).as_secs().max(1)
        })
    }

    fn failed(&self, key: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if map.len() > 10_000 {
            map.retain(|_, v| {
                v.back()
                    .is_some_and(|t| now.duration_since(*t) < Self::WINDOW)
            });
        }
        map.entry(key.to_owned()).or_default().push_back(now);
    }

    fn succeeded(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}

/// What every handler can reach.
pub struct AppState<St> {
    /// The token service.
    pub tokens: ApiTokens<St>,
    /// Who can log in.
    pub users: Arc<Users>,
    /// Failed password attempts.
    pub limiter: Arc<Limiter>,
}

impl<St> Clone for AppState<St> {
    fn clone(&self) -> Self {
        Self {
            tokens: self.tokens.clone(),
            users: Arc::clone(&self.users),
            limiter: Arc::clone(&self.limiter),
        }
    }
}

impl<St> FromRef<AppState<St>> for ApiTokens<St> {
    fn from_ref(state: &AppState<St>) -> Self {
        state.tokens.clone()
    }
}

/// The service's routes.
pub fn router<St: TokenStore>(state: AppState<St>) -> Router {
    Router::new()
        .route(
            "/auth/token",
            post(login::<St>).delete(revoke_current::<St>),
        )
        .route(
            "/api/v1/tokens",
            post(create_token::<St>).get(list_tokens::<St>),
        )
        .route("/api/v1/tokens/{id}", delete(revoke_token::<St>))
        .route("/api/v1/me", get(me::<St>))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    ErrorBody::new(code, message).into_response(status)
}

fn field_error(field: &str, reason: &str) -> Response {
    Error::Invalid(api_tokens::ValidationErrors(vec![api_tokens::FieldError {
        field: field.into(),
        reason: reason.into(),
    }]))
    .into_response()
}

/// 429 with `Retry-After`, after too many wrong passwords for one email.
fn too_many_attempts(retry_after_secs: u64) -> Response {
    let mut response = error(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_requests",
        "too many failed password attempts for this email; try again later",
    );
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(retry_after_secs));
    response
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "not_found", "no such route")
}

async fn method_not_allowed() -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not accept that method",
    )
}

/// A JSON body whose rejections are JSON errors that never echo the body back.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(match rejection {
                JsonRejection::MissingJsonContentType(_) => error(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    "send the body as `Content-Type: application/json`",
                ),
                JsonRejection::BytesRejection(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                    error(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "payload_too_large",
                        "the body is larger than 64 KiB",
                    )
                }
                JsonRejection::JsonSyntaxError(_) => error(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    "the body is not valid JSON",
                ),
                _ => error(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    "the body is missing a required field or has a field of the wrong type",
                ),
            }),
        }
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// A token as this API shows it (the seeds' `token_info`).
#[derive(Debug, Serialize)]
pub struct TokenView {
    id: String,
    name: String,
    description: Option<String>,
    token_prefix: String,
    token_type: &'static str,
    scopes: Vec<String>,
    created_at: String,
    last_used_at: Option<String>,
    expires_at: Option<String>,
    revoked_at: Option<String>,
    revocation_reason: Option<String>,
}

impl From<&TokenInfo> for TokenView {
    fn from(t: &TokenInfo) -> Self {
        Self {
            id: t.id.to_string(),
            name: t.name.to_string(),
            description: t.description.as_deref().map(str::to_owned),
            token_prefix: t.token_prefix.to_string(),
            token_type: "api",
            scopes: t.scopes.iter().map(str::to_owned).collect(),
            created_at: rfc3339(t.created_at),
            last_used_at: t.last_used_at.map(rfc3339),
            expires_at: t.expires_at.map(rfc3339),
            revoked_at: t.revoked_at.map(rfc3339),
            revocation_reason: t.revocation_reason.as_deref().map(str::to_owned),
        }
    }
}

#[derive(Deserialize)]
struct LoginRequest {
    email: String,
    password: String,
}

/// `POST /auth/token`: log in with email and password, get a 365-day token with every scope.
async fn login<St: TokenStore>(
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
        Ok(issued) => Json(json!({
            "access_token": issued.plaintext.expose_secret(),
            "token_id": issued.record.id.to_string(),
            "token_type": "Bearer",
            "expires_at": issued.record.expires_at.map(rfc3339),
            "user": { "id": user.id, "email": user.email, "tenant_id": user.tenant },
        }))
        .into_response(),
        Err(e) => e.into_response(),
    }
}

/// `DELETE /auth/token`: revoke the token this request is authenticated with.
async fn revoke_current<St: TokenStore>(
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

#[derive(Deserialize)]
struct CreateTokenRequest {
    name: Option<String>,
    description: Option<String>,
    expires_in_days: Option<i64>,
    scopes: Option<Vec<String>>,
}

/// `POST /api/v1/tokens`: create a token for the caller (needs `tokens:write`).
async fn create_token<St: TokenStore>(
    State(state): State<AppState<St>>,
    auth: RequireScopes<TokensWrite, St>,
    JsonBody(body): JsonBody<CreateTokenRequest>,
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
        Ok(issued) => (
            StatusCode::CREATED,
            Json(json!({
                "token": issued.plaintext.expose_secret(),
                "token_info": TokenView::from(&issued.info()),
            })),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

/// `GET /api/v1/tokens?page=&per_page=&include_revoked=`: the caller's tokens (needs
/// `tokens:read`).
async fn list_tokens<St: TokenStore>(
    State(state): State<AppState<St>>,
    auth: RequireScopes<TokensRead, St>,
    RawQuery(query): RawQuery,
) -> Response {
    let pairs: Vec<(String, String)> =
        match serde_urlencoded::from_str(query.as_deref().unwrap_or("")) {
            Ok(pairs) => pairs,
            Err(_) => return field_error("query", "is not a valid query string"),
        };
    let mut request = ListRequest::new(auth.owner());
    let mut details = Vec::new();
    for (key, value) in &pairs {
        match key.as_str() {
            "page" => match value.parse() {
                Ok(page) => request = request.page(page),
                Err(_) => details.push(("page", "must be a whole number of 1 or more")),
            },
            "per_page" => match value.parse() {
                Ok(n) => request = request.per_page(n),
                Err(_) => details.push(("per_page", "must be a whole number from 1 to 100")),
            },
            "include_revoked" => match value.as_str() {
                "true" | "1" => request = request.include_inactive(true),
                "false" | "0" => request = request.include_inactive(false),
                _ => details.push(("include_revoked", "must be true or false")),
            },
            _ => {}
        }
    }
    if !details.is_empty() {
        return Error::Invalid(api_tokens::ValidationErrors(
            details
                .into_iter()
                .map(|(field, reason)| api_tokens::FieldError {
                    field: field.into(),
                    reason: reason.into(),
                })
                .collect(),
        ))
        .into_response();
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
struct RevokeRequest {
    password: Option<String>,
    reason: Option<String>,
}

/// `DELETE /api/v1/tokens/{id}`: revoke one of the caller's tokens, confirmed by the
/// owner's password (needs `tokens:write`).
async fn revoke_token<St: TokenStore>(
    State(state): State<AppState<St>>,
    auth: RequireScopes<TokensWrite, St>,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
    JsonBody(body): JsonBody<RevokeRequest>,
) -> Response {
    let no_such_token = || error(StatusCode::NOT_FOUND, "not_found", "no such token");
    let Some(id) = path.ok().and_then(|Path(id)| id.parse::<TokenId>().ok()) else {
        return no_such_token();
    };
    let Some(password) = body.password.filter(|p| !p.is_empty()) else {
        return field_error("password", "is required to confirm the revocation");
    };
    match state.tokens.store().get(&id).await {
        Ok(Some(record)) if *record.owner == *auth.owner() => {}
        Ok(_) => return no_such_token(),
        Err(e) => return Error::Store(e).into_response(),
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

/// `GET /api/v1/me`: the caller and the token in use (needs `profile:read`).
async fn me<St: TokenStore>(
    State(state): State<AppState<St>>,
    auth: RequireScopes<ProfileRead, St>,
) -> Response {
    let Some(user) = state.users.by_id(auth.owner()) else {
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            "the token's user no longer exists",
        );
    };
    Json(json!({
        "id": user.id,
        "email": user.email,
        "tenant_id": user.tenant,
        "token": {
            "id": auth.token_id().to_string(),
            "name": auth.name(),
            "scopes": auth.scopes().iter().collect::<Vec<_>>(),
        },
    }))
    .into_response()
}
