//! The gates a verified token passes last: its rate limit (and its owner's), then its usage
//! limit. Both count the request: a token refused by them is valid but may not be used now
//! (429), and a store or limiter that cannot answer fails the request closed (503).

use super::ApiTokens;
use super::principal::Principal;
use crate::error::AuthError;
use crate::ratelimit::{RateDecision, RateKey, RateLimitError};
use crate::record::RateLimit;
use crate::store::UseOutcome;
use crate::store::token_store::TokenStore;
use crate::token::TokenId;

/// The rate limits a verification must pass: the token's and the owner's, each `None` once
/// passed (or when there is none).
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    pub(super) token: Option<RateLimit>,
    pub(super) owner: Option<RateLimit>,
}

impl Limits {
    pub(super) fn any(&self) -> bool {
        self.token.is_some() || self.owner.is_some()
    }
}

/// How far the rate limits got without waiting.
pub(super) enum RateNow {
    /// All passed.
    Passed,
    /// One refused (or could not be checked).
    Refused(AuthError),
    /// These are left, and must be awaited.
    Wait(Limits),
}

impl<S: TokenStore> ApiTokens<S> {
    /// Check what of `limits` the limiter can decide at once.
    pub(super) fn rate_now(&self, id: TokenId, who: &Principal, mut limits: Limits) -> RateNow {
        let Some(limiter) = &self.inner.rate_limiter else {
            // A token carries a limit this service cannot enforce: refuse, never run
            // unlimited.
            return RateNow::Refused(AuthError::RateLimiterUnavailable);
        };
        let prefix = self.format().prefix();
        if let Some(limit) = limits.token {
            match limiter.check_now(&RateKey::Token(limit.bucket().unwrap_or(id)), limit) {
                None => return RateNow::Wait(limits),
                Some(decided) => {
                    if let Err(e) = refused(decided) {
                        return RateNow::Refused(e);
                    }
                    limits.token = None;
                }
            }
        }
        if let Some(limit) = limits.owner {
            let key = RateKey::Owner {
                prefix,
                owner: who.owner(),
            };
            match limiter.check_now(&key, limit) {
                None => return RateNow::Wait(limits),
                Some(decided) => {
                    if let Err(e) = refused(decided) {
                        return RateNow::Refused(e);
                    }
                }
            }
        }
        RateNow::Passed
    }

    /// Await what is left of the rate limits, consume a use if the token counts them, and
    /// write the last use if it is due.
    pub(super) async fn pass_slowly(
        &self,
        id: TokenId,
        who: Principal,
        limits: Limits,
        counts_uses: bool,
        last_use_due: bool,
    ) -> Result<Principal, AuthError> {
        if limits.any() {
            let limiter = self
                .inner
                .rate_limiter
                .as_ref()
                .ok_or(AuthError::RateLimiterUnavailable)?;
            if let Some(limit) = limits.token {
                let key = RateKey::Token(limit.bucket().unwrap_or(id));
                refused(limiter.check(&key, limit).await)?;
            }
            if let Some(limit) = limits.owner {
                let key = RateKey::Owner {
                    prefix: self.format().prefix(),
                    owner: who.owner(),
                };
                refused(limiter.check(&key, limit).await)?;
            }
        }
        if counts_uses {
            let now = self.now();
            match self
                .inner
                .store
                .consume_use(&id, now)
                .await
                .map_err(AuthError::Store)?
            {
                UseOutcome::Consumed { .. } | UseOutcome::NotCounted => {}
                UseOutcome::Exhausted => {
                    super::observe::usage_exceeded();
                    return Err(AuthError::UsageExceeded);
                }
            }
        }
        if last_use_due {
            self.write_last_use(id, who).await
        } else {
            Ok(who)
        }
    }
}

/// A limiter's answer as a verification's: refused, or unavailable (fail closed).
pub(super) fn refused(decided: Result<RateDecision, RateLimitError>) -> Result<(), AuthError> {
    match decided {
        Ok(d) if d.allowed => Ok(()),
        Ok(d) => {
            super::observe::rate_limited();
            Err(AuthError::RateLimited {
                limit: d.limit,
                window_seconds: d.window_seconds,
                reset_after: d.reset_after,
                retry_after: d.retry_after.unwrap_or_default(),
            })
        }
        Err(e) => {
            super::observe::limiter_failed(&e);
            Err(AuthError::RateLimiterUnavailable)
        }
    }
}
