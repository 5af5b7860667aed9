//! The axum integration (feature `axum`): an extractor that authenticates a request by its
//! API token, and JSON error responses for every error of this crate.
//!
//! Depends on `axum-core` and `http` only, not on `axum`.
//!
//! A thin adapter over the framework-neutral [`web`] layer, where the rules are.
//!
//! - [`Authenticated<St>`] verifies `Authorization: Bearer <t>` or `X-API-Key: <t>` against the
//!   [`ApiTokens<St>`] it finds in your state through [`FromRef`], honours the tenant header
//!   [`TENANT_HEADER`](crate::web::TENANT_HEADER) (`x-business-id`), and puts the
//!   [`Principal`] into the request extensions.
//! - [`RequireScopes<R, St>`] does the same and also requires the scopes of `R` (declare `R`
//!   with [`scope_requirement!`](crate::scope_requirement)).
//! - [`AuthError`], [`Error`] and [`Rejection`] implement [`IntoResponse`]: 401 with
//!   `WWW-Authenticate: Bearer` and one body for every credential failure, 403 for scope and
//!   tenant, 422 with per-field `details`, 503 when the store is unavailable. Bodies are
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
use http::request::Parts;
use http::{HeaderName, HeaderValue, StatusCode};

use crate::error::{AuthError, Error};
use crate::service::{ApiTokens, Principal};
use crate::store::token_store::TokenStore;
use crate::web::{self, AuthHeaders, Rejection, ScopeRequirement};

/// Authenticate the request in `parts` (through [`web::verify`]): find the presented token,
/// check the tenant header, and verify with `scopes` required. Extractors use this; call it
/// to build your own.
pub async fn authenticate<St: TokenStore>(
    parts: &Parts,
    tokens: &ApiTokens<St>,
    scopes: &[&str],
) -> Result<Principal, AuthError> {
    let forwarding = tokens.trusted_proxies().map(|p| p.header());
    web::verify(tokens, &headers_of(parts, forwarding), scopes).await
}

/// The authenticating headers of a request, with its peer ([`web::PeerAddr`]).
fn headers_of<'a>(parts: &'a Parts, forwarding: Option<&str>) -> AuthHeaders<'a> {
    let peer = parts.extensions.get::<web::PeerAddr>().map(|p| p.0);
    AuthHeaders::from_request(
        parts
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_bytes())),
        peer,
        forwarding,
    )
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

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, self.body().to_vec()).into_response();
        let headers = response.headers_mut();
        for (name, value) in self.headers() {
            if let Ok(value) = HeaderValue::from_str(value) {
                headers.insert(HeaderName::from_static(name), value);
            }
        }
        response
    }
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        Rejection::from(self).into_response()
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        Rejection::from(self).into_response()
    }
}
