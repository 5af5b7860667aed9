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

    /// The current time in nanoseconds since the Unix epoch: what verification compares
    /// against, on every request. It must agree with [`now`](Self::now); the default
    /// derives it from `now`, and [`SystemClock`] reads it without building a date.
    fn now_unix_nanos(&self) -> i128 {
        self.now().unix_timestamp_nanos()
    }

    /// A cheaper reading of the time, in nanoseconds since the Unix epoch, that may lag
    /// behind [`now_unix_nanos`](Self::now_unix_nanos) by a little (a few milliseconds) but
    /// is **never ahead** of it. Verification reads it on every request and reads
    /// `now_unix_nanos` only when a decision is close: a token that expires within
    /// [`PRECISE_CLOCK_WITHIN`](crate::limits::PRECISE_CLOCK_WITHIN) (one second) of this
    /// reading is checked against the precise time, so expiry stays exact as long as the lag
    /// is under a second.
    ///
    /// The default is `now_unix_nanos`. [`SystemClock`] reads the kernel's coarse clock on
    /// Linux (`CLOCK_REALTIME_COARSE`, the time at the last timer tick).
    fn recent_unix_nanos(&self) -> i128 {
        self.now_unix_nanos()
    }
}

/// The operating system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    fn now_unix_nanos(&self) -> i128 {
        // A clock set before 1970 reads as a negative offset, as `now` would.
        match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            Ok(since) => since.as_nanos() as i128,
            Err(before) => -(before.duration().as_nanos() as i128),
        }
    }

    #[cfg(target_os = "linux")]
    fn recent_unix_nanos(&self) -> i128 {
        // The same timeline as `now_unix_nanos`, as of the last tick: never ahead of it.
        let t = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse);
        i128::from(t.tv_sec) * 1_000_000_000 + i128::from(t.tv_nsec)
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

/// Nanoseconds on a clock for leases: it never jumps with the wall clock and, unlike a
/// plain monotonic clock, it keeps counting while the system is suspended (on Linux,
/// `CLOCK_BOOTTIME`), so a lease granted before a suspend or a paused VM has run out when
/// the process resumes. Never for timestamps.
#[cfg_attr(not(feature = "cache"), allow(dead_code))]
pub(crate) fn lease_clock_nanos() -> u64 {
    #[cfg(target_os = "linux")]
    {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
        (t.tv_sec as u64)
            .saturating_mul(1_000_000_000)
            .saturating_add(t.tv_nsec as u64)
    }
    #[cfg(not(target_os = "linux"))]
    {
        static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        let start = *START.get_or_init(std::time::Instant::now);
        // Offset by one so that 0 never means "now".
        u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX - 1) + 1
    }
}

/// Truncate to whole microseconds in UTC: the precision every store keeps, so a record reads
/// back exactly as it was written.
///
/// An instant that cannot be written in UTC (beyond year 9999 there) is kept in its own
/// offset: every input of the crate refuses such instants first ([`in_utc`]), so this never
/// panics on what a caller passed.
pub(crate) fn to_stored_precision(t: OffsetDateTime) -> OffsetDateTime {
    let t = t.checked_to_offset(time::UtcOffset::UTC).unwrap_or(t);
    // `nanosecond / 1000 * 1000` is always a valid nanosecond value.
    t.replace_nanosecond(t.nanosecond() / 1_000 * 1_000)
        .unwrap_or(t)
}

/// `t` in UTC, if it can be written there (years −9999 to 9999).
pub(crate) fn in_utc(t: OffsetDateTime) -> Option<OffsetDateTime> {
    t.checked_to_offset(time::UtcOffset::UTC)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_clocks_nanoseconds_agree_with_its_time() {
        let before = SystemClock.now().unix_timestamp_nanos();
        let nanos = SystemClock.now_unix_nanos();
        let after = SystemClock.now().unix_timestamp_nanos();
        assert!(
            before <= nanos && nanos <= after,
            "{before} {nanos} {after}"
        );
    }

    #[test]
    fn the_recent_system_time_is_never_ahead_and_lags_by_less_than_the_precise_margin() {
        let mut least_lag = i128::MAX;
        for _ in 0..10_000 {
            let recent = SystemClock.recent_unix_nanos();
            let now = SystemClock.now_unix_nanos();
            assert!(recent <= now, "recent {recent} is ahead of now {now}");
            least_lag = least_lag.min(now - recent);
        }
        // A thread preempted between the two reads sees a longer lag; the least is a tick.
        assert!(least_lag < 100_000_000, "lag {least_lag}");
    }

    #[test]
    fn a_manual_clocks_nanoseconds_are_its_time() {
        let clock = ManualClock::new(time::macros::datetime!(2026-01-01 0:00:00.000_000_123 +2));
        assert_eq!(clock.now_unix_nanos(), clock.now().unix_timestamp_nanos());
        clock.advance(Duration::nanoseconds(-7));
        assert_eq!(clock.now_unix_nanos(), clock.now().unix_timestamp_nanos());
        assert_eq!(clock.recent_unix_nanos(), clock.now_unix_nanos());
    }
}
