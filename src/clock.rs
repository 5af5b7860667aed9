//! Where the current time comes from, so expiry, grace periods and last use are tested
//! without sleeping.

use std::sync::Arc;
use std::sync::Mutex;

use time::{Duration, OffsetDateTime};

/// A source of the current time (UTC).
///
/// [`SystemClock`] is the default; [`ManualClock`] is for tests.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> OffsetDateTime;
}

/// The operating system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that moves only when told to; clones share the same time.
///
/// ```
/// use api_tokens::{Clock, ManualClock};
/// use time::{Duration, macros::datetime};
///
/// let clock = ManualClock::new(datetime!(2026-01-01 0:00 UTC));
/// clock.advance(Duration::days(365));
/// assert_eq!(clock.now(), datetime!(2027-01-01 0:00 UTC));
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<OffsetDateTime>>);

impl ManualClock {
    /// A clock stopped at `at`.
    pub fn new(at: OffsetDateTime) -> Self {
        Self(Arc::new(Mutex::new(at)))
    }

    /// Move the clock by `by` (which may be negative).
    ///
    /// # Panics
    ///
    /// If the result is outside the years ±9999 that `OffsetDateTime` represents.
    pub fn advance(&self, by: Duration) {
        let mut now = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *now += by;
    }

    /// Set the clock to `at`.
    pub fn set(&self, at: OffsetDateTime) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = at;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Truncate to whole microseconds in UTC: the precision every store keeps, so a record reads
/// back exactly as it was written.
pub(crate) fn to_stored_precision(t: OffsetDateTime) -> OffsetDateTime {
    let t = t.to_offset(time::UtcOffset::UTC);
    // `nanosecond / 1000 * 1000` is always a valid nanosecond value.
    t.replace_nanosecond(t.nanosecond() / 1_000 * 1_000)
        .unwrap_or(t)
}

/// Shows a timestamp as RFC 3339 (`2026-01-01T00:00:00Z`), for messages.
pub(crate) struct Rfc3339(pub(crate) OffsetDateTime);

impl std::fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self
            .0
            .format(&time::format_description::well_known::Rfc3339)
        {
            Ok(s) => f.write_str(&s),
            Err(_) => write!(f, "{}", self.0),
        }
    }
}
