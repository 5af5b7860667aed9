//! [`RateCell`]: the count of a token's rate limit, kept beside its record.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// The count of a token's [rate limit](crate::RateLimit), kept by a store beside the
/// token's record, so that an in-process limiter counts on a cache line the verification
/// has just read rather than in a table of its own. [`MemoryStore`](crate::MemoryStore)
/// keeps one with each record and lends it from
/// [`TokenStore::read_counted_now`](crate::TokenStore::read_counted_now);
/// [`MemoryRateLimiter`](crate::MemoryRateLimiter) counts on it
/// ([`RateLimiter::check_cell`](crate::RateLimiter::check_cell)). Other stores and
/// limiters count by [`RateKey`](crate::RateKey), as before.
///
/// It holds one number: the limit's theoretical arrival time (GCRA), in nanoseconds since
/// the Unix epoch on the limiter's clock, or 0 before the first check. A store that
/// replaces a record [`freeze`](Self::freeze)s the old version's cell and gives the new
/// version a cell [`with`](Self::with) the count it took, so that a check racing the
/// replacement is never lost: a check that finds its cell frozen reads the record again
/// ([`CellMoved`]), and a replacement that finds the cell frozen by another waits for that
/// one to be published.
///
/// ```
/// use api_tokens::RateCell;
///
/// let old = RateCell::default();
/// // A store replacing a record: freeze the old version's count, then hand it over.
/// let count = old.freeze().expect("not frozen by another replacement");
/// let new = RateCell::with(count);
/// assert!(old.is_frozen() && !new.is_frozen());
/// assert_eq!(old.freeze(), None);
/// ```
#[derive(Default)]
pub struct RateCell(AtomicU64);

/// A count taken from a frozen [`RateCell`], to be handed to the record that replaces it
/// ([`RateCell::with`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MovedCount(u64);

impl MovedCount {
    /// No count: for a record whose rate limit changed (a new limit starts afresh, as a
    /// limiter counting by key does).
    pub const FRESH: Self = Self(0);
}

/// A [`RateCell`] was frozen by a store replacing its record: read the record again and
/// check on the new version's cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the rate count moved to a new version of the record; read it again")]
pub struct CellMoved;

/// The value of a frozen cell: no theoretical arrival time reaches it (year 2554).
const FROZEN: u64 = u64::MAX;

impl RateCell {
    /// Freeze this cell (its record is being replaced) and take its count; `None` if another
    /// replacement froze it first (wait for that one to publish its version, then replace
    /// that). Checks on a frozen cell count nothing.
    pub fn freeze(&self) -> Option<MovedCount> {
        match self.0.swap(FROZEN, Ordering::AcqRel) {
            FROZEN => None,
            count => Some(MovedCount(count)),
        }
    }

    /// A new version's cell, holding the count `moved` from the old version's.
    pub fn with(moved: MovedCount) -> Self {
        Self(AtomicU64::new(moved.0))
    }

    /// A cell that is frozen until [`thaw`](Self::thaw)ed: for a record inserted before the
    /// count it inherits is known (a rotated token's successor).
    pub fn frozen() -> Self {
        Self(AtomicU64::new(FROZEN))
    }

    /// Give a frozen cell the count `moved` and let checks count on it again.
    pub fn thaw(&self, moved: MovedCount) {
        self.0.store(moved.0, Ordering::Release);
    }

    /// Whether a replacement froze it.
    pub fn is_frozen(&self) -> bool {
        self.0.load(Ordering::Acquire) == FROZEN
    }

    /// Replace the count by what `decide` makes of it (0 before the first check), in a
    /// compare-and-swap loop; `decide` answers the new count and what to return, or `Err`
    /// to leave the count as it is. Never counts on a frozen cell.
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

/// Waiting for a replacement to publish: a few spins (it is a compare-and-swap away), then
/// yielding the thread (in case it was descheduled in between).
#[derive(Default)]
pub(crate) struct Backoff(u32);

impl Backoff {
    pub(crate) fn wait(&mut self) {
        self.0 = self.0.saturating_add(1);
        if self.0 <= 64 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frozen_cell_counts_nothing_and_moves_once() {
        let cell = RateCell::default();
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
    fn a_thawed_cell_counts_from_what_it_was_given() {
        let cell = RateCell::frozen();
        assert!(cell.is_frozen());
        assert_eq!(cell.update(|c| Ok::<_, ()>((c, ()))), Err(CellMoved));
        cell.thaw(MovedCount(9));
        assert_eq!(cell.update(|c| Ok::<_, ()>((c + 1, c))), Ok(Ok(9)));
        assert_eq!(format!("{cell:?}"), "RateCell(tat: 10 ns)");
    }
}
