//! The tower integration (feature `tower`): [`AuthLayer`], for any stack built on
//! `tower` and `http` 1 — axum's `Router::layer`, hyper services, tonic servers.
//!
//! Every request through the layer is authenticated (through [`web`](crate::web), where the
//! rules are): a valid token's [`Principal`](crate::Principal) is inserted into the request extensions and the
//! request goes on; anything else is answered by the layer itself, with the same statuses,
//! headers and JSON bodies as the other integrations, or, for a gRPC request
//! (`content-type: application/grpc…`), with a trailers-only gRPC answer:
//! `UNAUTHENTICATED` (16) for a missing or invalid token, `PERMISSION_DENIED` (7) for a
//! scope or tenant, `UNAVAILABLE` (14) when the store is.
//!
//! The response body is [`AuthBody<B>`]: the inner service's body, or the layer's JSON.
//!
//! For tokens with an IP allowlist, insert the TCP peer's address as a
//! [`PeerAddr`] extension where you accept connections; behind a
//! proxy, configure [`TrustedProxies`](crate::TrustedProxies) on the `ApiTokens`.
//!
//! ```
//! use std::convert::Infallible;
//! use api_tokens::tower::AuthLayer;
//! use api_tokens::{ApiTokens, MemoryStore, Principal};
//! use tower::{ServiceBuilder, service_fn};
//!
//! async fn handler(req: http::Request<String>) -> Result<http::Response<String>, Infallible> {
//!     let who = req.extensions().get::<Principal>().expect("authenticated");
//!     Ok(http::Response::new(format!("hello {}", who.owner())))
//! }
//!
//! let tokens = ApiTokens::new(MemoryStore::new(), "dz")?;
//! let service = ServiceBuilder::new()
//!     .layer(AuthLayer::new(tokens).require_scopes(["profile:read"]))
//!     .service(service_fn(handler));
//! # let _ = service;
//! # Ok::<(), api_tokens::ConfigError>(())
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::{Either, Full};
use tower_layer::Layer;
use tower_service::Service;

use crate::service::ApiTokens;
use crate::store::token_store::TokenStore;
use crate::web::{AuthHeaders, PeerAddr, Rejection, authenticate};

/// The body of a response through [`AuthLayer`]: the inner service's (`Left`) or the
/// layer's rejection (`Right`).
pub type AuthBody<B> = Either<B, Full<Bytes>>;

/// A [`Layer`] that authenticates every request by its API token, requiring the scopes
/// given to [`require_scopes`](Self::require_scopes). See the [module](self).
pub struct AuthLayer<St> {
    tokens: ApiTokens<St>,
    scopes: Arc<[&'static str]>,
}

impl<St> Clone for AuthLayer<St> {
    fn clone(&self) -> Self {
        Self {
            tokens: self.tokens.clone(),
            scopes: Arc::clone(&self.scopes),
        }
    }
}

impl<St> fmt::Debug for AuthLayer<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthLayer")
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

impl<St: TokenStore> AuthLayer<St> {
    /// Authenticate with `tokens`, requiring no scope.
    pub fn new(tokens: ApiTokens<St>) -> Self {
        Self {
            tokens,
            scopes: Arc::new([]),
        }
    }

    /// Also require every one of `scopes` (403 / `PERMISSION_DENIED` without them).
    pub fn require_scopes(mut self, scopes: impl IntoIterator<Item = &'static str>) -> Self {
        self.scopes = scopes.into_iter().collect();
        self
    }
}

impl<S, St> Layer<S> for AuthLayer<St> {
    type Service = AuthService<S, St>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            tokens: self.tokens.clone(),
            scopes: Arc::clone(&self.scopes),
        }
    }
}

/// The service [`AuthLayer`] wraps around `S`.
pub struct AuthService<S, St> {
    inner: S,
    tokens: ApiTokens<St>,
    scopes: Arc<[&'static str]>,
}

impl<S: Clone, St> Clone for AuthService<S, St> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            tokens: self.tokens.clone(),
            scopes: Arc::clone(&self.scopes),
        }
    }
}

impl<S, St> fmt::Debug for AuthService<S, St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthService")
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

type Answer<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, St, ReqBody, ResBody> Service<Request<ReqBody>> for AuthService<S, St>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    St: TokenStore,
    ReqBody: Send + 'static,
{
    type Response = Response<AuthBody<ResBody>>;
    type Error = S::Error;
    type Future = Answer<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        // The clone that was made ready is the one that serves (tower's usual dance).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let tokens = self.tokens.clone();
        let scopes = Arc::clone(&self.scopes);
        Box::pin(async move {
            let verified = {
                let forwarding = tokens.trusted_proxies().map(|p| p.header());
                let headers = AuthHeaders::from_request(
                    req.headers()
                        .iter()
                        .map(|(name, value)| (name.as_str(), value.as_bytes())),
                    req.extensions().get::<PeerAddr>().map(|p| p.0),
                    forwarding,
                );
                authenticate(&tokens, &headers, &scopes).await
            };
            match verified {
                Ok(principal) => {
                    req.extensions_mut().insert(principal);
                    let response = inner.call(req).await?;
                    Ok(response.map(Either::Left))
                }
                Err(rejection) => Ok(if is_grpc(&req) {
                    grpc_answer(&rejection)
                } else {
                    http_answer(&rejection)
                }),
            }
        })
    }
}

/// Whether `req` is a gRPC call.
fn is_grpc<B>(req: &Request<B>) -> bool {
    req.headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// The rejection as an HTTP response with its JSON body.
pub(crate) fn http_answer<B>(rejection: &Rejection) -> Response<AuthBody<B>> {
    let status =
        StatusCode::from_u16(rejection.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = Response::new(Either::Right(Full::new(Bytes::copy_from_slice(
        rejection.body(),
    ))));
    *response.status_mut() = status;
    for (name, value) in rejection.headers() {
        if let Ok(value) = HeaderValue::from_str(value) {
            response
                .headers_mut()
                .insert(HeaderName::from_static(name), value);
        }
    }
    response
}

/// The rejection as a trailers-only gRPC response: HTTP 200, `grpc-status` and
/// `grpc-message` in the headers, no body.
pub(crate) fn grpc_answer<B>(rejection: &Rejection) -> Response<AuthBody<B>> {
    let (code, message) = rejection.grpc_status();
    let mut response = Response::new(Either::Right(Full::new(Bytes::new())));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert(
        HeaderName::from_static("grpc-status"),
        HeaderValue::from_str(&(code as u8).to_string()).unwrap_or(HeaderValue::from_static("13")),
    );
    // The message is ASCII prose from this crate; anything else is left out.
    if let Ok(value) = HeaderValue::from_str(&grpc_message(message)) {
        headers.insert(HeaderName::from_static("grpc-message"), value);
    }
    response
}

/// `message` percent-encoded as the gRPC spec asks for `grpc-message`.
fn grpc_message(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for b in message.bytes() {
        if (0x20..0x7f).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
