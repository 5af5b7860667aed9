//! Who is calling: the request's token, verified, and the user it belongs to.
//!
//! Every route that needs a token takes a [`Caller`]. It verifies the token (counting the
//! outcome and the store's latency in the metrics, and naming the token in the request's
//! log line) and then requires that the token's user still exists: a token of a user who
//! was removed gets the same 401 as a revoked one, on every route.

use std::marker::PhantomData;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::Deref;
use std::time::Instant;

use api_tokens::axum::authenticate;
use api_tokens::web::ScopeRequirement;
use api_tokens::{AuthError, Principal};
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};

use super::state::AppState;
use super::users::User;

api_tokens::scope_requirement!(
    /// No scope: any valid token of an existing user.
    pub AnyScope = []
);

/// A request made with a valid token (holding the scopes of `R`) of an existing user.
pub struct Caller<R = AnyScope> {
    /// Who the token acts for.
    pub principal: Principal,
    /// The token's user.
    pub user: User,
    _scopes: PhantomData<fn() -> R>,
}

impl<R> Deref for Caller<R> {
    type Target = Principal;

    fn deref(&self) -> &Principal {
        &self.principal
    }
}

impl<R: ScopeRequirement> FromRequestParts<AppState> for Caller<R> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let started = Instant::now();
        let verified = authenticate(parts, &state.tokens, R::SCOPES).await;
        metrics::histogram!("store_operation_duration_seconds", "operation" => "verify")
            .record(started.elapsed());
        let principal = match verified {
            Ok(principal) => principal,
            Err(e) => {
                metrics::counter!("verify_outcomes_total", "outcome" => e.reason()).increment(1);
                if e.status() >= 500 {
                    // The store's error never holds a token or secret.
                    tracing::warn!(error = %e, "verification failed: the token store could not answer");
                }
                return Err(e.into_response());
            }
        };
        tracing::Span::current().record("token_id", tracing::field::display(principal.token_id()));
        let Some(user) = state.users.by_id(principal.owner()).cloned() else {
            metrics::counter!("verify_outcomes_total", "outcome" => "user_removed").increment(1);
            tracing::info!("refused a valid token: its user no longer exists");
            return Err(AuthError::Invalid.into_response());
        };
        metrics::counter!("verify_outcomes_total", "outcome" => "ok").increment(1);
        Ok(Self {
            principal,
            user,
            _scopes: PhantomData,
        })
    }
}

/// The client's address. Behind a trusted proxy (`TRUSTED_PROXIES`, when the TCP peer is
/// one) it comes from `CLIENT_IP_HEADER`: walking its entries from the right (the nearest
/// hop first), the first that is not itself a trusted proxy. Otherwise, or if the header is
/// missing, it is the TCP peer: a client that reaches the server directly cannot choose
/// the address it is counted as. The crate's `TrustedProxies` decides, so the
/// login limits count the same address that IP allowlists check.
pub fn client_address(parts: &Parts, state: &AppState) -> IpAddr {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |ConnectInfo(peer)| {
            peer.ip()
        });
    match state.tokens.trusted_proxies() {
        // A header that names no client (garbage nearer than any address) is counted as
        // the proxy: all such requests share one allowance. IP allowlists refuse them.
        Some(proxies) => proxies
            .client_ip(
                peer,
                parts
                    .headers
                    .get_all(proxies.header())
                    .iter()
                    .map(|v| v.as_bytes()),
            )
            .unwrap_or(peer),
        None => peer,
    }
}

/// The client's address, as an extractor for routes without a token.
pub struct ClientAddress(pub IpAddr);

impl FromRequestParts<AppState> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(client_address(parts, state)))
    }
}
