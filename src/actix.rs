//! The actix-web 4 integration (feature `actix`): extractors that authenticate a request by
//! its API token, and `ResponseError` for every error of this crate, with exactly the
//! statuses, headers and JSON bodies of the axum integration (the rules live once, in
//! [`web`](crate::web)).
//!
//! - [`Authenticated<St>`] finds the [`ApiTokens<St>`] registered as
//!   `web::Data<ApiTokens<St>>`, verifies `Authorization: Bearer <t>` or `X-API-Key: <t>`,
//!   honours the tenant header (`x-business-id`), puts the [`Principal`] into the request
//!   extensions, and dereferences to it (`auth.owner()`).
//! - [`RequireScopes<R, St>`] also requires the scopes of `R`, declared with
//!   [`scope_requirement!`](crate::scope_requirement).
//! - [`AuthError`], [`Error`] and [`Rejection`] implement [`ResponseError`]: return them from
//!   a handler (`Result<_, api_tokens::Error>`) and the client gets the right answer.
//!
//! ```
//! use actix_web::{App, web};
//! use api_tokens::actix::{Authenticated, RequireScopes};
//! use api_tokens::{ApiTokens, MemoryStore};
//!
//! api_tokens::scope_requirement!(pub TokensWrite = ["tokens:write"]);
//!
//! async fn me(auth: Authenticated<MemoryStore>) -> String {
//!     format!("you are {}", auth.owner())
//! }
//!
//! async fn create(auth: RequireScopes<TokensWrite, MemoryStore>) -> String {
//!     format!("{} may create tokens", auth.owner())
//! }
//!
//! let tokens = ApiTokens::new(MemoryStore::new(), "dz")?;
//! let app = App::new()
//!     .app_data(web::Data::new(tokens))
//!     .route("/me", web::get().to(me))
//!     .route("/tokens", web::post().to(create));
//! # let _ = app;
//! # Ok::<(), api_tokens::ConfigError>(())
//! ```
//!
//! As middleware for a whole scope, with the principal read back from the extensions
//! (`web::ReqData<Principal>`):
//!
//! ```
//! use actix_web::middleware::{Next, from_fn};
//! use actix_web::{App, Error, HttpMessage, body::MessageBody, dev::{ServiceRequest, ServiceResponse}, web};
//! use api_tokens::{ApiTokens, MemoryStore, Principal};
//!
//! async fn require_token(
//!     req: ServiceRequest,
//!     next: Next<impl MessageBody>,
//! ) -> Result<ServiceResponse<impl MessageBody>, Error> {
//!     let tokens = req.app_data::<web::Data<ApiTokens<MemoryStore>>>().cloned();
//!     let tokens = tokens.expect("ApiTokens is registered");
//!     let principal = api_tokens::actix::authenticate(req.request(), &tokens, &[]).await?;
//!     req.extensions_mut().insert(principal);
//!     next.call(req).await
//! }
//!
//! async fn whoami(who: web::ReqData<Principal>) -> String {
//!     who.owner().to_owned()
//! }
//!
//! let tokens = ApiTokens::new(MemoryStore::new(), "dz")?;
//! let app = App::new().app_data(web::Data::new(tokens)).service(
//!     web::scope("/api").wrap(from_fn(require_token)).route("/whoami", web::get().to(whoami)),
//! );
//! # let _ = app;
//! # Ok::<(), api_tokens::ConfigError>(())
//! ```

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::ops::Deref;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError, web};

use crate::error::{AuthError, Error};
use crate::service::{ApiTokens, Principal};
use crate::store::token_store::TokenStore;
use crate::web::{AuthHeaders, Rejection, ScopeRequirement, verify};

/// Authenticate `req` against `tokens` with `scopes` required (through
/// [`web::verify`](crate::web::verify)). The extractors use this; call it from middleware.
pub async fn authenticate<St: TokenStore>(
    req: &HttpRequest,
    tokens: &ApiTokens<St>,
    scopes: &[&str],
) -> Result<Principal, AuthError> {
    let forwarding = tokens.trusted_proxies().map(|p| p.header());
    let headers = AuthHeaders::from_request(
        req.headers()
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_bytes())),
        req.peer_addr().map(|a| a.ip()),
        forwarding,
    );
    verify(tokens, &headers, scopes).await
}

/// The registered `web::Data<ApiTokens<St>>`, or a 500 saying it is missing.
fn tokens_of<St: TokenStore>(req: &HttpRequest) -> Result<ApiTokens<St>, actix_web::Error> {
    req.app_data::<web::Data<ApiTokens<St>>>()
        .map(|data| ApiTokens::clone(data))
        .ok_or_else(|| {
            actix_web::error::ErrorInternalServerError(
                "no ApiTokens is registered with App::app_data(web::Data::new(tokens)) \
                 for this store type",
            )
        })
}

/// Authenticate `req` with `scopes`, inserting the principal into its extensions.
async fn extract<St: TokenStore>(
    req: HttpRequest,
    scopes: &'static [&'static str],
) -> Result<Principal, actix_web::Error> {
    let tokens = tokens_of::<St>(&req)?;
    let principal = authenticate(&req, &tokens, scopes).await?;
    req.extensions_mut().insert(principal.clone());
    Ok(principal)
}

type Extracting<T> = Pin<Box<dyn Future<Output = Result<T, actix_web::Error>>>>;

/// A request authenticated by a valid API token of [`ApiTokens<St>`] (registered as
/// `web::Data<ApiTokens<St>>`). Rejects with the crate's JSON answers (401/403/503).
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

impl<St: TokenStore> FromRequest for Authenticated<St> {
    type Error = actix_web::Error;
    type Future = Extracting<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            Ok(Self {
                principal: extract::<St>(req, &[]).await?,
                _store: PhantomData,
            })
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

impl<R: ScopeRequirement, St: TokenStore> FromRequest for RequireScopes<R, St> {
    type Error = actix_web::Error;
    type Future = Extracting<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            Ok(Self {
                principal: extract::<St>(req, R::SCOPES).await?,
                _marker: PhantomData,
            })
        })
    }
}

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// The response for `rejection`.
fn respond(rejection: &Rejection) -> HttpResponse {
    let mut response = HttpResponse::build(status(rejection.status()));
    for (name, value) in rejection.headers() {
        if let Ok(value) = HeaderValue::from_str(value) {
            response.insert_header((HeaderName::from_static(name), value));
        }
    }
    response.body(rejection.body().to_vec())
}

impl ResponseError for Rejection {
    fn status_code(&self) -> StatusCode {
        status(self.status())
    }

    fn error_response(&self) -> HttpResponse {
        respond(self)
    }
}

impl ResponseError for AuthError {
    fn status_code(&self) -> StatusCode {
        status(self.status())
    }

    fn error_response(&self) -> HttpResponse {
        respond(&Rejection::from(self))
    }
}

impl ResponseError for Error {
    fn status_code(&self) -> StatusCode {
        status(self.status())
    }

    fn error_response(&self) -> HttpResponse {
        respond(&Rejection::from(self))
    }
}
