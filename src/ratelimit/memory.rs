//! [`MemoryRateLimiter`]: rate limits counted in this process, on `governor` (GCRA).

use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use governor::clock::Clock as GovernorClock;
use governor::middleware::StateInformationMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter as Gcra};
use papaya::{Compute, Operation};

use super::{RateDecision, RateFuture, RateKey, RateLimitError, RateLimiter};
use crate::clock::{Clock, SystemClock};
use crate::record::{CellMoved, RateCell, RateLimit};
use crate::token::{IdHasher, TokenId};

/// Rate limits counted in this process: a GCRA cell per token (and per owner) on
/// [`governor`], in a lock-free table, decided without waiting. For one instance; use
/// `RedisRateLimiter` (feature `redis`) to share the counts between instances.
///
/// Over a [`MemoryStore`](crate::MemoryStore) a token's count is not kept here but in the
/// token's own table entry ([`RateCell`], through [`check_cell`](RateLimiter::check_cell)):
/// verification finds it on a cache line it has just read, and the count lives and dies
/// with the record. Services sharing one `MemoryStore` therefore share its tokens' counts,
/// whichever limiter each has, and [`len`](Self::len) counts only what is kept here: owner
/// limits, and the tokens of other stores.
///
/// Keys not seen for longer than their window (when their count is full again) are swept
/// once the table has doubled since the last sweep, so memory follows the tokens in use.
///
/// ```
/// use api_tokens::{ApiTokens, AuthError, MemoryRateLimiter, MemoryStore, NewToken, RateLimit};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let tokens = ApiTokens::builder(MemoryStore::new(), "dz")
///     .rate_limiter(MemoryRateLimiter::new())
///     .build()?;
/// let issued = tokens
///     .issue(NewToken::new("u1", "bot").rate_limit(RateLimit::new(2, 60).expect("2 a minute")))
///     .await?;
/// let t = issued.plaintext.expose_secret();
/// tokens.verify(t).await?;
/// tokens.verify(t).await?;
/// assert!(matches!(tokens.verify(t).await, Err(AuthError::RateLimited { .. })));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub struct MemoryRateLimiter {
    cells: papaya::HashMap<Key, Cell, BuildHasherDefault<IdHasher>>,
    clock: ClockOf,
    sweep_at: AtomicUsize,
}

impl std::fmt::Debug for MemoryRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryRateLimiter")
            .field("keys", &self.cells.len())
            .finish_non_exhaustive()
    }
}

/// What a cell counts for: the owned form of a [`RateKey`] (an owner's prefix and name
/// behind one pointer, so that a key stays 24 bytes). It hashes and compares as the
/// `RateKey` it stands for, so that a check looks its cell up by the key it was given
/// (`Equivalent`), allocating nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Key {
    Token(TokenId),
    Owner(Box<(Box<str>, Box<str>)>),
}

impl Key {
    fn of(key: &RateKey<'_>) -> Self {
        match *key {
            RateKey::Token(id) => Self::Token(id),
            RateKey::Owner { prefix, owner } => {
                Self::Owner(Box::new((prefix.into(), owner.into())))
            }
        }
    }

    fn as_rate_key(&self) -> RateKey<'_> {
        match self {
            Self::Token(id) => RateKey::Token(*id),
            Self::Owner(named) => RateKey::Owner {
                prefix: &named.0,
                owner: &named.1,
            },
        }
    }
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_rate_key().hash(state);
    }
}

impl papaya::Equivalent<Key> for RateKey<'_> {
    fn equivalent(&self, key: &Key) -> bool {
        *self == key.as_rate_key()
    }
}

/// One key's GCRA cell, for the rate it was made for.
struct Cell {
    /// The limit and its window in seconds (not which bucket: the key says that).
    rate: (u32, u32),
    gcra: Gcra<NotKeyed, InMemoryState, ClockOf, StateInformationMiddleware>,
    /// When it was last checked, on the limiter's clock (nanoseconds).
    seen: AtomicU64,
}

/// The crate's clock as governor's: the cheap reading, which is never ahead of the time.
#[derive(Clone)]
struct ClockOf(Arc<dyn Clock>);

impl GovernorClock for ClockOf {
    type Instant = Duration;

    fn now(&self) -> Duration {
        Duration::from_nanos(self.0.recent_unix_nanos().max(0) as u64)
    }
}

/// Sweep once the table holds this many keys (then twice as many as after the sweep).
const FIRST_SWEEP: usize = 4_096;

impl Default for MemoryRateLimiter {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryRateLimiter {
    /// A limiter on the system clock.
    pub fn new() -> Self {
        Self::with_clock(SystemClock)
    }

    /// A limiter on `clock` (give it the service's [`ManualClock`](crate::ManualClock) in
    /// tests, so windows pass without sleeping).
    pub fn with_clock(clock: impl Clock) -> Self {
        Self {
            // As in the memory store: a resize is finished by the insert that starts it, so
            // that checks (which mostly find their cell and insert nothing) never search two
            // tables while an incremental resize waits for more inserts to finish it.
            cells: papaya::HashMap::builder()
                .hasher(BuildHasherDefault::default())
                .resize_mode(papaya::ResizeMode::Blocking)
                .build(),
            clock: ClockOf(Arc::new(clock)),
            sweep_at: AtomicUsize::new(FIRST_SWEEP),
        }
    }

    /// How many keys it holds counts for.
    pub fn len(&self) -> usize {
        self.cells.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn cell_for(&self, limit: RateLimit) -> Cell {
        // The window over the limit: at least 1 µs (the limit is at most a million a
        // second), so the quota always exists.
        let quota = Quota::with_period(limit.emission_interval())
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::new(limit.limit()).unwrap_or(NonZeroU32::MIN));
        Cell {
            rate: (limit.limit(), limit.per_seconds()),
            gcra: Gcra::direct_with_clock(quota, self.clock.clone())
                .with_middleware::<StateInformationMiddleware>(),
            seen: AtomicU64::new(self.clock.now().as_nanos() as u64),
        }
    }

    fn decide(&self, key: &RateKey<'_>, limit: RateLimit) -> RateDecision {
        let cells = self.cells.pin();
        let now = self.clock.now();
        // Looked up by the borrowed key: an owner's name is copied only for a new cell.
        let rate = (limit.limit(), limit.per_seconds());
        let cell = match cells.get(key) {
            // The same rate (whichever token's bucket it counts on: a rotated token's
            // successor shares its predecessor's cell).
            Some(cell) if cell.rate == rate => cell,
            // The token's limit changed: a fresh count, in one compare-and-swap, so that
            // racing checks share the one fresh cell rather than each replacing the other's.
            Some(_) => match cells.compute(Key::of(key), |current| match current {
                Some((_, cell)) if cell.rate == rate => Operation::Abort(cell),
                _ => Operation::Insert(self.cell_for(limit)),
            }) {
                Compute::Inserted(_, cell) | Compute::Updated { new: (_, cell), .. } => cell,
                Compute::Aborted(cell) | Compute::Removed(_, cell) => cell,
            },
            // New: racing first checks share the one cell that wins.
            None => {
                self.sweep_if_due(&cells, now);
                cells.get_or_insert_with(Key::of(key), || self.cell_for(limit))
            }
        };
        // Written only when it moved on by a second: a check then dirties no more cache
        // lines than governor's own state.
        let now_nanos = now.as_nanos() as u64;
        if now_nanos.saturating_sub(cell.seen.load(Ordering::Relaxed)) > 1_000_000_000 {
            cell.seen.store(now_nanos, Ordering::Relaxed);
        }
        match cell.gcra.check() {
            Ok(state) => allowed(limit, state.remaining_burst_capacity()),
            Err(not_until) => refused(limit, not_until.wait_time_from(now)),
        }
    }

    /// GCRA on a count kept with the token's record, as governor counts in its own cell
    /// (the same arithmetic, so both answer alike): the cell holds the theoretical arrival
    /// time, in nanoseconds on this limiter's clock.
    fn decide_on(&self, cell: &RateCell, limit: RateLimit) -> Result<RateDecision, CellMoved> {
        // Saturating throughout, so that no clock (a manual one past the year 2554) makes it
        // panic or wrap a count back into the past.
        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let now = nanos(self.clock.now());
        let t = nanos(limit.emission_interval()).max(1);
        let tau = t.saturating_mul(u64::from(limit.limit() - 1));
        let decided = cell.update(|tat| {
            let tat = if tat == 0 { now } else { tat };
            let earliest = tat.saturating_sub(tau);
            if now < earliest {
                Err(earliest - now)
            } else {
                let next = tat.max(now).saturating_add(t);
                Ok((next, next))
            }
        })?;
        Ok(match decided {
            Ok(next) => {
                let left = now
                    .saturating_add(tau)
                    .saturating_add(t)
                    .saturating_sub(next)
                    .min(tau + t)
                    / t;
                allowed(limit, left as u32)
            }
            Err(wait) => refused(limit, Duration::from_nanos(wait)),
        })
    }

    /// Drop the keys not seen for longer than their window, once the table has grown to
    /// `sweep_at`.
    fn sweep_if_due(
        &self,
        cells: &papaya::HashMapRef<'_, Key, Cell, BuildHasherDefault<IdHasher>, impl papaya::Guard>,
        now: Duration,
    ) {
        let due = self.sweep_at.load(Ordering::Relaxed);
        if cells.len() < due
            || self
                .sweep_at
                .compare_exchange(due, usize::MAX, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let now = now.as_nanos() as u64;
        cells.retain(|_, cell| {
            let idle = now.saturating_sub(cell.seen.load(Ordering::Relaxed));
            // Kept a second past its window: `seen` is written at most once a second.
            idle <= u64::from(cell.rate.1) * 1_000_000_000 + 1_000_000_000
        });
        self.sweep_at
            .store((cells.len() * 2).max(FIRST_SWEEP), Ordering::Release);
    }
}

/// An allowed request, with `remaining` left in the burst.
fn allowed(limit: RateLimit, remaining: u32) -> RateDecision {
    RateDecision {
        allowed: true,
        limit: limit.limit(),
        remaining,
        window_seconds: limit.per_seconds(),
        reset_after: limit.emission_interval() * (limit.limit() - remaining),
        retry_after: None,
    }
}

/// A refused request, allowed again after `wait`.
fn refused(limit: RateLimit, wait: Duration) -> RateDecision {
    RateDecision {
        allowed: false,
        limit: limit.limit(),
        remaining: 0,
        window_seconds: limit.per_seconds(),
        reset_after: wait + limit.emission_interval() * (limit.limit() - 1),
        retry_after: Some(wait),
    }
}

impl RateLimiter for MemoryRateLimiter {
    fn check_cell(
        &self,
        cell: &RateCell,
        limit: RateLimit,
    ) -> Option<Result<RateDecision, CellMoved>> {
        Some(self.decide_on(cell, limit))
    }

    fn check_now(
        &self,
        key: &RateKey<'_>,
        limit: RateLimit,
    ) -> Option<Result<RateDecision, RateLimitError>> {
        Some(Ok(self.decide(key, limit)))
    }

    fn check<'a>(&'a self, key: &'a RateKey<'a>, limit: RateLimit) -> RateFuture<'a> {
        let decided = self.check_now(key, limit).expect("decides at once");
        Box::pin(std::future::ready(decided))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ManualClock;
    use time::OffsetDateTime;

    fn limiter() -> (MemoryRateLimiter, ManualClock) {
        let clock = ManualClock::new(OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000));
        (MemoryRateLimiter::with_clock(clock.clone()), clock)
    }

    fn id(n: u32) -> TokenId {
        let mut bytes = [0u8; 16];
        bytes[..4].copy_from_slice(&n.to_le_bytes());
        bytes[15] = 1;
        TokenId::from_bytes(bytes)
    }

    fn allowed(l: &MemoryRateLimiter, key: &RateKey<'_>, limit: RateLimit) -> bool {
        l.check_now(key, limit)
            .expect("decides at once")
            .expect("no error")
            .allowed
    }

    /// One check of each token `ns` at `limit`, each allowed.
    fn check_each(l: &MemoryRateLimiter, ns: std::ops::Range<u32>, limit: RateLimit) {
        for n in ns {
            assert!(allowed(l, &RateKey::Token(id(n)), limit), "token {n}");
        }
    }

    #[test]
    fn keys_unseen_for_longer_than_their_window_are_swept_and_the_others_kept() {
        let (l, clock) = limiter();
        let limit = RateLimit::new(2, 60).unwrap();
        check_each(&l, 0..4_000, limit);
        assert_eq!(l.len(), 4_000);
        // Unseen for longer than their window (and the second `seen` may lag).
        clock.advance(time::Duration::seconds(125));
        // Busy: both places spent.
        let busy = RateKey::Token(id(1_000_000));
        assert!(allowed(&l, &busy, limit));
        assert!(allowed(&l, &busy, limit));
        // New keys until the sweep is due (4 096 keys).
        check_each(&l, 5_000..5_100, limit);
        assert_eq!(
            l.len(),
            101,
            "the 4 000 idle keys are swept, the 101 recent (the busy one and 100 new) kept"
        );
        assert!(!allowed(&l, &busy, limit), "a kept key keeps its count");
        // The next sweep waits until there are twice as many keys as were kept (or 4 096).
        assert_eq!(l.sweep_at.load(Ordering::Relaxed), FIRST_SWEEP);
    }

    #[test]
    fn keys_seen_within_their_window_are_kept() {
        let (l, clock) = limiter();
        let limit = RateLimit::new(2, 60).unwrap();
        check_each(&l, 0..4_000, limit);
        clock.advance(time::Duration::seconds(60));
        check_each(&l, 5_000..5_100, limit);
        assert_eq!(l.len(), 4_100, "swept, and nothing dropped");
        assert_eq!(l.sweep_at.load(Ordering::Relaxed), 2 * 4_096);
    }

    #[test]
    fn a_changed_limit_counts_afresh_and_owners_count_apart_from_tokens() {
        let (l, _clock) = limiter();
        let one = RateLimit::new(1, 60).unwrap();
        let key = RateKey::Token(id(1));
        assert!(allowed(&l, &key, one));
        assert!(!allowed(&l, &key, one));
        assert!(allowed(&l, &key, RateLimit::new(2, 60).unwrap()));
        let owner = RateKey::Owner {
            prefix: "dz",
            owner: "u1",
        };
        assert!(allowed(&l, &owner, one));
        assert!(!allowed(&l, &owner, one));
        let other = RateKey::Owner {
            prefix: "dz",
            owner: "u2",
        };
        assert!(allowed(&l, &other, one));
        assert_eq!(l.len(), 3, "the token's new count replaced its old one");
    }

    #[test]
    fn a_key_is_small_and_hashes_as_the_rate_key_it_was_made_of() {
        #[cfg(target_pointer_width = "64")]
        assert_eq!(std::mem::size_of::<Key>(), 24);
        use std::hash::BuildHasher;
        let hasher = BuildHasherDefault::<IdHasher>::default();
        for key in [
            RateKey::Token(id(3)),
            RateKey::Owner {
                prefix: "dz",
                owner: "user_1",
            },
            RateKey::Owner {
                prefix: "dzu",
                owner: "ser_1",
            },
        ] {
            assert_eq!(hasher.hash_one(key), hasher.hash_one(Key::of(&key)));
            assert!(papaya::Equivalent::equivalent(&key, &Key::of(&key)));
        }
        let a = RateKey::Owner {
            prefix: "dz",
            owner: "user_1",
        };
        let b = RateKey::Owner {
            prefix: "dzu",
            owner: "ser_1",
        };
        assert!(!papaya::Equivalent::equivalent(&a, &Key::of(&b)));
        assert_ne!(hasher.hash_one(a), hasher.hash_one(b));
    }

    #[test]
    fn racing_checks_after_a_limit_change_share_one_fresh_count() {
        let (l, _clock) = limiter();
        let l = Arc::new(l);
        for trial in 0..50 {
            let key = RateKey::Token(id(trial));
            assert!(allowed(&l, &key, RateLimit::new(1, 3600).unwrap()));
            let changed = RateLimit::new(1, 3599).unwrap();
            let start = Arc::new(std::sync::Barrier::new(4));
            let threads: Vec<_> = (0..4)
                .map(|_| {
                    let (l, start) = (Arc::clone(&l), Arc::clone(&start));
                    std::thread::spawn(move || {
                        start.wait();
                        allowed(&l, &RateKey::Token(id(trial)), changed)
                    })
                })
                .collect();
            let passed = threads
                .into_iter()
                .map(|t| t.join().unwrap())
                .filter(|&ok| ok)
                .count();
            assert_eq!(passed, 1, "trial {trial}: one place at the new rate");
        }
    }

    #[test]
    fn a_refusal_says_when_to_retry_and_when_the_count_is_full() {
        let (l, _clock) = limiter();
        let limit = RateLimit::new(3, 60).unwrap();
        let key = RateKey::Token(id(7));
        let first = l.check_now(&key, limit).unwrap().unwrap();
        assert_eq!(
            (first.remaining, first.reset_after),
            (2, Duration::from_secs(20))
        );
        for _ in 0..2 {
            assert!(allowed(&l, &key, limit));
        }
        let refused = l.check_now(&key, limit).unwrap().unwrap();
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after, Some(Duration::from_secs(20)));
        assert_eq!(refused.reset_after, Duration::from_secs(60));
    }

    /// Counting on a record's cell answers exactly as governor counting by key: the same
    /// decisions, remaining counts, resets and waits, over bursts, refusals and pauses.
    #[test]
    fn a_cell_counts_as_governor_does() {
        for (n, per) in [(1, 1), (3, 60), (5, 7), (100, 3600), (1_000_000, 1)] {
            let (l, clock) = limiter();
            let limit = RateLimit::new(n, per).unwrap();
            let cell = RateCell::new();
            let key = RateKey::Token(id(n));
            let (mut step, mut refused) = (0u64, 0);
            for round in 0..200u64 {
                let by_key = l.decide(&key, limit);
                let on_cell = l.decide_on(&cell, limit).unwrap();
                assert_eq!(on_cell, by_key, "limit {n}/{per}s, round {round}");
                refused += usize::from(!on_cell.allowed);
                // Pauses of 0 to a whole window, in nanoseconds, from a fixed sequence.
                step = step
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let pause = (step >> 33) % (u64::from(per) * 1_000_000_000 / 4 + 1);
                if round % 3 == 0 {
                    clock.advance(time::Duration::nanoseconds(pause as i64));
                }
            }
            assert_eq!(refused > 0, n <= 100, "limit {n}/{per}s refused {refused}");
        }
    }
}
