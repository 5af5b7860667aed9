//! [`RateCell`]: the count of a token's rate limit, kept beside its record.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The count of a token's [rate limit](crate::RateLimit), kept by the
/// [`MemoryStore`](crate::MemoryStore) in the token's own table entry, so that
/// `MemoryRateLimiter` (feature `rate-limit`) counts on a cache line the verification
/// has just read rather than in a table of its own. The store lends it with the record
/// ([`TokenStore::read_counted_now`](crate::TokenStore::read_counted_now)) and the limiter
/// counts on it ([`RateLimiter::check_cell`](crate::RateLimiter::check_cell)); other stores
/// lend none and other limiters count by [`RateKey`](crate::RateKey).
///
/// It is opaque: it holds the limit's theoretical arrival time (GCRA), in nanoseconds since
/// the Unix epoch on the limiter's clock, which only the crate reads and writes. When the
/// store replaces a record (records are copy-on-write), it freezes the old version's cell
/// just before its compare-and-swap and gives the new version the count, so that a check
/// racing the replacement is never lost: a check that finds its cell frozen reads the record
/// again ([`CellMoved`]), and a replacement that finds the cell frozen by another waits for
/// that one's version.
///
/// ```
/// # #[cfg(feature = "rate-limit")] {
/// use api_tokens::{ApiTokens, MemoryRateLimiter, MemoryStore, NewToken, RateLimit, TokenStore};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let tokens = ApiTokens::builder(MemoryStore::new(), "dz")
///     .rate_limiter(MemoryRateLimiter::new())
///     .build()?;
/// let limited = tokens
///     .issue(NewToken::new("u1", "bot").rate_limit(RateLimit::new(5, 60).expect("5 a minute")))
///     .await?;
/// let plain = tokens.issue(NewToken::new("u1", "ci")).await?;
/// let has_cell = |id| tokens.store().read_counted_now(id, |_, cell| cell.is_some());
/// assert_eq!(has_cell(&limited.record.id).unwrap()?, true);
/// assert_eq!(has_cell(&plain.record.id).unwrap()?, false, "no limit, no count");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// # }
/// ```
pub struct RateCell(AtomicU64);

/// A count taken from a frozen [`RateCell`], for the record that replaces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MovedCount(u64);

impl MovedCount {
    /// No count: for a record whose rate limit changed (a new limit starts afresh, as a
    /// limiter counting by key does).
    pub(crate) const FRESH: Self = Self(0);
}

/// A [`RateCell`] was frozen by the store replacing its record: read the record again and
/// check on the new version's cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the rate count moved to a new version of the record; read it again")]
pub struct CellMoved;

/// The value of a frozen cell: no theoretical arrival time reaches it (year 2554).
const FROZEN: u64 = u64::MAX;

impl RateCell {
    /// A new token's cell: nothing counted yet.
    pub(crate) fn new() -> Self {
        Self(AtomicU64::new(0))
    }

    /// Freeze this cell (its record is being replaced) and take its count; `None` if another
    /// replacement froze it first (wait for that one to publish its version, then replace
    /// that). Checks on a frozen cell count nothing.
    pub(crate) fn freeze(&self) -> Option<MovedCount> {
        match self.0.swap(FROZEN, Ordering::AcqRel) {
            FROZEN => None,
            count => Some(MovedCount(count)),
        }
    }

    /// A new version's cell, holding the count `moved` from the old version's.
    pub(crate) fn with(moved: MovedCount) -> Self {
        Self(AtomicU64::new(moved.0))
    }

    /// A cell that is frozen until [`thaw`](Self::thaw)ed: for a record inserted before the
    /// count it inherits is known (a rotated token's successor).
    pub(crate) fn frozen() -> Self {
        Self(AtomicU64::new(FROZEN))
    }

    /// Give a frozen cell the count `moved` and let checks count on it again.
    pub(crate) fn thaw(&self, moved: MovedCount) {
        self.0.store(moved.0, Ordering::Release);
    }

    /// Whether a replacement froze it.
    #[cfg(test)]
    pub(crate) fn is_frozen(&self) -> bool {
        self.0.load(Ordering::Acquire) == FROZEN
    }

    /// Replace the count by what `decide` makes of it (0 before the first check), in a
    /// compare-and-swap loop; `decide` answers the new count and what to return, or `Err`
    /// to leave the count as it is. Never counts on a frozen cell.
    #[cfg(any(test, feature = "rate-limit"))]
    pub(crate) fn update<T, E>(
        &self,
        mut decide: impl FnMut(u64) -> Result<(u64, T), E>,
    ) -> Result<Result<T, E>, CellMoved> {
        let mut current = self.0.load(Ordering::Acquire);
        loop {
            if current == FROZEN {
                return Err(CellMoved);
            }
            let (next, answer) = match decide(current) {
                Ok(decided) => decided,
                Err(e) => return Ok(Err(e)),
            };
            match self.0.compare_exchange_weak(
                current,
                next.min(FROZEN - 1),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(Ok(answer)),
                Err(now) => current = now,
            }
        }
    }
}

impl fmt::Debug for RateCell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.load(Ordering::Relaxed) {
            FROZEN => f.write_str("RateCell(frozen)"),
            0 => f.write_str("RateCell(unused)"),
            tat => write!(f, "RateCell(tat: {tat} ns)"),
        }
    }
}

/// Waiting for a replacement to publish its version: a few spins (it is a
/// compare-and-swap away), then yielding the thread, then short sleeps (in case the writer
/// was descheduled, or is finishing a resize of the table).
#[derive(Default)]
pub(crate) struct Backoff(u32);

/// After this many waits (about a fifth of a second), a check stops waiting and fails
/// closed ([`Backoff::exhausted`]).
const PATIENCE: u32 = 64 + 256 + 2_000;

impl Backoff {
    pub(crate) fn wait(&mut self) {
        self.0 = self.0.saturating_add(1);
        if self.0 <= 64 {
            std::hint::spin_loop();
        } else if self.0 <= 64 + 256 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(Duration::from_micros(100));
        }
    }

    /// Whether a check has waited long enough: a cell frozen for this long is not being
    /// moved by a replacement that will finish.
    pub(crate) fn exhausted(&self) -> bool {
        self.0 >= PATIENCE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frozen_cell_counts_nothing_and_moves_once() {
        let cell = RateCell::new();
        assert_eq!(cell.update(|c| Ok::<_, ()>((c + 5, c))), Ok(Ok(0)));
        let moved = cell.freeze().unwrap();
        assert_eq!(moved, MovedCount(5));
        assert_eq!(cell.update(|c| Ok::<_, ()>((c + 5, c))), Err(CellMoved));
        // A second freeze gets nothing: the count went with the first.
        assert_eq!(cell.freeze(), None);
        let next = RateCell::with(moved);
        assert_eq!(next.update(|c| Ok::<_, ()>((c + 1, c))), Ok(Ok(5)));
    }

    #[test]
    fn a_refusal_leaves_the_count() {
        let cell = RateCell::with(MovedCount(7));
        assert_eq!(cell.update(|_| Err::<(u64, ()), _>("no")), Ok(Err("no")));
        assert_eq!(cell.freeze(), Some(MovedCount(7)));
    }

    #[test]
    fn waiting_gives_up_after_a_fifth_of_a_second() {
        let (mut backoff, started) = (Backoff::default(), std::time::Instant::now());
        while !backoff.exhausted() {
            backoff.wait();
        }
        assert!(started.elapsed() >= Duration::from_millis(150));
    }

    #[test]
    fn a_thawed_cell_counts_from_what_it_was_given() {
        let cell = RateCell::frozen();
        assert!(cell.is_frozen());
        assert_eq!(cell.update(|c| Ok::<_, ()>((c, ()))), Err(CellMoved));
        cell.thaw(MovedCount(9));
        assert_eq!(cell.update(|c| Ok::<_, ()>((c + 1, c))), Ok(Ok(9)));
        assert_eq!(format!("{cell:?}"), "RateCell(tat: 10 ns)");
    }
}
