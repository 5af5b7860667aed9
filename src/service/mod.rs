//! [`ApiTokens`]: the handle a service keeps to issue, verify, revoke and list tokens.
//!
//! The operations live beside their request types: issuing and rotating in `issue.rs`,
//! verification in `verify.rs`, revocation and purging in `revoke.rs`, reading and listing
//! in `list.rs`; the lifetime rules in `policy.rs`.

use std::fmt;
use std::sync::Arc;

use time::{Duration, OffsetDateTime};

use crate::clock::{Clock, SystemClock, to_stored_precision};
use crate::error::ConfigError;
use crate::limits::{DEFAULT_LAST_USE_INTERVAL, DEFAULT_SECRET_BYTES};
use crate::ratelimit::RateLimiter;
use crate::record::RateLimit;
use crate::store::token_store::TokenStore;
use crate::token::TokenFormat;
use audit::Audit;

mod audit;
mod expiry;
mod gate;
mod issue;
mod leaks;
mod list;
mod manage;
mod observe;
mod policy;
mod principal;
mod proxies;
mod revoke;
mod rotate;
mod verify;

#[cfg(feature = "audit")]
pub use audit::ChannelSink;
pub use audit::{AuditEvent, AuditKind, AuditSink, AuditVerified};
pub use expiry::Expiry;
pub use issue::{Issued, NewToken};
pub use leaks::{LeakOutcome, LeakReport};
pub use list::{ExpiringRequest, ListRequest, Page, PageMeta};
pub use manage::TokenEdit;
pub use policy::TokenPolicy;
pub use principal::{Principal, PrincipalScopes};
pub use proxies::TrustedProxies;
pub use verify::{LastUseFailure, Requirements};

/// Everything a service needs for the life of its API tokens, over one [`TokenStore`].
///
/// Cheap to clone (one `Arc`), so keep one in your application state.
///
/// | operation | what it does |
/// |---|---|
/// | [`issue`](Self::issue) | a new token from a [`NewToken`]; the plaintext is in the [`Issued`] once |
/// | [`verify`](Self::verify), [`verify_with`](Self::verify_with) | a presented token → its [`Principal`], or an [`AuthError`](crate::AuthError) |
/// | [`get`](Self::get), [`list`](Self::list) | an owner's tokens as [`TokenInfo`](crate::TokenInfo), never a hash |
/// | [`revoke`](Self::revoke), [`revoke_presented`](Self::revoke_presented), [`revoke_all`](Self::revoke_all) | end tokens now, for good |
/// | [`rotate`](Self::rotate) | a like-for-like replacement, with a grace period for the old token |
/// | [`purge`](Self::purge) | delete records that stopped working long ago |
///
/// ```
/// use api_tokens::{ApiTokens, AuthError, MemoryStore, NewToken};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let tokens = ApiTokens::new(MemoryStore::new(), "opt_live")?;
///
/// let issued = tokens.issue(NewToken::new("user_42", "deploy-script")).await?;
/// let secret = issued.plaintext.expose_secret(); // show this once
///
/// let who = tokens.verify(secret).await?;
/// assert_eq!(who.owner(), "user_42");
///
/// tokens.revoke("user_42", who.token_id(), Some("rotated")).await?;
/// assert!(matches!(tokens.verify(secret).await, Err(AuthError::Revoked { .. })));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub struct ApiTokens<S> {
    pub(crate) inner: Arc<Inner<S>>,
}

pub(crate) struct Inner<S> {
    pub(crate) store: S,
    pub(crate) trusted_proxies: Option<TrustedProxies>,
    pub(crate) format: TokenFormat,
    pub(crate) policy: TokenPolicy,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) last_use_interval: Duration,
    pub(crate) last_use_failure: LastUseFailure,
    pub(crate) rate_limiter: Option<Arc<dyn RateLimiter>>,
    pub(crate) owner_rate_limit: Option<RateLimit>,
    pub(crate) audit: Option<Audit>,
}

impl<S> Inner<S> {
    /// Whether tokens with a rate limit can be issued: a limiter is there to count.
    pub(crate) fn rate_limits_enforced(&self) -> bool {
        self.rate_limiter.is_some()
    }
}

impl<S> Clone for ApiTokens<S> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<S> fmt::Debug for ApiTokens<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiTokens")
            .field("format", &self.inner.format)
            .field("policy", &self.inner.policy)
            .field("last_use_interval", &self.inner.last_use_interval)
            .finish_non_exhaustive()
    }
}

impl<S: TokenStore> ApiTokens<S> {
    /// Tokens with this prefix over `store`, with the default policy, a 256-bit secret, the
    /// system clock and a 60-second last-use interval.
    pub fn new(store: S, prefix: &str) -> Result<Self, ConfigError> {
        Self::builder(store, prefix).build()
    }

    /// Configure more than the prefix.
    pub fn builder(store: S, prefix: &str) -> ApiTokensBuilder<S> {
        ApiTokensBuilder {
            store,
            prefix: prefix.to_owned(),
            secret_bytes: DEFAULT_SECRET_BYTES,
            policy: TokenPolicy::default(),
            clock: Arc::new(SystemClock),
            last_use_interval: DEFAULT_LAST_USE_INTERVAL,
            last_use_failure: LastUseFailure::default(),
            trusted_proxies: None,
            rate_limiter: None,
            owner_rate_limit: None,
            audit: None,
            audit_verified: AuditVerified::Off,
        }
    }
}

impl<S> ApiTokens<S> {
    /// The store.
    pub fn store(&self) -> &S {
        &self.inner.store
    }

    /// The token format (prefix and secret length).
    pub fn format(&self) -> &TokenFormat {
        &self.inner.format
    }

    /// The lifetime policy.
    pub fn policy(&self) -> &TokenPolicy {
        &self.inner.policy
    }

    /// How often, at most, a token's last use is written.
    pub fn last_use_interval(&self) -> Duration {
        self.inner.last_use_interval
    }

    /// What a failed last-use write does to a verification.
    pub fn last_use_failure_policy(&self) -> LastUseFailure {
        self.inner.last_use_failure
    }

    /// The proxies whose forwarding header names the client, if configured
    /// ([`ApiTokensBuilder::trusted_proxies`]).
    pub fn trusted_proxies(&self) -> Option<&TrustedProxies> {
        self.inner.trusted_proxies.as_ref()
    }

    /// The current time from the configured clock, at the precision stores keep.
    pub fn now(&self) -> OffsetDateTime {
        to_stored_precision(self.inner.clock.now())
    }
}

/// Builds an [`ApiTokens`]; every setting is checked in [`build`](Self::build).
///
/// ```
/// use api_tokens::{ApiTokens, ManualClock, MemoryStore, TokenPolicy};
/// use time::{Duration, OffsetDateTime};
///
/// let tokens = ApiTokens::builder(MemoryStore::new(), "api_prod")
///     .secret_bytes(32)
///     .policy(TokenPolicy::default().allow_never(true))
///     .clock(ManualClock::new(OffsetDateTime::UNIX_EPOCH))
///     .last_use_interval(Duration::minutes(5))
///     .build()?;
/// assert_eq!(tokens.format().prefix(), "api_prod");
/// # Ok::<(), api_tokens::ConfigError>(())
/// ```
#[must_use]
pub struct ApiTokensBuilder<S> {
    store: S,
    prefix: String,
    secret_bytes: usize,
    policy: TokenPolicy,
    clock: Arc<dyn Clock>,
    last_use_interval: Duration,
    last_use_failure: LastUseFailure,
    trusted_proxies: Option<TrustedProxies>,
    rate_limiter: Option<Arc<dyn RateLimiter>>,
    owner_rate_limit: Option<RateLimit>,
    audit: Option<Arc<dyn AuditSink>>,
    audit_verified: AuditVerified,
}

impl<S> fmt::Debug for ApiTokensBuilder<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiTokensBuilder")
            .field("prefix", &self.prefix)
            .field("secret_bytes", &self.secret_bytes)
            .field("policy", &self.policy)
            .field("last_use_interval", &self.last_use_interval)
            .field("last_use_failure", &self.last_use_failure)
            .finish_non_exhaustive()
    }
}

impl<S: TokenStore> ApiTokensBuilder<S> {
    /// What a failed last-use write does to a verification (default
    /// [`LastUseFailure::FailRequest`]).
    pub fn last_use_failure(mut self, policy: LastUseFailure) -> Self {
        self.last_use_failure = policy;
        self
    }

    /// Believe the client address a proxy in `proxies` writes into its forwarding header
    /// (see [`TrustedProxies`]), when the web integrations check a token's IP allowlist.
    /// Without it, the client is the TCP peer.
    pub fn trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        self.trusted_proxies = Some(proxies);
        self
    }

    /// Count rate limits with `limiter`: the limits stored on tokens
    /// ([`NewToken::rate_limit`](crate::NewToken::rate_limit)) and the owner's, if set.
    /// Without one, issuing a rate-limited token is refused, and verifying one (issued
    /// elsewhere) fails closed with [`AuthError::RateLimiterUnavailable`](crate::AuthError::RateLimiterUnavailable).
    pub fn rate_limiter(mut self, limiter: impl RateLimiter) -> Self {
        self.rate_limiter = Some(Arc::new(limiter));
        self
    }

    /// Limit every owner's tokens together to `limit` (on top of each token's own).
    pub fn owner_rate_limit(mut self, limit: RateLimit) -> Self {
        self.owner_rate_limit = Some(limit);
        self
    }

    /// Send audit events to `sink` (see [`AuditEvent`]); successful verifications only as
    /// [`audit_verified`](Self::audit_verified) says (off by default).
    pub fn audit(mut self, sink: impl AuditSink) -> Self {
        self.audit = Some(Arc::new(sink));
        self
    }

    /// Which successful verifications to audit (default [`AuditVerified::Off`]).
    pub fn audit_verified(mut self, sampling: AuditVerified) -> Self {
        self.audit_verified = sampling;
        self
    }

    /// Random bytes per secret: 16–64, default 32.
    pub fn secret_bytes(mut self, bytes: usize) -> Self {
        self.secret_bytes = bytes;
        self
    }

    /// The lifetime policy.
    pub fn policy(mut self, policy: TokenPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Where the current time comes from (default: [`SystemClock`]).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Write a token's last use at most once per `interval` (default 60 s; zero writes on
    /// every verification).
    pub fn last_use_interval(mut self, interval: Duration) -> Self {
        self.last_use_interval = interval;
        self
    }

    /// Check the settings and build.
    pub fn build(self) -> Result<ApiTokens<S>, ConfigError> {
        let format = TokenFormat::new(&self.prefix)?.with_secret_bytes(self.secret_bytes)?;
        self.policy.validate()?;
        if self.last_use_interval.is_negative() {
            return Err(ConfigError::Policy(
                "the last-use interval must not be negative",
            ));
        }
        if self
            .policy
            .get_idle_timeout()
            .is_some_and(|idle| idle <= self.last_use_interval)
        {
            return Err(ConfigError::Policy(
                "the idle timeout must be longer than the last-use interval, which bounds how \
                 stale a recorded last use may be",
            ));
        }
        Ok(ApiTokens {
            inner: Arc::new(Inner {
                store: self.store,
                trusted_proxies: self.trusted_proxies,
                format,
                policy: self.policy,
                clock: self.clock,
                last_use_interval: self.last_use_interval,
                last_use_failure: self.last_use_failure,
                rate_limiter: self.rate_limiter,
                owner_rate_limit: self.owner_rate_limit,
                audit: self.audit.map(|sink| Audit {
                    sink,
                    verified: self.audit_verified,
                    seen: Default::default(),
                }),
            }),
        })
    }
}
