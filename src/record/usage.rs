//! [`UsageLimit`]: a number of uses a token has left, optionally refilled each day or month,
//! and [`RateLimit`]: how often a token may be used.

use std::num::NonZeroU32;

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime, Time, UtcOffset};

use crate::error::FieldError;
use crate::limits::{MAX_RATE_LIMIT, MAX_RATE_WINDOW_SECONDS, MAX_USES};
use crate::token::TokenId;

/// How many more times a token may verify (Unkey's `remaining`), and how it is refilled.
/// Each successful verification consumes one, atomically in the store: of racing
/// verifications for the last use, exactly one succeeds.
///
/// ```
/// use api_tokens::{Refill, RefillInterval, UsageLimit};
///
/// let trial = UsageLimit::new(100)?; // 100 uses, then `AuthError::UsageExceeded` (429)
/// let daily = UsageLimit::new(1_000)?.refill(Refill::new(RefillInterval::Daily, 1_000)?);
/// # let _ = (trial, daily);
/// # Ok::<(), api_tokens::FieldError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageLimit {
    /// Uses left.
    pub remaining: u64,
    /// How the uses are topped up, if they are.
    pub refill: Option<Refill>,
    /// The start of the refill period last applied (UTC midnight of the day, or of the
    /// first of the month); set when the token is issued.
    #[serde(with = "time::serde::rfc3339::option")]
    pub refilled_at: Option<OffsetDateTime>,
}

impl UsageLimit {
    /// `remaining` uses (1 to [`MAX_USES`](crate::limits::MAX_USES)), never refilled.
    pub fn new(remaining: u64) -> Result<Self, FieldError> {
        if !(1..=MAX_USES).contains(&remaining) {
            return Err(FieldError::new(
                "remaining",
                format!("must be a whole number from 1 to {MAX_USES}"),
            ));
        }
        Ok(Self {
            remaining,
            refill: None,
            refilled_at: None,
        })
    }

    /// Whether every figure is within bounds (a value built by hand may not be).
    pub(crate) fn check(&self) -> Result<(), FieldError> {
        if !(1..=MAX_USES).contains(&self.remaining) {
            return Err(FieldError::new(
                "remaining",
                format!("must be a whole number from 1 to {MAX_USES}"),
            ));
        }
        if let Some(refill) = self.refill
            && !(1..=MAX_USES).contains(&refill.amount)
        {
            return Err(FieldError::new(
                "refill.amount",
                format!("must be a whole number from 1 to {MAX_USES}"),
            ));
        }
        Ok(())
    }

    /// Refilled as `refill` says.
    pub fn refill(mut self, refill: Refill) -> Self {
        self.refill = Some(refill);
        self
    }

    /// Consume one use at `now`, refilling first if a new period has begun: `true` if a use
    /// was left. For stores that keep records in memory (a SQL store does the same in one
    /// statement).
    pub fn consume(&mut self, now: OffsetDateTime) -> bool {
        if let Some(refill) = self.refill {
            let start = refill.interval.period_start(now);
            if self.refilled_at.is_none_or(|at| at < start) {
                self.remaining = refill.amount;
                self.refilled_at = Some(start);
            }
        }
        if self.remaining == 0 {
            return false;
        }
        self.remaining -= 1;
        true
    }
}

/// How a [`UsageLimit`] is topped up: set back to `amount` uses at the start of each period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refill {
    /// Each day or each month (UTC).
    pub interval: RefillInterval,
    /// The uses a token has at the start of each period.
    pub amount: u64,
}

impl Refill {
    /// Back to `amount` uses (1 to [`MAX_USES`](crate::limits::MAX_USES)) each `interval`.
    pub fn new(interval: RefillInterval, amount: u64) -> Result<Self, FieldError> {
        if !(1..=MAX_USES).contains(&amount) {
            return Err(FieldError::new(
                "refill.amount",
                format!("must be a whole number from 1 to {MAX_USES}"),
            ));
        }
        Ok(Self { interval, amount })
    }
}

/// When a [`Refill`] happens: at UTC midnight each day, or on the first of each month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RefillInterval {
    /// At 00:00 UTC each day.
    Daily,
    /// At 00:00 UTC on the first of each month.
    Monthly,
}

impl RefillInterval {
    /// The start of the period `now` falls in.
    pub fn period_start(self, now: OffsetDateTime) -> OffsetDateTime {
        let now = now.checked_to_offset(UtcOffset::UTC).unwrap_or(now);
        let day = match self {
            Self::Daily => now.date(),
            // The first of a month always exists.
            Self::Monthly => {
                Date::from_calendar_date(now.year(), now.month(), 1).unwrap_or(now.date())
            }
        };
        day.with_time(Time::MIDNIGHT).assume_utc()
    }

    /// `daily` or `monthly`, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Daily => "daily",
            Self::Monthly => "monthly",
        }
    }

    /// The interval stored as `text`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "daily" => Some(Self::Daily),
            "monthly" => Some(Self::Monthly),
            _ => None,
        }
    }
}

/// How often a token may be used: `limit` requests per `per_seconds` (GCRA: the requests
/// may come in a burst of `limit`, and one more is allowed every `per_seconds / limit`).
/// Rejections are [`AuthError::RateLimited`](crate::AuthError::RateLimited) (429 with
/// `Retry-After` and `RateLimit-*`).
///
/// ```
/// use api_tokens::RateLimit;
///
/// let limit = RateLimit::new(100, 60)?; // 100 a minute
/// assert_eq!((limit.limit(), limit.per_seconds()), (100, 60));
/// assert!(RateLimit::new(0, 60).is_err());
/// # Ok::<(), api_tokens::FieldError>(())
/// ```
///
/// A rotated token's successor counts on its predecessor's bucket
/// ([`bucket`](Self::bucket)), so that rotating never adds requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RateLimit {
    limit: NonZeroU32,
    per_seconds: NonZeroU32,
    /// The token whose count this one shares (its first predecessor); `None`: its own.
    /// Kept by a store that saves the limit through serde (issuing a token always starts
    /// its own count, whatever a deserialized limit names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bucket: Option<TokenId>,
}

impl RateLimit {
    /// `limit` (1 to [`MAX_RATE_LIMIT`](crate::limits::MAX_RATE_LIMIT)) requests per `per_seconds` (1 to
    /// [`MAX_RATE_WINDOW_SECONDS`](crate::limits::MAX_RATE_WINDOW_SECONDS)).
    pub fn new(limit: u32, per_seconds: u32) -> Result<Self, FieldError> {
        let limit = NonZeroU32::new(limit)
            .filter(|l| l.get() <= MAX_RATE_LIMIT)
            .ok_or_else(|| {
                FieldError::new(
                    "rate_limit.limit",
                    format!("must be a whole number from 1 to {MAX_RATE_LIMIT}"),
                )
            })?;
        let per_seconds = NonZeroU32::new(per_seconds)
            .filter(|s| s.get() <= MAX_RATE_WINDOW_SECONDS)
            .ok_or_else(|| {
                FieldError::new(
                    "rate_limit.per_seconds",
                    format!("must be a whole number from 1 to {MAX_RATE_WINDOW_SECONDS}"),
                )
            })?;
        Ok(Self {
            limit,
            per_seconds,
            bucket: None,
        })
    }

    /// The token whose count this limit is checked against, if not the token's own (a
    /// rotated token's successors share the first one's).
    pub fn bucket(&self) -> Option<TokenId> {
        self.bucket
    }

    /// This limit, counted on `token`'s bucket.
    pub fn shared_with(mut self, token: TokenId) -> Self {
        self.bucket = Some(token);
        self
    }

    /// Requests allowed per window.
    pub fn limit(&self) -> u32 {
        self.limit.get()
    }

    /// The window, in seconds.
    pub fn per_seconds(&self) -> u32 {
        self.per_seconds.get()
    }

    /// The window.
    pub fn window(&self) -> std::time::Duration {
        std::time::Duration::from_secs(u64::from(self.per_seconds.get()))
    }

    /// Whether this limit is no looser than `outer`: no larger a burst and no faster a
    /// steady rate (whichever buckets they count on).
    ///
    /// ```
    /// use api_tokens::RateLimit;
    ///
    /// let outer = RateLimit::new(100, 60)?;
    /// assert!(RateLimit::new(10, 60)?.within(&outer));
    /// assert!(!RateLimit::new(100, 30)?.within(&outer), "twice as fast");
    /// assert!(!RateLimit::new(200, 120)?.within(&outer), "the same rate, a larger burst");
    /// # Ok::<(), api_tokens::FieldError>(())
    /// ```
    pub fn within(&self, outer: &RateLimit) -> bool {
        let (l, w) = (u64::from(self.limit()), u64::from(self.per_seconds()));
        let (ol, ow) = (u64::from(outer.limit()), u64::from(outer.per_seconds()));
        l <= ol && l * ow <= ol * w
    }

    /// The time between two requests at the steady rate (the window over the limit).
    pub fn emission_interval(&self) -> std::time::Duration {
        self.window() / self.limit.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn uses_run_out_and_refill_at_the_period_start() {
        let mut usage = UsageLimit::new(2)
            .unwrap()
            .refill(Refill::new(RefillInterval::Daily, 3).unwrap());
        usage.refilled_at = Some(datetime!(2026-01-01 0:00 UTC));
        let noon = datetime!(2026-01-01 12:00 UTC);
        assert!(usage.consume(noon) && usage.consume(noon));
        assert!(!usage.consume(noon), "spent");
        let next_day = datetime!(2026-01-02 0:00 UTC);
        assert!(usage.consume(next_day));
        assert_eq!(usage.remaining, 2, "refilled to 3, one used");
        assert_eq!(usage.refilled_at, Some(next_day));
    }

    #[test]
    fn periods_start_at_utc_midnight() {
        let t = datetime!(2026-03-17 23:30 -2);
        assert_eq!(
            RefillInterval::Daily.period_start(t),
            datetime!(2026-03-18 0:00 UTC)
        );
        assert_eq!(
            RefillInterval::Monthly.period_start(t),
            datetime!(2026-03-01 0:00 UTC)
        );
    }
}
