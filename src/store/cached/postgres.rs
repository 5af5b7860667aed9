//! [`PgInvalidations`]: a cache hears of every committed change to a PostgreSQL token table,
//! through the trigger `migrate()` installs and `LISTEN`, and trusts what it caches only
//! while it can prove it is hearing.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use tokio::task::AbortHandle;

use super::state::State;
use crate::clock::lease_clock_nanos;
use crate::store::postgres::PostgresStore;
use crate::store::sql::schema::CHANNEL_QUERY;
use crate::token::TokenId;

/// The application name the listener's connection reports (`pg_stat_activity`).
pub(crate) const APPLICATION_NAME: &str = "api_tokens_invalidations";

/// How a [`CachedStore`](crate::CachedStore) over PostgreSQL hears of changes, from
/// [`PostgresStore::invalidations`].
///
/// One connection per cache `LISTEN`s on the table's channel; the table's trigger
/// (installed by [`PostgresStore::migrate`]) sends the id of every inserted, changed or
/// deleted token when, and only when, its transaction commits, whoever made the change.
/// The cache drops that id at once.
///
/// **Failing closed.** The cache answers only while it can prove it is hearing. Every
/// [`heartbeat`](Self::heartbeat) (200 ms) it sends a notification of its own through the
/// store's pool, on the channel the table's trigger uses and only while that trigger is in
/// place and enabled; PostgreSQL delivers notifications in commit order, so when that one
/// comes back, every change committed before it was sent has been heard, and the cache is
/// trusted for a [`lease`](Self::lease) (1 s) from the moment it was sent (on a clock that
/// keeps counting through a suspended system). A notification it does not understand
/// empties it. A lost connection is
/// noticed at once: the cache is emptied and every verification reads the store until the
/// listener has reconnected (by itself, with backoff), re-subscribed, and a heartbeat has
/// come back; then the cache is emptied once more, since changes made in the gap were not
/// heard. A connection that silently stops delivering (a partition, a stalled proxy) stops
/// the heartbeats, and the cache stops answering when the lease runs out.
///
/// So: **a verification that starts more than δ after `revoke` returned on any instance
/// never succeeds**, where δ is the time PostgreSQL takes to deliver the notification (a
/// millisecond or two on a local network; the README gives the measured figures), and at
/// most the lease when the listener's connection fails silently.
#[derive(Clone)]
pub struct PgInvalidations {
    listen: PgConnectOptions,
    notify: PgPool,
    /// The table as its statements name it, and its trigger's name.
    table: String,
    trigger: String,
    heartbeat: Duration,
    lease: Duration,
}

impl fmt::Debug for PgInvalidations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgInvalidations")
            .field("table", &self.table)
            .field("heartbeat", &self.heartbeat)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// How a [`CachedStore`](crate::CachedStore) over this store hears of changes: `LISTEN`
    /// on this table's channel, on a connection of its own made with the pool's options.
    /// Run [`migrate`](Self::migrate) first: it installs the trigger that sends them.
    #[cfg_attr(docsrs, doc(cfg(feature = "cache")))]
    pub fn invalidations(&self) -> PgInvalidations {
        let listen = self
            .pool()
            .connect_options()
            .as_ref()
            .clone()
            .application_name(APPLICATION_NAME);
        PgInvalidations {
            listen,
            notify: self.pool().clone(),
            table: self.table_sql(),
            trigger: self.trigger_name(),
            heartbeat: Duration::from_millis(200),
            lease: Duration::from_secs(1),
        }
    }
}

impl PgInvalidations {
    /// Listen through a connection made with `options` instead of the pool's (another
    /// host, a proxy, other credentials).
    pub fn connect_options(mut self, options: PgConnectOptions) -> Self {
        self.listen = options;
        self
    }

    /// How often the cache proves it is hearing (default 200 ms).
    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = every.max(Duration::from_millis(1));
        self
    }

    /// How long a proof lasts (default 1 s): the longest a cache can answer after its
    /// connection silently stopped delivering. Keep it a few heartbeats long.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_millis(1));
        self
    }

    /// A nonce for a cache's heartbeats, from the operating system's random number
    /// generator (so that no other cache, and no other database user, can forge one).
    pub(crate) fn nonce() -> Result<String, getrandom::Error> {
        let mut nonce = [0u8; 16];
        getrandom::fill(&mut nonce)?;
        Ok(hex::encode(nonce))
    }

    /// Start the listener and the heartbeat for the cache `state`.
    pub(crate) fn spawn(self, state: Weak<State>, nonce: String) -> Vec<AbortHandle> {
        let shared = Arc::new(Heartbeats {
            nonce,
            channel: Mutex::default(),
            sent: Mutex::default(),
            next: AtomicU64::new(0),
            listening: AtomicBool::new(false),
        });
        let listener = tokio::spawn(listen(self.clone(), Arc::clone(&shared), state.clone()));
        let pinger = tokio::spawn(ping(self, shared, state));
        vec![listener.abort_handle(), pinger.abort_handle()]
    }
}

/// The heartbeats in flight: their sequence numbers and when each was sent.
struct Heartbeats {
    nonce: String,
    /// The table's channel, once the listener has looked it up.
    channel: Mutex<Option<String>>,
    sent: Mutex<VecDeque<(u64, u64)>>,
    next: AtomicU64,
    listening: AtomicBool,
}

impl Heartbeats {
    fn payload(&self, seq: u64) -> String {
        format!("ping:{}:{seq}", self.nonce)
    }

    /// When heartbeat `payload` was sent, if it is one of ours.
    fn sent_at(&self, payload: &str) -> Option<u64> {
        let rest = payload.strip_prefix("ping:")?;
        let (nonce, seq) = rest.split_once(':')?;
        if nonce != self.nonce {
            return None;
        }
        let seq: u64 = seq.parse().ok()?;
        let sent = self.sent.lock().unwrap_or_else(PoisonError::into_inner);
        sent.iter().find(|(s, _)| *s == seq).map(|(_, at)| *at)
    }
}

/// Listen until the cache is gone: on every lost connection (or one silent for three
/// leases), distrust and empty the cache, then reconnect with backoff (100 ms doubling to
/// 5 s).
async fn listen(config: PgInvalidations, beats: Arc<Heartbeats>, state: Weak<State>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        if state.strong_count() == 0 {
            return;
        }
        match subscribe(&config).await {
            Ok((listener, pool, channel)) => {
                backoff = Duration::from_millis(100);
                *beats.channel.lock().unwrap_or_else(PoisonError::into_inner) = Some(channel);
                beats.listening.store(true, Ordering::Release);
                receive(listener, &beats, &state, config.lease).await;
                beats.listening.store(false, Ordering::Release);
                drop(pool);
                if let Some(state) = state.upgrade() {
                    state.distrust();
                }
            }
            Err(_) => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// A connection of its own, subscribed to the table's channel (looked up by its OID).
async fn subscribe(config: &PgInvalidations) -> Result<(PgListener, PgPool, String), sqlx::Error> {
    let attempt = async {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(config.listen.clone())
            .await?;
        let channel: String = sqlx::query_scalar(CHANNEL_QUERY)
            .bind(&config.table)
            .fetch_one(&pool)
            .await?;
        let mut listener = PgListener::connect_with(&pool).await?;
        // A lost connection ends `receive`: this task reconnects, after distrusting.
        listener.eager_reconnect(false);
        listener.ignore_pool_close_event(true);
        listener.listen(&channel).await?;
        Ok((listener, pool, channel))
    };
    match tokio::time::timeout(Duration::from_secs(5).max(config.lease), attempt).await {
        Ok(done) => done,
        Err(_) => Err(sqlx::Error::PoolTimedOut),
    }
}

/// Apply every notification until the connection is lost or the cache is gone.
async fn receive(
    mut listener: PgListener,
    beats: &Heartbeats,
    state: &Weak<State>,
    lease: Duration,
) {
    // Our own heartbeats arrive every interval: a connection silent for three leases is
    // dead even if TCP has not noticed (a partition, a stalled proxy), and is replaced.
    let silence = lease.saturating_mul(3);
    let lease = u64::try_from(lease.as_nanos()).unwrap_or(u64::MAX);
    loop {
        let Ok(Ok(Some(notification))) = tokio::time::timeout(silence, listener.try_recv()).await
        else {
            return;
        };
        let Some(state) = state.upgrade() else {
            return;
        };
        let payload = notification.payload();
        if let Some(sent) = beats.sent_at(payload) {
            state.trust_until(sent.saturating_add(lease));
        } else if payload.starts_with("ping:") {
            // Another cache's heartbeat.
        } else if let Ok(id) = payload.parse::<TokenId>() {
            state.counters.invalidations_received.bump();
            state.invalidate(&id);
        } else {
            // `*` (a truncation), or what a later release's trigger may send: anything not
            // understood may be a change, so nothing cached is trusted to have survived it.
            state.counters.invalidations_received.bump();
            state.invalidate_all();
        }
    }
}

/// Send a heartbeat every interval while the listener is subscribed, until the cache is
/// gone.
async fn ping(config: PgInvalidations, beats: Arc<Heartbeats>, state: Weak<State>) {
    let mut tick = tokio::time::interval(config.heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if state.strong_count() == 0 {
            return;
        }
        if !beats.listening.load(Ordering::Acquire) {
            continue;
        }
        let Some(channel) = beats
            .channel
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        else {
            continue;
        };
        let seq = beats.next.fetch_add(1, Ordering::Relaxed);
        {
            let mut sent = beats.sent.lock().unwrap_or_else(PoisonError::into_inner);
            sent.push_back((seq, lease_clock_nanos()));
            while sent.len() > 64 {
                sent.pop_front();
            }
        }
        // Sent only while the table's trigger is in place and fires always: without it, no
        // change would be announced, and no heartbeat must say otherwise.
        let notify = sqlx::query(
            "SELECT pg_catalog.pg_notify($1, $2) FROM pg_catalog.pg_trigger \
             WHERE tgrelid = $3::text::regclass AND tgname = $4 AND tgenabled = 'A'",
        )
        .bind(&channel)
        .bind(beats.payload(seq))
        .bind(&config.table)
        .bind(&config.trigger)
        .execute(&config.notify);
        // A heartbeat that fails or stalls proves nothing; the lease runs out by itself.
        let _ = tokio::time::timeout(config.lease, notify).await;
    }
}
