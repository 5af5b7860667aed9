//! The framework-neutral web layer (feature `web`): what every integration does, decided
//! once, for any framework to adapt in a few lines.
//!
//! - [`AuthHeaders`]: the raw values of the `Authorization`, `X-API-Key` and tenant
//!   (`x-business-id`) headers, as bytes, each as often as the request repeats it.
//! - [`authenticate`]: those headers and the required scopes → the [`Principal`], or a
//!   [`Rejection`] carrying the status, the headers to set and the JSON body, with the
//!   single-401 rule applied (a caller never learns why its token failed).
//! - [`Rejection`] from any [`AuthError`] or [`Error`](crate::Error) of this crate, so a handler never
//!   writes an error mapping (nor sends an error's message, which may name a revocation
//!   time, to a client).
//! - The helpers every token API needs: [`parse_token_id`] (a path id that is not an id is
//!   `404`, like an unknown one), [`check_grant`] (a token grants only scopes its creator
//!   holds), and [`NewToken::child_of`](crate::NewToken::child_of) (a created token never
//!   outlives, out-scopes or outlives the revocation of the token creating it).
//! - [`ScopeRequirement`] and [`scope_requirement!`](crate::scope_requirement): a route's
//!   required scopes as a type, for extractors.
//!
//! The axum, actix-web and tower integrations are thin adapters over this module.
//!
//! ```
//! use api_tokens::web::{authenticate, AuthHeaders};
//! use api_tokens::{ApiTokens, MemoryStore, NewToken};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let tokens = ApiTokens::new(MemoryStore::new(), "dz")?;
//! let issued = tokens.issue(NewToken::new("u1", "ci")).await?;
//! let header = format!("Bearer {}", issued.plaintext.expose_secret());
//!
//! // From whatever your framework gives: (name, value) pairs, or one call per value.
//! let headers = AuthHeaders::from_pairs([("authorization", header.as_bytes())]);
//! let who = authenticate(&tokens, &headers, &[]).await.unwrap();
//! assert_eq!(who.owner(), "u1");
//!
//! let missing = authenticate(&tokens, &AuthHeaders::new(), &[]).await.unwrap_err();
//! assert_eq!(missing.status(), 401);
//! assert_eq!(missing.header("www-authenticate"), Some("Bearer"));
//! // Send `missing.status()`, `missing.headers()` and `missing.body()`.
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

use std::fmt;
use std::net::IpAddr;

use crate::error::AuthError;
use crate::header::presented_token;
use crate::record::Scopes;
use crate::service::{ApiTokens, Principal, Requirements};
use crate::store::token_store::TokenStore;
use crate::token::TokenId;

mod rejection;

pub use rejection::{ErrorBody, GrpcCode, Rejection};

/// The header naming the tenant a request acts in. When present, the token must belong to
/// that tenant (else 403); sent more than once, it is malformed (401).
pub const TENANT_HEADER: &str = "x-business-id";
/// The header that may carry the token instead of `Authorization: Bearer`.
pub const API_KEY_HEADER: &str = "x-api-key";
/// The `Authorization` header.
pub const AUTHORIZATION_HEADER: &str = "authorization";

/// One header's values: the first, and how many there were.
#[derive(Debug, Clone, Copy, Default)]
struct Values<'a> {
    first: Option<&'a [u8]>,
    count: usize,
}

impl<'a> Values<'a> {
    fn push(&mut self, value: &'a [u8]) {
        if self.first.is_none() {
            self.first = Some(value);
        }
        self.count += 1;
    }

    /// The one value; a header sent more than once is ambiguous (a layer in front might
    /// read the other one), so it is malformed.
    fn single(&self) -> Result<Option<&'a [u8]>, AuthError> {
        if self.count > 1 {
            return Err(AuthError::MalformedHeader {
                reason: "a token or tenant header is sent more than once",
            });
        }
        Ok(self.first)
    }
}

/// The headers that authenticate a request, as raw bytes, each as often as it was sent.
/// Building one allocates nothing.
///
/// ```
/// use api_tokens::web::AuthHeaders;
///
/// let headers = AuthHeaders::new()
///     .authorization(b"Bearer dz_...")
///     .tenant(b"business_7");
/// # let _ = headers;
/// ```
#[derive(Clone, Copy, Default)]
pub struct AuthHeaders<'a> {
    authorization: Values<'a>,
    api_key: Values<'a>,
    tenant: Values<'a>,
    peer: Option<IpAddr>,
    forwarded: Forwarded<'a>,
}

/// Says which headers are present, never their values (the credential headers hold the
/// token).
impl fmt::Debug for AuthHeaders<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthHeaders")
            .field("authorization_values", &self.authorization.count)
            .field("api_key_values", &self.api_key.count)
            .field("tenant_values", &self.tenant.count)
            .field("peer", &self.peer)
            .field("forwarded_lines", &self.forwarded.count)
            .finish()
    }
}

/// The last lines of a forwarding header (the nearest hops; a few are kept).
#[derive(Debug, Clone, Copy, Default)]
struct Forwarded<'a> {
    lines: [&'a [u8]; 4],
    count: usize,
}

impl<'a> Forwarded<'a> {
    fn push(&mut self, value: &'a [u8]) {
        let kept = self.lines.len();
        if self.count >= kept {
            self.lines.rotate_left(1);
            self.lines[kept - 1] = value;
        } else {
            self.lines[self.count] = value;
        }
        self.count += 1;
    }

    fn kept(&self) -> &[&'a [u8]] {
        &self.lines[..self.count.min(self.lines.len())]
    }
}

/// The TCP peer's address, as a request extension: the tower layer and the axum extractors
/// read it to check IP allowlists (actix-web knows the peer itself). Insert it where you
/// accept connections (`request.extensions_mut().insert(PeerAddr(peer.ip()))`); without
/// it, a token with an allowlist does not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub IpAddr);

impl<'a> AuthHeaders<'a> {
    /// No header yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// An `Authorization` value (call once per value the request carries).
    pub fn authorization(mut self, value: &'a [u8]) -> Self {
        self.authorization.push(value);
        self
    }

    /// An `X-API-Key` value (call once per value the request carries).
    pub fn api_key(mut self, value: &'a [u8]) -> Self {
        self.api_key.push(value);
        self
    }

    /// An `x-business-id` value (call once per value the request carries).
    pub fn tenant(mut self, value: &'a [u8]) -> Self {
        self.tenant.push(value);
        self
    }

    /// The TCP peer's address (for IP allowlists).
    pub fn peer(mut self, address: IpAddr) -> Self {
        self.peer = Some(address);
        self
    }

    /// A value of the forwarding header that [`TrustedProxies`](crate::TrustedProxies)
    /// names (call once per line the request carries).
    pub fn forwarded(mut self, value: &'a [u8]) -> Self {
        self.forwarded.push(value);
        self
    }

    /// Take the three headers from a request's (name, value) pairs; names are compared
    /// without regard to case, and other headers are ignored.
    pub fn from_pairs<N: AsRef<str>>(pairs: impl IntoIterator<Item = (N, &'a [u8])>) -> Self {
        Self::from_request(pairs, None, None)
    }

    /// [`from_pairs`](Self::from_pairs), with the TCP peer's address and the lines of the
    /// forwarding header `forwarding` (the one [`TrustedProxies`](crate::TrustedProxies)
    /// names), for IP allowlists. The integrations call this.
    pub fn from_request<N: AsRef<str>>(
        pairs: impl IntoIterator<Item = (N, &'a [u8])>,
        peer: Option<IpAddr>,
        forwarding: Option<&str>,
    ) -> Self {
        let mut headers = Self::new();
        headers.peer = peer;
        for (name, value) in pairs {
            let name = name.as_ref();
            if name.eq_ignore_ascii_case(AUTHORIZATION_HEADER) {
                headers.authorization.push(value);
            } else if name.eq_ignore_ascii_case(API_KEY_HEADER) {
                headers.api_key.push(value);
            } else if name.eq_ignore_ascii_case(TENANT_HEADER) {
                headers.tenant.push(value);
            } else if forwarding.is_some_and(|f| name.eq_ignore_ascii_case(f)) {
                headers.forwarded.push(value);
            }
        }
        headers
    }

    /// The client's address: the peer, or behind `proxies` the address they forwarded;
    /// `None` when it cannot be told (no peer given, or a forwarding header that names no
    /// client: see [`TrustedProxies`](crate::TrustedProxies)).
    pub fn client_ip(&self, proxies: Option<&crate::TrustedProxies>) -> Option<IpAddr> {
        let peer = self.peer?;
        let Some(proxies) = proxies else {
            return Some(peer);
        };
        if !proxies.is_proxy(peer) {
            return Some(peer);
        }
        let partial = self.forwarded.count > self.forwarded.lines.len();
        proxies.walk(peer, self.forwarded.kept(), partial)
    }

    /// The presented token and the tenant asked for, or why the headers are unusable.
    pub fn credentials(&self) -> Result<(&'a str, Option<&'a str>), AuthError> {
        let presented = presented_token(self.authorization.single()?, self.api_key.single()?)?;
        let tenant = match self.tenant.single()? {
            // Tenant ids are identifiers: a value that is not UTF-8 names no tenant.
            Some(value) => Some(std::str::from_utf8(value).map_err(|_| AuthError::WrongTenant)?),
            None => None,
        };
        Ok((presented, tenant))
    }
}

/// Authenticate a request by its headers: the presented token must verify, carry every
/// one of `scopes`, and belong to the tenant the tenant header names (if it is sent).
pub async fn authenticate<St: TokenStore>(
    tokens: &ApiTokens<St>,
    headers: &AuthHeaders<'_>,
    scopes: &[&str],
) -> Result<Principal, Rejection> {
    verify(tokens, headers, scopes)
        .await
        .map_err(Rejection::from)
}

/// [`authenticate`], keeping the [`AuthError`] (for logs and metrics: its
/// [`reason`](AuthError::reason)); answer it with `Rejection::from(&err)`.
pub async fn verify<St: TokenStore>(
    tokens: &ApiTokens<St>,
    headers: &AuthHeaders<'_>,
    scopes: &[&str],
) -> Result<Principal, AuthError> {
    let (presented, tenant) = headers.credentials()?;
    let client = headers.client_ip(tokens.trusted_proxies());
    let requirements = Requirements::scopes(scopes)
        .tenant(tenant)
        .client_ip(client);
    tokens.verify_with(presented, &requirements).await
}

/// A token id from a path segment. Anything that is not an id is answered like an id that
/// names no token: `404 not_found`.
///
/// ```
/// use api_tokens::web::parse_token_id;
///
/// assert_eq!(parse_token_id("not-an-id").unwrap_err().status(), 404);
/// assert!(parse_token_id("0123456789abcdef0123456789abcdef").is_ok());
/// ```
pub fn parse_token_id(segment: &str) -> Result<TokenId, Rejection> {
    segment.parse().map_err(|_| Rejection::not_found())
}

/// Whether the token `creator` may grant `scopes` to a token it creates: only scopes it
/// holds itself (else `403 insufficient_scope` naming the others). Issuing with
/// [`NewToken::child_of`](crate::NewToken::child_of) checks this too.
///
/// ```
/// use api_tokens::web::check_grant;
/// use api_tokens::{ApiTokens, MemoryStore, NewToken, Scopes};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let tokens = ApiTokens::new(MemoryStore::new(), "dz")?;
/// let t = tokens.issue(NewToken::new("u1", "ci").scopes(["a"])).await?;
/// let who = tokens.verify(t.plaintext.expose_secret()).await?;
/// assert!(check_grant(&who, &Scopes::parse(["a"])?).is_ok());
/// assert_eq!(check_grant(&who, &Scopes::parse(["a", "b"])?).unwrap_err().status(), 403);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub fn check_grant(creator: &Principal, scopes: &Scopes) -> Result<(), Rejection> {
    let held = creator.scopes();
    let missing: Vec<String> = scopes
        .iter()
        .filter(|s| !held.contains(s))
        .map(str::to_owned)
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Rejection::from(AuthError::InsufficientScope { missing }))
    }
}

/// Scopes a route requires, as a type, for extractors (`RequireScopes<R, …>`). Declare one
/// with [`scope_requirement!`](crate::scope_requirement).
pub trait ScopeRequirement: Send + Sync + 'static {
    /// Every one of these must be on the token.
    const SCOPES: &'static [&'static str];
}

/// Declare a [`ScopeRequirement`](crate::web::ScopeRequirement):
/// `scope_requirement!(pub TokensWrite = ["tokens:write"]);`
#[macro_export]
macro_rules! scope_requirement {
    ($(#[$meta:meta])* $vis:vis $name:ident = [$($scope:expr),* $(,)?]) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy)]
        $vis struct $name;
        impl $crate::web::ScopeRequirement for $name {
            const SCOPES: &'static [&'static str] = &[$($scope),*];
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{IpAllowlist, TrustedProxies};

    #[test]
    fn debug_never_shows_a_header_value() {
        let headers = AuthHeaders::new()
            .authorization(b"Bearer dz_secret_token_text")
            .api_key(b"dz_other_secret")
            .tenant(b"biz_1");
        let shown = format!("{headers:?}");
        assert!(
            !shown.contains("secret") && !shown.contains("biz_1"),
            "{shown}"
        );
        assert!(shown.contains("authorization_values: 1"), "{shown}");
    }

    #[test]
    fn the_nearest_forwarding_lines_are_kept() {
        let proxies = TrustedProxies::new(
            "x-forwarded-for",
            IpAllowlist::parse(["10.0.0.0/8"]).expect("ranges"),
        );
        let mut headers = AuthHeaders::new().peer("10.0.0.2".parse().unwrap());
        // A client sends four lines of its own; the proxy appends the address it saw.
        for line in [
            &b"1.1.1.1"[..],
            b"2.2.2.2",
            b"3.3.3.3",
            b"4.4.4.4",
            b"198.51.100.7",
        ] {
            headers = headers.forwarded(line);
        }
        assert_eq!(
            headers.client_ip(Some(&proxies)),
            Some("198.51.100.7".parse().unwrap())
        );
        let mut proxied = AuthHeaders::new().peer("10.0.0.2".parse().unwrap());
        for _ in 0..6 {
            proxied = proxied.forwarded(b"10.0.0.9");
        }
        assert_eq!(
            proxied.client_ip(Some(&proxies)),
            None,
            "the far end was not kept"
        );
    }
}
