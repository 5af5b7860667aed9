//! [`InvalidationBus`]: an in-process channel between caches, standing for the instances
//! of a service that share one store, for tests and for several caches in one process.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use super::state::{ALWAYS, State};
use crate::token::TokenId;

/// What one cache tells the others after a change it made.
#[derive(Debug, Clone)]
pub(crate) enum Invalidation {
    /// One token changed (or was inserted, which makes a cached "unknown" wrong).
    Token(TokenId),
    /// Some of one owner's tokens of one issuer changed (revoke-all, descendants).
    Owner { prefix: Arc<str>, owner: Arc<str> },
    /// Records revoked or expired before this instant were deleted (purge).
    Purged(time::OffsetDateTime),
    /// Any token may have changed.
    All,
}

impl Invalidation {
    pub(crate) fn apply(&self, state: &State) {
        match self {
            Self::Token(id) => state.invalidate(id),
            Self::Owner { prefix, owner } => {
                state.invalidate_where(|r| *r.owner == **owner && *r.prefix == **prefix);
            }
            Self::Purged(before) => state.invalidate_where(|r| {
                r.revoked_at.is_some_and(|t| t < *before)
                    || r.expires_at.is_some_and(|t| t < *before)
            }),
            Self::All => state.invalidate_all(),
        }
    }
}

/// An in-process invalidation channel: every [`CachedStore`](crate::CachedStore) built with
/// [`CachedStoreBuilder::bus`](crate::CachedStoreBuilder::bus) on the same bus hears of the
/// changes each of the others makes, as caches on several instances hear of each other's
/// through PostgreSQL. It also lets a test take the channel down ([`disconnect`]) and bring
/// it back ([`reconnect`]), to see the caches stop answering and start again.
///
/// Only changes made through a member reach the others: the bus does not watch the store.
///
/// ```
/// use api_tokens::{ApiTokens, AuthError, CachedStore, InvalidationBus, MemoryStore, NewToken};
/// use std::sync::Arc;
///
/// # tokio::runtime::Builder::new_multi_thread().enable_time().build().unwrap().block_on(async {
/// let shared = Arc::new(MemoryStore::new()); // one database, two "instances"
/// let bus = InvalidationBus::new();
/// let a = ApiTokens::new(CachedStore::builder(Arc::clone(&shared)).bus(&bus).build()?, "dz")?;
/// let b = ApiTokens::new(CachedStore::builder(shared).bus(&bus).build()?, "dz")?;
///
/// let issued = a.issue(NewToken::new("u1", "ci")).await?;
/// let token = issued.plaintext.expose_secret();
/// b.verify(token).await?; // now cached by b
/// a.revoke("u1", issued.record.id, None).await?;
/// assert!(matches!(b.verify(token).await, Err(AuthError::Revoked { .. })));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
///
/// [`disconnect`]: Self::disconnect
/// [`reconnect`]: Self::reconnect
#[derive(Clone, Default)]
pub struct InvalidationBus {
    members: Arc<Mutex<Vec<Weak<State>>>>,
}

impl fmt::Debug for InvalidationBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InvalidationBus")
            .field("members", &self.live().len())
            .finish()
    }
}

impl InvalidationBus {
    /// A bus with no member yet.
    pub fn new() -> Self {
        Self::default()
    }

    pub(crate) fn join(&self, state: &Arc<State>) {
        let mut members = self.members.lock().unwrap_or_else(PoisonError::into_inner);
        members.retain(|m| m.strong_count() > 0);
        members.push(Arc::downgrade(state));
    }

    fn live(&self) -> Vec<Arc<State>> {
        let members = self.members.lock().unwrap_or_else(PoisonError::into_inner);
        members.iter().filter_map(Weak::upgrade).collect()
    }

    /// Tell every member but `from` of `change`.
    pub(crate) fn publish(&self, from: &State, change: &Invalidation) {
        for member in self.live() {
            if !std::ptr::eq(Arc::as_ptr(&member), from) {
                member.counters.invalidations_received.bump();
                change.apply(&member);
            }
        }
    }

    /// Take the channel down, as a lost subscription would: every member stops trusting its
    /// cache (and empties it), so reads go to the store until [`reconnect`](Self::reconnect).
    pub fn disconnect(&self) {
        for member in self.live() {
            member.distrust();
        }
    }

    /// Bring the channel back: every member empties its cache once more (changes made
    /// meanwhile were not heard) and trusts it again.
    pub fn reconnect(&self) {
        for member in self.live() {
            member.trust_until(ALWAYS);
        }
    }
}
