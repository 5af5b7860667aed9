//! The axum integration (feature `axum`): an extractor that authenticates a request by its
//! API token, and JSON error responses for every error of this crate.
//!
//! Depends on `axum-core` and `http` only, not on `axum`.
//!
//! - [`Authenticated<St>`] verifies `Authorization: Bearer <t>` or `X-API-Key: <t>` against the
//!   [`ApiTokens<St>`] it finds in your state through [`FromRef`], honours the tenant header
//!   [`TENANT_HEADER`] (`x-business-id`), and puts the [`Principal`] into the request
//!   extensions.
//! - [`RequireScopes<R, St>`] does the same and also requires the scopes of `R` (declare `R`
//!   with [`scope_requirement!`](crate::scope_requirement)).
//! - [`AuthError`] and [`Error`] implement [`IntoResponse`]: 401 with `WWW-Authenticate: Bearer`
//!   and one body for every credential failure, 403 for scope and tenant, 422 with per-field
//!   `details`, 503 when the store is unavailable. Bodies are
//!   `{"code": "...", "message": "...", "details": [{"field": "...", "reason": "..."}]}`.
//!
//! ```
//! use api_tokens::axum::{Authenticated, RequireScopes};
//! use api_tokens::{ApiTokens, MemoryStore};
//! use axum::{Router, routing::get};
//!
//! api_tokens::scope_requirement!(pub TokensRead = ["tokens:read"]);
//!
//! async fn me(auth: Authenticated<MemoryStore>) -> String {
//!     format!("hello {}", auth.owner())
//! }
//!
//! async fn list_tokens(auth: RequireScopes<TokensRead, MemoryStore>) -> String {
//!     format!("{} may read tokens", auth.owner())
//! }
//!
//! let tokens = ApiTokens::new(MemoryStore::new(), "dz")?;
//! let app: Router = Router::new()
//!     .route("/me", get(me))
//!     .route("/tokens", get(list_tokens))
//!     .with_state(tokens); // `ApiTokens<St>` is the state, or reached through `FromRef`
//! # Ok::<(), api_tokens::ConfigError>(())
//! ```
//!
//! As middleware for a whole router, with the principal read back from the extensions:
//!
//! ```
//! use api_tokens::axum::Authenticated;
//! use api_tokens::{ApiTokens, MemoryStore, Principal};
//! use axum::{Extension, Router, middleware::from_extractor_with_state, routing::get};
//!
//! async fn whoami(Extension(who): Extension<Principal>) -> String {
//!     who.owner().to_string()
//! }
//!
//! let tokens = ApiTokens::new(MemoryStore::new(), "dz")?;
//! let app: Router = Router::new()
//!     .route("/whoami", get(whoami))
//!     .route_layer(from_extractor_with_state::<Authenticated<MemoryStore>, _>(tokens));
//! # Ok::<(), api_tokens::ConfigError>(())
//! ```

use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;

use axum_core::extract::{FromRef, FromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, StatusCode};
use serde::Serialize;

use crate::error::{AuthError, Error, FieldError};
use crate::header::presented_token;
use crate::service::{ApiTokens, Principal, Requirements};
use crate::store::token_store::TokenStore;

/// The header naming the tenant a request acts in. When present, the token must belong to
/// that tenant (else 403); sent more than once, it is malformed (401).
pub const TENANT_HEADER: &str = "x-business-id";
/// The header that may carry the token instead of `Authorization: Bearer`.
pub const API_KEY_HEADER: &str = "x-api-key";

/// The one body every 401 carries, so a caller cannot tell a missing, malformed, unknown,
/// revoked or expired token apart.
const UNAUTHORIZED_MESSAGE: &str = "a valid API token is required: send it as `Authorization: Bearer <token>` or `X-API-Key: <token>`";

/// Authenticate the request in `parts`: find the presented token, check the tenant header,
/// and verify with `scopes` required. Extractors use this; call it to build your own.
pub async fn authenticate<St: TokenStore>(
    parts: &Parts,
    tokens: &ApiTokens<St>,
    scopes: &[&str],
) -> Result<Principal, AuthError> {
    let authorization = single(&parts.headers, AUTHORIZATION.as_str())?;
    let api_key = single(&parts.headers, API_KEY_HEADER)?;
    let presented = presented_token(authorization, api_key)?;
    // A repeated tenant header is as ambiguous as a repeated token header: whichever value
    // a layer picked, another might pick the other.
    let tenant = match single(&parts.headers, TENANT_HEADER)? {
        Some(value) => Some(std::str::from_utf8(value).map_err(|_| AuthError::WrongTenant)?),
        None => None,
    };
    tokens
        .verify_with(presented, &Requirements::scopes(scopes).tenant(tenant))
        .await
}

/// The one value of a header; a repeated header is malformed.
fn single<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<Option<&'a [u8]>, AuthError> {
    let mut values = headers.get_all(name).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(AuthError::MalformedHeader {
            reason: "a token or tenant header is sent more than once",
        });
    }
    Ok(first.map(HeaderValue::as_bytes))
}

/// A request authenticated by a valid API token of [`ApiTokens<St>`].
///
/// Rejects with [`AuthError`] (401/403/503 as JSON). Dereferences to the [`Principal`], which
/// is also inserted into the request extensions for handlers behind middleware.
pub struct Authenticated<St> {
    /// Who the token acts for.
    pub principal: Principal,
    _store: PhantomData<fn() -> St>,
}

impl<St> Deref for Authenticated<St> {
    type Target = Principal;

    fn deref(&self) -> &Principal {
        &self.principal
    }
}

impl<St> fmt::Debug for Authenticated<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Authenticated")
            .field(&self.principal)
            .finish()
    }
}

impl<S, St> FromRequestParts<S> for Authenticated<St>
where
    ApiTokens<St>: FromRef<S>,
    St: TokenStore,
    S: Send + Sync,
{
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let tokens = ApiTokens::<St>::from_ref(state);
        let principal = authenticate(parts, &tokens, &[]).await?;
        parts.extensions.insert(principal.clone());
        Ok(Self {
            principal,
            _store: PhantomData,
        })
    }
}

/// Scopes a route requires, for [`RequireScopes`]. Declare one with
/// [`scope_requirement!`](crate::scope_requirement).
pub trait ScopeRequirement: Send + Sync + 'static {
    /// Every one of these must be on the token.
    const SCOPES: &'static [&'static str];
}

/// Declare a [`ScopeRequirement`]: `scope_requirement!(pub TokensWrite = ["tokens:write"]);`
#[macro_export]
macro_rules! scope_requirement {
    ($(#[$meta:meta])* $vis:vis $name:ident = [$($scope:expr),* $(,)?]) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy)]
        $vis struct $name;
        impl $crate::axum::ScopeRequirement for $name {
            const SCOPES: &'static [&'static str] = &[$($scope),*];
        }
    };
}

/// Like [`Authenticated`], and the token must carry every scope of `R` (else 403).
pub struct RequireScopes<R, St> {
    /// Who the token acts for.
    pub principal: Principal,
    _marker: PhantomData<fn() -> (R, St)>,
}

impl<R, St> Deref for RequireScopes<R, St> {
    type Target = Principal;

    fn deref(&self) -> &Principal {
        &self.principal
    }
}

impl<R, St> fmt::Debug for RequireScopes<R, St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RequireScopes")
            .field(&self.principal)
            .finish()
    }
}

impl<S, R, St> FromRequestParts<S> for RequireScopes<R, St>
where
    ApiTokens<St>: FromRef<S>,
    R: ScopeRequirement,
    St: TokenStore,
    S: Send + Sync,
{
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let tokens = ApiTokens::<St>::from_ref(state);
        let principal = authenticate(parts, &tokens, R::SCOPES).await?;
        parts.extensions.insert(principal.clone());
        Ok(Self {
            principal,
            _marker: PhantomData,
        })
    }
}

/// The JSON error body: `{"code", "message", "details"?}`.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorBody {
    /// A stable machine-readable code.
    pub code: String,
    /// A sentence for people.
    pub message: String,
    /// Rejected fields, for validation errors.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<FieldError>,
}

impl ErrorBody {
    /// A body with no details.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            details: Vec::new(),
        }
    }

    /// With these rejected fields.
    pub fn with_details(mut self, details: Vec<FieldError>) -> Self {
        self.details = details;
        self
    }

    /// The response: this body as JSON with `status`.
    pub fn into_response(self, status: StatusCode) -> Response {
        let bytes = serde_json::to_vec(&self).unwrap_or_else(|_| {
            br#"{"code":"internal_error","message":"the error could not be encoded"}"#.to_vec()
        });
        (
            status,
            [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
            bytes,
        )
            .into_response()
    }
}

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let code = status(self.status());
        if code == StatusCode::UNAUTHORIZED {
            let mut response =
                ErrorBody::new("invalid_token", UNAUTHORIZED_MESSAGE).into_response(code);
            response
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        }
        // A store error's details (the backend's message, a table name) stay out of the body.
        let message = match &self {
            AuthError::Store(_) if code == StatusCode::SERVICE_UNAVAILABLE => {
                "the token store is unavailable; try again later".to_owned()
            }
            // Not retryable (corrupt, read-only, misconfigured): no "try again".
            AuthError::Store(_) => "the token store failed".to_owned(),
            other => other.to_string(),
        };
        let mut response = ErrorBody::new(self.code(), message).into_response(code);
        if code == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        match self {
            Error::Auth(e) => e.into_response(),
            Error::Invalid(v) => {
                ErrorBody::new("validation_failed", "the request has invalid fields")
                    .with_details(v.0)
                    .into_response(StatusCode::UNPROCESSABLE_ENTITY)
            }
            Error::Store(e) => AuthError::Store(e).into_response(),
            other => ErrorBody::new(other.code(), other.to_string())
                .into_response(status(other.status())),
        }
    }
}
