//! [`CachedStore`]: verification at memory speed over any store, with invalidations that
//! reach every instance (feature `cache`).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use super::token_store::TokenStore;
use super::{
    Change, ChildInsert, ChildRules, Descendants, ExpiringFilter, ListFilter, ListPage, RevokeAll,
    UseOutcome,
};
use crate::clock::{Clock, SystemClock};
use crate::error::{ConfigError, StoreError};
use crate::record::TokenRecord;
use crate::token::TokenId;

mod bus;
mod last_use;
#[cfg(feature = "postgres")]
mod postgres;
mod state;
mod stats;

pub use bus::InvalidationBus;
#[cfg(feature = "postgres")]
pub use postgres::PgInvalidations;
pub use stats::CacheStats;

use bus::Invalidation;
use state::{ALWAYS, Settings, State};

/// A cache of token records over any [`TokenStore`]: verifications of cached tokens cost
/// about what the memory store costs, and every change that can stop a token verifying
/// reaches the cache of every instance within milliseconds. When that cannot be guaranteed
/// the cache is not used at all.
///
/// - **Bounded**: at most [`max_entries`](CachedStoreBuilder::max_entries) records and
///   [`max_bytes`](CachedStoreBuilder::max_bytes) of them (on `quick_cache`, which keeps
///   the hot ones), each for at most [`max_age`](CachedStoreBuilder::max_age) as a safety
///   net.
/// - **Single flight**: concurrent misses for one id share one store read.
/// - **Unknown ids**: a store's "no such id" is kept briefly
///   ([`unknown_for`](CachedStoreBuilder::unknown_for), in a cache of its own so a flood of
///   random ids cannot push real tokens out), so a bot presenting made-up tokens with valid
///   checksums costs at most one store read per id and interval. Inserting a token drops
///   its id from it everywhere, so a new token verifies at once.
/// - **Invalidation**: a change made through this cache updates it before the call returns.
///   Changes made elsewhere arrive by the source chosen when building it, which is
///   required: [`single_instance`](CachedStoreBuilder::single_instance) (no other writer),
///   an in-process [`InvalidationBus`], or PostgreSQL's `LISTEN`/`NOTIFY`
///   (`postgres`, with the `postgres` feature), which hears of every committed change
///   whoever made it and fails closed (see `PgInvalidations`).
/// - **Last use**: a cached verification records its token's last use in the cache and
///   queues it; every [`last_use_every`](CachedStoreBuilder::last_use_every) the queue is
///   written in one [`TokenStore::record_last_uses`] call (one statement on SQL stores),
///   however many tokens it holds. Reads through the cache see queued last uses.
///
/// It is a `TokenStore` itself and passes the conformance suite over every store. Building
/// one starts background tasks, so it needs a Tokio runtime.
///
/// ```
/// use api_tokens::{ApiTokens, CachedStore, MemoryStore, NewToken};
///
/// # tokio::runtime::Builder::new_multi_thread().enable_time().build().unwrap().block_on(async {
/// let store = CachedStore::builder(MemoryStore::new())
///     .single_instance() // nothing else writes to this store
///     .build()?;
/// let tokens = ApiTokens::new(store, "dz")?;
/// let issued = tokens.issue(NewToken::new("u1", "ci")).await?;
/// tokens.verify(issued.plaintext.expose_secret()).await?; // a miss: read and cached
/// tokens.verify(issued.plaintext.expose_secret()).await?; // a hit
/// let stats = tokens.store().stats();
/// assert_eq!((stats.misses, stats.hits), (1, 1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub struct CachedStore<S> {
    shared: Arc<Shared<S>>,
}

pub(crate) struct Shared<S> {
    pub(crate) inner: S,
    pub(crate) state: Arc<State>,
    bus: Option<InvalidationBus>,
    tasks: Vec<tokio::task::AbortHandle>,
}

impl<S> Drop for Shared<S> {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl<S> Clone for CachedStore<S> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S> fmt::Debug for CachedStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedStore")
            .field("settings", &self.shared.state.settings)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// Where a cache hears of changes made by others.
enum Source {
    SingleInstance,
    Bus(InvalidationBus),
    #[cfg(feature = "postgres")]
    Postgres(Box<PgInvalidations>),
}

/// Builds a [`CachedStore`]; say where it hears of changes made by others
/// ([`single_instance`](Self::single_instance), [`bus`](Self::bus) or
/// `postgres`, with the `postgres` feature), or [`build`](Self::build) refuses.
#[must_use]
pub struct CachedStoreBuilder<S> {
    inner: S,
    settings: Settings,
    clock: Arc<dyn Clock>,
    source: Option<Source>,
}

impl<S> fmt::Debug for CachedStoreBuilder<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedStoreBuilder")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl<S: TokenStore> CachedStore<S> {
    /// Configure a cache over `inner`. Defaults: 100 000 records, 64 MiB, a maximum age of
    /// five minutes, unknown ids kept two seconds (at most 10 000 of them), last uses
    /// written every second.
    pub fn builder(inner: S) -> CachedStoreBuilder<S> {
        CachedStoreBuilder {
            inner,
            settings: Settings {
                max_entries: 100_000,
                max_bytes: 64 << 20,
                max_age: Duration::from_secs(300),
                unknown_for: Duration::from_secs(2),
                max_unknown: 10_000,
                flush_every: Duration::from_secs(1),
            },
            clock: Arc::new(SystemClock),
            source: None,
        }
    }
}

impl<S> CachedStore<S> {
    /// What the cache has done so far.
    pub fn stats(&self) -> CacheStats {
        let state = &self.shared.state;
        let (entries, bytes) = state.size();
        state.counters.snapshot(entries, bytes)
    }

    /// The store underneath.
    pub fn inner(&self) -> &S {
        &self.shared.inner
    }

    /// Whether the cache answers reads now (its invalidations are trusted).
    pub fn is_trusted(&self) -> bool {
        self.shared.state.trusted()
    }
}

impl<S: TokenStore> CachedStore<S> {
    /// Write the queued last uses now, in one batch (as the background task does every
    /// interval); returns how many records changed. Call it at shutdown to lose none.
    pub async fn flush_last_uses(&self) -> Result<u64, StoreError> {
        last_use::flush(&self.shared.inner, &self.shared.state).await
    }

    /// Drop `id` from this cache (and the bus's other members): for a change made to the
    /// store without the cache hearing of it.
    pub fn invalidate(&self, id: &TokenId) {
        self.changed(&Invalidation::Token(*id));
    }

    /// Empty this cache (and the bus's other members).
    pub fn invalidate_all(&self) {
        self.changed(&Invalidation::All);
    }

    /// Apply `change` here and tell the bus.
    fn changed(&self, change: &Invalidation) {
        let shared = &self.shared;
        change.apply(&shared.state);
        if let Some(bus) = &shared.bus {
            bus.publish(&shared.state, change);
        }
    }

    /// A read of the store, with any queued last use applied.
    async fn read_through(&self, id: &TokenId) -> Result<Option<Arc<TokenRecord>>, StoreError> {
        let state = &self.shared.state;
        let record = self.shared.inner.get(id).await?;
        Ok(record.map(|r| {
            if state.has_pending(id) {
                let mut copy = TokenRecord::clone(&r);
                state.with_pending(&mut copy);
                Arc::new(copy)
            } else {
                r
            }
        }))
    }
}

impl<S: TokenStore> CachedStoreBuilder<S> {
    /// At most this many records cached (default 100 000).
    pub fn max_entries(mut self, n: usize) -> Self {
        self.settings.max_entries = n;
        self
    }

    /// At most about this many bytes of records cached (default 64 MiB).
    pub fn max_bytes(mut self, n: u64) -> Self {
        self.settings.max_bytes = n;
        self
    }

    /// A cached record is read again after this long at most (default five minutes): a
    /// safety net, not what keeps the cache right (invalidations do that).
    pub fn max_age(mut self, age: Duration) -> Self {
        self.settings.max_age = age;
        self
    }

    /// How long a store's "no such id" is kept (default two seconds; zero keeps none).
    pub fn unknown_for(mut self, window: Duration) -> Self {
        self.settings.unknown_for = window;
        self
    }

    /// At most this many unknown ids kept (default 10 000).
    pub fn max_unknown(mut self, n: usize) -> Self {
        self.settings.max_unknown = n;
        self
    }

    /// How often queued last uses are written, in one batch (default every second).
    pub fn last_use_every(mut self, every: Duration) -> Self {
        self.settings.flush_every = every;
        self
    }

    /// Where the time for maximum ages comes from (default: [`SystemClock`]).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Nothing but this cache writes to the store (one process, one store): its own changes
    /// are all it needs to hear of.
    pub fn single_instance(mut self) -> Self {
        self.source = Some(Source::SingleInstance);
        self
    }

    /// Hear of the changes made through every other cache on `bus` (one process, several
    /// caches over one store; tests).
    pub fn bus(mut self, bus: &InvalidationBus) -> Self {
        self.source = Some(Source::Bus(bus.clone()));
        self
    }

    /// Hear of every committed change to the PostgreSQL table, whoever made it, through
    /// `LISTEN`/`NOTIFY` (the trigger `migrate()` installs); see [`PgInvalidations`] for
    /// how it fails closed.
    #[cfg(feature = "postgres")]
    #[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
    pub fn postgres(mut self, invalidations: PgInvalidations) -> Self {
        self.source = Some(Source::Postgres(Box::new(invalidations)));
        self
    }

    /// Check the settings and start the cache's background tasks (in the current Tokio
    /// runtime).
    pub fn build(self) -> Result<CachedStore<S>, ConfigError> {
        let Some(source) = self.source else {
            return Err(ConfigError::Cache(
                "say where the cache hears of changes made elsewhere: single_instance(), \
                 bus(…) or postgres(…)",
            ));
        };
        let s = &self.settings;
        if s.max_entries == 0 || s.max_bytes == 0 || s.max_age.is_zero() {
            return Err(ConfigError::Cache(
                "max_entries, max_bytes and max_age must be more than zero",
            ));
        }
        if s.flush_every.is_zero() {
            return Err(ConfigError::Cache("last_use_every must be more than zero"));
        }
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(ConfigError::Cache(
                "a CachedStore runs background tasks: build it inside a Tokio runtime",
            ));
        }
        let trusted_until = match &source {
            Source::SingleInstance | Source::Bus(_) => ALWAYS,
            // Not trusted until the subscription is confirmed.
            #[cfg(feature = "postgres")]
            Source::Postgres(_) => 0,
        };
        let state = Arc::new(State::new(self.settings, self.clock, trusted_until));
        let bus = match &source {
            Source::Bus(bus) => {
                bus.join(&state);
                Some(bus.clone())
            }
            _ => None,
        };
        #[cfg(feature = "postgres")]
        let listener = match source {
            Source::Postgres(invalidations) => {
                let nonce = PgInvalidations::nonce().map_err(|_| {
                    ConfigError::Cache("the operating system's random number generator failed")
                })?;
                Some((*invalidations, nonce))
            }
            _ => None,
        };
        let flush_every = state.settings.flush_every;
        let shared = Arc::new_cyclic(|weak| {
            #[cfg_attr(not(feature = "postgres"), allow(unused_mut))]
            let mut tasks = vec![last_use::spawn(weak.clone(), flush_every)];
            #[cfg(feature = "postgres")]
            if let Some((invalidations, nonce)) = listener {
                tasks.extend(invalidations.spawn(Arc::downgrade(&state), nonce));
            }
            Shared {
                inner: self.inner,
                state,
                bus,
                tasks,
            }
        });
        Ok(CachedStore { shared })
    }
}

impl<S: TokenStore> TokenStore for CachedStore<S> {
    async fn insert(&self, record: &TokenRecord) -> Result<(), StoreError> {
        let done = self.shared.inner.insert(record).await;
        self.changed(&Invalidation::Token(record.id));
        done
    }

    async fn insert_capped(
        &self,
        record: &TokenRecord,
        cap: u32,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let done = self.shared.inner.insert_capped(record, cap, now).await;
        self.changed(&Invalidation::Token(record.id));
        done
    }

    async fn insert_child(
        &self,
        record: &TokenRecord,
        rules: &ChildRules,
    ) -> Result<ChildInsert, StoreError> {
        let done = self.shared.inner.insert_child(record, rules).await;
        self.changed(&Invalidation::Token(record.id));
        done
    }

    async fn get(&self, id: &TokenId) -> Result<Option<Arc<TokenRecord>>, StoreError> {
        let state = &self.shared.state;
        if !state.trusted() {
            state.counters.bypassed.bump();
            state.counters.store_reads.bump();
            return self.read_through(id).await;
        }
        if let Some(answer) = state.cached(id) {
            return Ok(answer);
        }
        state.counters.misses.bump();
        state.load(id, || self.read_through(id)).await
    }

    fn get_now(&self, id: &TokenId) -> Option<Result<Option<Arc<TokenRecord>>, StoreError>> {
        let state = &self.shared.state;
        if !state.trusted() {
            return None;
        }
        state.cached(id).map(Ok)
    }

    /// A cached record is lent without waiting; a miss, or any read while the cache is not
    /// trusted, goes to [`get`](Self::get).
    fn read_now<R>(
        &self,
        id: &TokenId,
        read: impl FnOnce(Option<&TokenRecord>) -> R,
    ) -> Option<Result<R, StoreError>> {
        let state = &self.shared.state;
        if !state.trusted() {
            return None;
        }
        state.lend(id, read).map(Ok)
    }

    async fn list(&self, filter: &ListFilter<'_>) -> Result<ListPage, StoreError> {
        let mut page = self.shared.inner.list(filter).await?;
        for record in &mut page.records {
            self.shared.state.with_pending(record);
        }
        Ok(page)
    }

    async fn list_expiring(&self, filter: &ExpiringFilter<'_>) -> Result<ListPage, StoreError> {
        let mut page = self.shared.inner.list_expiring(filter).await?;
        for record in &mut page.records {
            self.shared.state.with_pending(record);
        }
        Ok(page)
    }

    async fn record_last_use(&self, id: &TokenId, at: OffsetDateTime) -> Result<bool, StoreError> {
        match self.shared.state.note_last_use(id, at) {
            Some(moved) => Ok(moved),
            // Not cached (or not trusted): written through at once.
            None => self.shared.inner.record_last_use(id, at).await,
        }
    }

    async fn record_last_uses(
        &self,
        uses: &[(TokenId, OffsetDateTime)],
    ) -> Result<u64, StoreError> {
        let done = self.shared.inner.record_last_uses(uses).await;
        for (id, _) in uses {
            self.shared.state.invalidate(id);
        }
        done
    }

    async fn update(&self, id: &TokenId, change: &mut Change<'_>) -> Result<bool, StoreError> {
        let done = self.shared.inner.update(id, change).await;
        self.changed(&Invalidation::Token(*id));
        done
    }

    async fn rotate(
        &self,
        id: &TokenId,
        change: &mut Change<'_>,
        successor: &TokenRecord,
    ) -> Result<bool, StoreError> {
        let done = self.shared.inner.rotate(id, change, successor).await;
        self.changed(&Invalidation::Token(*id));
        self.changed(&Invalidation::Token(successor.id));
        done
    }

    async fn rotate_capped(
        &self,
        id: &TokenId,
        change: &mut Change<'_>,
        successor: &TokenRecord,
        cap: u32,
        now: OffsetDateTime,
    ) -> Result<Option<bool>, StoreError> {
        let done = (self.shared.inner)
            .rotate_capped(id, change, successor, cap, now)
            .await;
        self.changed(&Invalidation::Token(*id));
        self.changed(&Invalidation::Token(successor.id));
        done
    }

    async fn revoke_all(&self, all: &RevokeAll<'_>) -> Result<u64, StoreError> {
        let done = self.shared.inner.revoke_all(all).await;
        self.changed(&Invalidation::Owner {
            prefix: all.prefix.into(),
            owner: all.owner.into(),
        });
        done
    }

    async fn revoke_descendants(
        &self,
        of: &TokenId,
        all: &RevokeAll<'_>,
    ) -> Result<u64, StoreError> {
        let done = self.shared.inner.revoke_descendants(of, all).await;
        self.changed(&Invalidation::Owner {
            prefix: all.prefix.into(),
            owner: all.owner.into(),
        });
        done
    }

    /// Always the inner store's: a use is counted where every instance counts it. This
    /// instance then drops its copy of the record, whose count is stale (other instances
    /// keep theirs: verification only asks whether a token counts its uses, which never
    /// changes, and the count itself is always the store's).
    async fn consume_use(
        &self,
        id: &TokenId,
        now: OffsetDateTime,
    ) -> Result<UseOutcome, StoreError> {
        let done = self.shared.inner.consume_use(id, now).await;
        self.shared.state.invalidate(id);
        done
    }

    async fn update_descendants(
        &self,
        which: &Descendants<'_>,
        change: &mut Change<'_>,
    ) -> Result<u64, StoreError> {
        let done = self.shared.inner.update_descendants(which, change).await;
        self.changed(&Invalidation::Owner {
            prefix: which.prefix.into(),
            owner: which.owner.into(),
        });
        done
    }

    async fn purge(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        let done = self.shared.inner.purge(before).await;
        self.changed(&Invalidation::Purged(before));
        done
    }
}
