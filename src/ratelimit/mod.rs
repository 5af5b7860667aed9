//! Rate limits: how often a token (and, optionally, an owner) may be used.
//!
//! A token's [`RateLimit`](crate::RateLimit) is stored on it; the service's
//! [`RateLimiter`] keeps the counts. `MemoryRateLimiter` (feature `rate-limit`, on
//! `governor`'s GCRA) counts in the process: over the memory store on each token's
//! [`RateCell`], beside its record ([`RateLimiter::check_cell`]), otherwise in a table of its
//! own; `RedisRateLimiter` (feature `redis`) counts on a Redis server shared by every
//! instance, in one atomic script call per check. A rejection is
//! [`AuthError::RateLimited`](crate::AuthError::RateLimited): 429 with `Retry-After` and
//! the `RateLimit-*` headers of the IETF draft.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::record::{CellMoved, RateCell, RateLimit};
use crate::token::TokenId;

#[cfg(feature = "rate-limit")]
pub(crate) mod memory;
#[cfg(feature = "redis")]
pub(crate) mod redis;

/// What is counted: one token, or every token of one owner (of one issuer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RateKey<'a> {
    /// One token.
    Token(TokenId),
    /// All of an owner's tokens of the issuer with this prefix.
    Owner {
        /// The issuer's prefix.
        prefix: &'a str,
        /// The owner.
        owner: &'a str,
    },
}

impl RateKey<'_> {
    /// A name for the key, unique across tokens, owners and issuers (`t:<id>` or
    /// `o:<prefix>:<owner>`), for limiters that keep counts by name.
    pub fn name(&self) -> String {
        match self {
            Self::Token(id) => format!("t:{id}"),
            Self::Owner { prefix, owner } => format!("o:{prefix}:{owner}"),
        }
    }
}

/// The answer of a [`RateLimiter`]: whether the request may go on, and the figures for the
/// `RateLimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    /// Whether the request is within the limit (and was counted).
    pub allowed: bool,
    /// The limit: requests per window.
    pub limit: u32,
    /// Requests left in the window after this one.
    pub remaining: u32,
    /// The window, in seconds.
    pub window_seconds: u32,
    /// When the count is back to the full limit.
    pub reset_after: Duration,
    /// When a refused request may be retried (`None` when allowed).
    pub retry_after: Option<Duration>,
}

/// A limiter that could not decide (its server unreachable or too slow), with what it says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the rate limiter could not decide: {0}")]
pub struct RateLimitError(pub String);

/// A future a [`RateLimiter`] answers with.
pub type RateFuture<'a> =
    Pin<Box<dyn Future<Output = Result<RateDecision, RateLimitError>> + Send + 'a>>;

/// Keeps the counts of rate limits: counts one request against `key` under `limit` and
/// answers whether it is allowed, atomically (two requests racing for the last place never
/// both get it).
///
/// Implement [`check_now`](Self::check_now) if the limiter can decide without waiting (in
/// memory): verification then decides without a boxed future.
pub trait RateLimiter: Send + Sync + 'static {
    /// Decide at once if possible; `None` if the answer must be awaited from
    /// [`check`](Self::check).
    fn check_now(
        &self,
        key: &RateKey<'_>,
        limit: RateLimit,
    ) -> Option<Result<RateDecision, RateLimitError>> {
        let _ = (key, limit);
        None
    }

    /// Count one request under `limit` on `cell`, the count the token's store keeps beside
    /// its record ([`RateCell`]), if this limiter counts in this process: verification then
    /// counts on a cache line it has just read, instead of looking a count up by key.
    /// `Err(CellMoved)` if the store is replacing the record (the caller reads it again).
    ///
    /// The default answers `None`: the limiter counts by key (as one shared between
    /// instances must).
    fn check_cell(
        &self,
        cell: &RateCell,
        limit: RateLimit,
    ) -> Option<Result<RateDecision, CellMoved>> {
        let _ = (cell, limit);
        None
    }

    /// Count one request against `key` under `limit`.
    fn check<'a>(&'a self, key: &'a RateKey<'a>, limit: RateLimit) -> RateFuture<'a>;
}

/// A shared limiter: services given clones of one `Arc` share its counts.
impl<L: RateLimiter + ?Sized> RateLimiter for std::sync::Arc<L> {
    fn check_now(
        &self,
        key: &RateKey<'_>,
        limit: RateLimit,
    ) -> Option<Result<RateDecision, RateLimitError>> {
        (**self).check_now(key, limit)
    }

    fn check_cell(
        &self,
        cell: &RateCell,
        limit: RateLimit,
    ) -> Option<Result<RateDecision, CellMoved>> {
        (**self).check_cell(cell, limit)
    }

    fn check<'a>(&'a self, key: &'a RateKey<'a>, limit: RateLimit) -> RateFuture<'a> {
        (**self).check(key, limit)
    }
}

impl fmt::Debug for dyn RateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RateLimiter")
    }
}
