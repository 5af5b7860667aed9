//! [`AuthError`]: every way a presented token fails.

use time::OffsetDateTime;

use super::{ParseError, StoreError};
use crate::clock::Rfc3339;

/// Why a presented token was not accepted.
///
/// The credential failures ([`Missing`](Self::Missing), [`MalformedHeader`](Self::MalformedHeader),
/// [`Malformed`](Self::Malformed), [`Invalid`](Self::Invalid), [`Expired`](Self::Expired),
/// [`Revoked`](Self::Revoked)) all map to 401, and a web layer must answer them with one
/// body so a caller cannot probe which tokens exist. An unknown id and a wrong secret are the
/// same [`Invalid`](Self::Invalid). `Expired` and `Revoked` are only reported once the secret
/// has matched; their messages name the time, so never send `to_string()` to a client.
///
/// ```
/// use api_tokens::AuthError;
///
/// assert_eq!(AuthError::Invalid.status(), 401);
/// assert_eq!(AuthError::WrongTenant.status(), 403);
/// assert_eq!(AuthError::Invalid.code(), "invalid_token");
/// assert!(AuthError::Invalid.store_error().is_none());
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No token was presented.
    #[error(
        "no API token was presented; send it as `Authorization: Bearer <token>` or `X-API-Key: <token>`"
    )]
    Missing,
    /// The header carrying the token is unusable.
    #[error("the API token header is malformed: {reason}")]
    MalformedHeader {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The presented string is not a token of this issuer.
    #[error("the API token is malformed: {0}")]
    Malformed(#[from] ParseError),
    /// No such token, or the secret does not match.
    #[error("the API token is not valid; check it or create a new one")]
    Invalid,
    /// The token expired.
    #[error("the API token expired at {}; create a new one", Rfc3339(*.expired_at))]
    Expired {
        /// When it expired.
        expired_at: OffsetDateTime,
    },
    /// The token was revoked; revocation cannot be undone.
    #[error("the API token was revoked at {}; create a new one", Rfc3339(*.revoked_at))]
    Revoked {
        /// When it was revoked.
        revoked_at: OffsetDateTime,
    },
    /// The token is suspended (it may be resumed; until then it fails like a revoked one).
    #[error("the API token is suspended; ask its owner to resume it")]
    Suspended {
        /// When it was suspended.
        suspended_at: OffsetDateTime,
    },
    /// The token was not used for longer than the policy's idle timeout.
    #[error("the API token was unused since {} and has lapsed; create a new one", Rfc3339(*.idle_since))]
    Idle {
        /// Its last recorded use (or its creation, if it was never used).
        idle_since: OffsetDateTime,
    },
    /// The token may only be used from certain addresses, and the request's is not one of
    /// them (or the service passed no address to check).
    #[error("the API token may not be used from this address")]
    IpNotAllowed,
    /// The token lacks scopes the operation requires.
    #[error("the API token lacks the required scopes: {}; use a token that has them", .missing.join(", "))]
    InsufficientScope {
        /// The required scopes the token does not carry.
        missing: Vec<String>,
    },
    /// The token belongs to another tenant (or to none, where one is required).
    #[error("the API token does not belong to the requested tenant; use a token of that tenant")]
    WrongTenant,
    /// The token has used every use its [usage limit](crate::UsageLimit) allows (until its
    /// next refill, if it has one).
    #[error("the API token has no uses left; wait for its refill or use another token")]
    UsageExceeded,
    /// The token (or its owner) sent more requests than its
    /// [rate limit](crate::RateLimit) allows; retry after `retry_after`.
    #[error("too many requests with this API token; retry in {} s", retry_secs(.retry_after))]
    RateLimited {
        /// Requests allowed per window.
        limit: u32,
        /// The window, in seconds.
        window_seconds: u32,
        /// When the count is full again.
        reset_after: std::time::Duration,
        /// When a request may be retried.
        retry_after: std::time::Duration,
    },
    /// The rate limiter could not decide (its server is unreachable or slow), and it is
    /// configured to refuse rather than let requests through unlimited.
    #[error("the rate limiter is unavailable; try again shortly")]
    RateLimiterUnavailable,
    /// The token store could not answer; the request fails closed.
    #[error("the token store could not check the token: {0}")]
    Store(#[source] StoreError),
}

/// Whole seconds to wait, rounded up (at least 1).
pub(crate) fn retry_secs(d: &std::time::Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

impl AuthError {
    /// The HTTP status to answer: 401 for credential failures, 403 for scope, tenant and
    /// address, 429 for usage and rate limits, 503 (store or rate limiter unavailable) or
    /// 500 (store fault).
    pub fn status(&self) -> u16 {
        match self {
            Self::Missing
            | Self::MalformedHeader { .. }
            | Self::Malformed(_)
            | Self::Invalid
            | Self::Expired { .. }
            | Self::Revoked { .. }
            | Self::Suspended { .. }
            | Self::Idle { .. } => 401,
            Self::InsufficientScope { .. } | Self::WrongTenant | Self::IpNotAllowed => 403,
            Self::UsageExceeded | Self::RateLimited { .. } => 429,
            Self::RateLimiterUnavailable => 503,
            Self::Store(e) => e.status(),
        }
    }

    /// A stable machine-readable code. All credential failures share `invalid_token`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InsufficientScope { .. } => "insufficient_scope",
            Self::WrongTenant => "wrong_tenant",
            Self::IpNotAllowed => "ip_not_allowed",
            Self::UsageExceeded => "usage_exceeded",
            Self::RateLimited { .. } => "rate_limited",
            Self::RateLimiterUnavailable => "rate_limiter_unavailable",
            Self::Store(e) => e.code(),
            _ => "invalid_token",
        }
    }

    /// Why verification failed, as a stable label for logs, metrics and audit trails:
    /// `missing`, `malformed_header`, `malformed`, `invalid`, `expired`, `revoked`,
    /// `suspended`, `idle`, `insufficient_scope`, `wrong_tenant`, `ip_not_allowed`,
    /// `usage_exceeded`, `rate_limited`, `rate_limiter_unavailable` or `store`. Unlike [`code`](Self::code), it tells
    /// the 401s apart, so keep it out of responses.
    ///
    /// ```
    /// use api_tokens::AuthError;
    ///
    /// assert_eq!(AuthError::Invalid.reason(), "invalid");
    /// assert_eq!(AuthError::Missing.reason(), "missing");
    /// ```
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::MalformedHeader { .. } => "malformed_header",
            Self::Malformed(_) => "malformed",
            Self::Invalid => "invalid",
            Self::Expired { .. } => "expired",
            Self::Revoked { .. } => "revoked",
            Self::Suspended { .. } => "suspended",
            Self::Idle { .. } => "idle",
            Self::InsufficientScope { .. } => "insufficient_scope",
            Self::WrongTenant => "wrong_tenant",
            Self::IpNotAllowed => "ip_not_allowed",
            Self::UsageExceeded => "usage_exceeded",
            Self::RateLimited { .. } => "rate_limited",
            Self::RateLimiterUnavailable => "rate_limiter_unavailable",
            Self::Store(_) => "store",
        }
    }

    /// Whether this is one of the 401 credential failures.
    pub fn is_credential_failure(&self) -> bool {
        self.status() == 401
    }

    /// The store's failure, if the store is why verification failed.
    pub fn store_error(&self) -> Option<&StoreError> {
        match self {
            Self::Store(e) => Some(e),
            _ => None,
        }
    }
}
