//! The audit trail: the library's audit events (through a `ChannelSink`) written to a
//! table beside the tokens, and read back by their owner (`GET /api/v1/audit`).
//!
//! Two queues, two writer tasks: lifecycle events (issued, rotated, revoked, …), which only
//! authenticated requests cause, on a large queue; failed verifications, which anyone can
//! cause, on a small one that drops when full (`audit_events_dropped_total`), so a flood of
//! bad tokens never crowds out the lifecycle. A failed verification names the token id it
//! presented but no owner: the writer looks the owner up by id and drops the event if no
//! such token exists. Each failure is kept at most once a minute per token and code (a
//! wrong secret, `invalid`, needs no secret to send; a thief holding a revoked or throttled
//! token can repeat `revoked` or `rate_limited` as fast as they like), so nobody can bury a
//! user's trail in failures; the ones left out are counted
//! (`audit_events_dropped_total{why="repeated"}`).
//!
//! Reading the trail waits (at most [`SETTLE`] in all) until the writers have dealt with
//! every event queued before the read, so a client that revokes a token and then lists its
//! trail sees the revocation. It does not wait for a backlog of failures longer than a
//! batch: a flood of made-up tokens, which anyone can send, never slows the reads.

use api_tokens::sqlx::{self, AssertSqlSafe, PgPool, SqlitePool};
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use api_tokens::{
    ApiTokens, AuditEvent, AuditKind, AuditSink, ChannelSink, DynTokenStore, TokenId,
};
use serde::Serialize;
use time::OffsetDateTime;
use tokio::sync::mpsc::Receiver;
use tokio::sync::watch;

use super::views::rfc3339;

/// A nullable text column.
type Opt = Option<String>;

/// Lifecycle events waiting to be written, at most.
pub const QUEUE: usize = 100_000;
/// Failed verifications waiting to be written, at most (more are dropped).
pub const FAILURE_QUEUE: usize = 1_000;
/// Events written in one transaction, at most.
const BATCH: usize = 256;
/// Failures remembered per minute to leave out their repeats, at most (more are written).
const REMEMBERED: usize = 100_000;
/// How long reading the trail waits for the events queued before it to be written, at
/// most (then it answers with what is written).
pub const SETTLE: Duration = Duration::from_secs(1);

/// Where the events are kept: a table in the tokens' database.
#[derive(Clone)]
pub struct AuditLog {
    db: Db,
    table: String,
    /// The queues the writers empty (lifecycle, failures), once [`sink`](Self::sink) made
    /// them. Held by the service's sink: a writer ends when the service is gone.
    queues: Option<Weak<[Queue; 2]>>,
    /// Writer tasks still running.
    running: Arc<AtomicUsize>,
}

/// One queue of events, and how far its writer has got.
struct Queue {
    sink: ChannelSink,
    /// Events handed to the queue: each is written, left out or dropped, in the end.
    recorded: AtomicU64,
    /// Events the writer has dealt with (written or left out).
    handled: watch::Sender<u64>,
}

impl Queue {
    fn new(capacity: usize) -> (Self, Receiver<AuditEvent>) {
        let (sink, events) = ChannelSink::new(capacity);
        let queue = Self {
            sink,
            recorded: AtomicU64::new(0),
            handled: watch::channel(0).0,
        };
        (queue, events)
    }

    /// Queue `event` (dropped, and counted by the sink, if the queue is full).
    fn record(&self, event: AuditEvent) {
        // Counted before it is sent: a read that counts it waits for it, and a read that
        // does not was made before it.
        self.recorded.fetch_add(1, Ordering::SeqCst);
        self.sink.record(event);
    }

    /// Events dealt with, when the writer has handled `handled`: those and the dropped.
    fn dealt_with(&self, handled: u64) -> u64 {
        handled.saturating_add(self.sink.dropped())
    }

    /// Events queued and not yet dealt with.
    fn backlog(&self) -> u64 {
        let dealt_with = self.dealt_with(*self.handled.borrow());
        self.recorded
            .load(Ordering::SeqCst)
            .saturating_sub(dealt_with)
    }

    /// Wait until every event queued so far is dealt with (or the writer is gone).
    async fn settled(&self) {
        let queued = self.recorded.load(Ordering::SeqCst);
        let mut handled = self.handled.subscribe();
        let _ = handled.wait_for(|&n| self.dealt_with(n) >= queued).await;
    }
}

/// Marks its queue as dealt with for good when the writer task ends, however it ends (a
/// panic included), so that no read waits for a writer that is gone.
struct WriterGone {
    queues: Option<Weak<[Queue; 2]>>,
    queue: usize,
    running: Arc<AtomicUsize>,
}

impl Drop for WriterGone {
    fn drop(&mut self) {
        self.running.fetch_sub(1, Ordering::SeqCst);
        if let Some(queues) = self.queues.as_ref().and_then(Weak::upgrade) {
            queues[self.queue].handled.send_replace(u64::MAX);
        }
    }
}

#[derive(Clone)]
enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// One event as the API shows it.
#[derive(Debug, Serialize)]
pub struct AuditView {
    at: String,
    event: String,
    token_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<String>,
}

impl AuditLog {
    /// The log in the SQLite database of `pool`, beside the token table `tokens`.
    pub async fn sqlite(pool: SqlitePool, tokens: &str) -> Result<Self, String> {
        let log = Self {
            db: Db::Sqlite(pool),
            table: format!("{tokens}_audit"),
            queues: None,
            running: Arc::default(),
        };
        log.create().await?;
        Ok(log)
    }

    /// The log in the PostgreSQL database of `pool`, beside the token table `tokens`.
    pub async fn postgres(pool: PgPool, tokens: &str) -> Result<Self, String> {
        let log = Self {
            db: Db::Postgres(pool),
            table: format!("{tokens}_audit"),
            queues: None,
            running: Arc::default(),
        };
        log.create().await?;
        Ok(log)
    }

    async fn create(&self) -> Result<(), String> {
        let t = &self.table;
        let failed = |e: sqlx::Error| format!("cannot create the audit table {t}: {e}");
        match &self.db {
            Db::Sqlite(pool) => {
                sqlx::raw_sql(AssertSqlSafe(format!(
                    "CREATE TABLE IF NOT EXISTS {t} (
                         seq INTEGER PRIMARY KEY AUTOINCREMENT,
                         at INTEGER NOT NULL, owner TEXT NOT NULL, event TEXT NOT NULL,
                         token_id TEXT, reason TEXT, code TEXT);
                     CREATE INDEX IF NOT EXISTS {t}_owner ON {t} (owner, seq DESC);"
                )))
                .execute(pool)
                .await
                .map_err(failed)?;
            }
            Db::Postgres(pool) => {
                let index = format!("{}_owner", t.rsplit('.').next().unwrap_or(t));
                sqlx::raw_sql(AssertSqlSafe(format!(
                    "CREATE TABLE IF NOT EXISTS {t} (
                         seq BIGSERIAL PRIMARY KEY,
                         at TIMESTAMPTZ NOT NULL, owner TEXT NOT NULL, event TEXT NOT NULL,
                         token_id TEXT, reason TEXT, code TEXT);
                     CREATE INDEX IF NOT EXISTS {index} ON {t} (owner, seq DESC);"
                )))
                .execute(pool)
                .await
                .map_err(failed)?;
            }
        }
        Ok(())
    }

    /// The sink to give the token service, and the writer tasks that empty it into the
    /// table.
    pub fn sink(mut self) -> Sink {
        let (lifecycle, lifecycle_events) = Queue::new(QUEUE);
        let (failures, failure_events) = Queue::new(FAILURE_QUEUE);
        let queues = Arc::new([lifecycle, failures]);
        self.queues = Some(Arc::downgrade(&queues));
        Sink {
            log: self,
            queues,
            receivers: Some((lifecycle_events, failure_events)),
        }
    }

    /// Write `events` until the queue is closed, in batches; find the owner of a failed
    /// verification by its token id, and keep each failure once a minute per token and
    /// code.
    fn spawn_writer(
        self,
        queue: usize,
        mut events: Receiver<AuditEvent>,
        store: DynTokenStore,
    ) -> tokio::task::JoinHandle<()> {
        self.running.fetch_add(1, Ordering::SeqCst);
        let gone = WriterGone {
            queues: self.queues.clone(),
            queue,
            running: Arc::clone(&self.running),
        };
        tokio::spawn(async move {
            let _gone = gone;
            let mut batch = Vec::with_capacity(BATCH);
            let mut repeats = Repeats::default();
            loop {
                let received = events.recv_many(&mut batch, BATCH).await;
                if received == 0 {
                    break;
                }
                let mut rows = Vec::with_capacity(batch.len());
                for event in batch.drain(..) {
                    let failure = match (event.kind, event.token_id) {
                        (AuditKind::VerifyFailed, Some(id)) => Some((id, event.code.unwrap_or(""))),
                        _ => None,
                    };
                    if let Some(key) = failure
                        && repeats.seen(event.at.unix_timestamp() / 60, key)
                    {
                        metrics::counter!("audit_events_dropped_total", "why" => "repeated")
                            .increment(1);
                        continue;
                    }
                    let owner = match (&event.owner, event.token_id) {
                        (Some(owner), _) => Some(owner.to_string()),
                        (None, Some(id)) => owner_of(&store, &id).await,
                        (None, None) => None,
                    };
                    let Some(owner) = owner else { continue };
                    // Remembered only for real tokens: made-up ids cannot fill the memory.
                    if let Some(key) = failure {
                        repeats.remember(key);
                    }
                    rows.push((owner, event));
                }
                if let Err(e) = self.insert(&rows).await {
                    metrics::counter!("audit_events_dropped_total", "why" => "write_failed")
                        .increment(rows.len() as u64);
                    tracing::warn!(error = %e, events = rows.len(), "could not write audit events");
                }
                if let Some(queues) = self.queues.as_ref().and_then(Weak::upgrade) {
                    queues[queue]
                        .handled
                        .send_modify(|n| *n = n.saturating_add(received as u64));
                }
            }
        })
    }

    async fn insert(&self, rows: &[(String, AuditEvent)]) -> Result<(), sqlx::Error> {
        if rows.is_empty() {
            return Ok(());
        }
        let t = &self.table;
        match &self.db {
            Db::Sqlite(pool) => {
                let mut tx = pool.begin().await?;
                for (owner, e) in rows {
                    sqlx::query(AssertSqlSafe(format!(
                        "INSERT INTO {t} (at, owner, event, token_id, reason, code) VALUES (?, ?, ?, ?, ?, ?)"
                    )))
                    .bind((e.at.unix_timestamp_nanos() / 1_000) as i64)
                    .bind(owner)
                    .bind(e.kind.as_str())
                    .bind(e.token_id.map(|id| id.to_string()))
                    .bind(e.reason.as_deref())
                    .bind(e.code)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await
            }
            Db::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                for (owner, e) in rows {
                    sqlx::query(AssertSqlSafe(format!(
                        "INSERT INTO {t} (at, owner, event, token_id, reason, code) VALUES ($1, $2, $3, $4, $5, $6)"
                    )))
                    .bind(e.at)
                    .bind(owner)
                    .bind(e.kind.as_str())
                    .bind(e.token_id.map(|id| id.to_string()))
                    .bind(e.reason.as_deref())
                    .bind(e.code)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await
            }
        }
    }

    /// How many writer tasks are running: two once started, none once the token service
    /// (which holds the queues they empty) is dropped and they have written what was left.
    pub fn running_writers(&self) -> usize {
        self.running.load(Ordering::SeqCst)
    }

    /// `owner`'s events, newest first: one page, and the total.
    pub async fn list(
        &self,
        owner: &str,
        page: u32,
        per_page: u32,
    ) -> Result<(Vec<AuditView>, u64), sqlx::Error> {
        if let Some(queues) = self.queues.as_ref().and_then(Weak::upgrade) {
            let [lifecycle, failures] = &*queues;
            // Failures only while they are few: anyone can queue them (made-up tokens).
            let failures_too = failures.backlog() <= BATCH as u64;
            let settled = async {
                lifecycle.settled().await;
                if failures_too {
                    failures.settled().await;
                }
            };
            // Late: answer with what is written (a writer may be stuck on the database).
            let _ = tokio::time::timeout(SETTLE, settled).await;
        }
        let t = &self.table;
        let offset = i64::from(page.saturating_sub(1)) * i64::from(per_page);
        match &self.db {
            Db::Sqlite(pool) => {
                let rows: Vec<(i64, String, Opt, Opt, Opt)> =
                    sqlx::query_as(AssertSqlSafe(format!(
                        "SELECT at, event, token_id, reason, code FROM {t} WHERE owner = ? \
                         ORDER BY seq DESC LIMIT ? OFFSET ?"
                    )))
                    .bind(owner)
                    .bind(i64::from(per_page))
                    .bind(offset)
                    .fetch_all(pool)
                    .await?;
                let total: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
                    "SELECT COUNT(*) FROM {t} WHERE owner = ?"
                )))
                .bind(owner)
                .fetch_one(pool)
                .await?;
                let views = rows
                    .into_iter()
                    .map(|(at, event, token_id, reason, code)| {
                        let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(at) * 1_000)
                            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
                        view(at, (event, token_id, reason, code))
                    })
                    .collect();
                Ok((views, total as u64))
            }
            Db::Postgres(pool) => {
                let rows: Vec<(OffsetDateTime, String, Opt, Opt, Opt)> =
                    sqlx::query_as(AssertSqlSafe(format!(
                        "SELECT at, event, token_id, reason, code FROM {t} WHERE owner = $1 \
                         ORDER BY seq DESC LIMIT $2 OFFSET $3"
                    )))
                    .bind(owner)
                    .bind(i64::from(per_page))
                    .bind(offset)
                    .fetch_all(pool)
                    .await?;
                let total: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
                    "SELECT COUNT(*) FROM {t} WHERE owner = $1"
                )))
                .bind(owner)
                .fetch_one(pool)
                .await?;
                let views = rows
                    .into_iter()
                    .map(|(at, event, token_id, reason, code)| {
                        view(at, (event, token_id, reason, code))
                    })
                    .collect();
                Ok((views, total as u64))
            }
        }
    }
}

fn view(
    at: OffsetDateTime,
    (event, token_id, reason, code): (String, Option<String>, Option<String>, Option<String>),
) -> AuditView {
    AuditView {
        at: rfc3339(at),
        event,
        token_id,
        reason,
        code,
    }
}

/// The failures kept this minute, by token and code.
#[derive(Default)]
struct Repeats {
    minute: i64,
    kept: HashSet<(TokenId, &'static str)>,
}

impl Repeats {
    /// Whether `key` was kept already in `minute` (a new minute forgets the last one).
    fn seen(&mut self, minute: i64, key: (TokenId, &'static str)) -> bool {
        if minute != self.minute {
            self.minute = minute;
            self.kept.clear();
        }
        self.kept.contains(&key)
    }

    /// Leave out `key`'s repeats for the rest of the minute (while there is room).
    fn remember(&mut self, key: (TokenId, &'static str)) {
        if self.kept.len() < REMEMBERED {
            self.kept.insert(key);
        }
    }
}

/// The owner of the token `id`, if it exists.
async fn owner_of(store: &DynTokenStore, id: &TokenId) -> Option<String> {
    use api_tokens::TokenStore;
    let record = store.get(id).await.ok().flatten()?;
    Some(record.owner.to_string())
}

/// The token service's audit sink: lifecycle events and failed verifications on queues of
/// their own. Call [`start`](Self::start) with the service once it is built.
pub struct Sink {
    log: AuditLog,
    queues: Arc<[Queue; 2]>,
    receivers: Option<(Receiver<AuditEvent>, Receiver<AuditEvent>)>,
}

impl Sink {
    /// What to hand `ApiTokensBuilder::audit`.
    pub fn router(&self) -> impl AuditSink {
        let queues = Arc::clone(&self.queues);
        move |event: AuditEvent| {
            let [lifecycle, failures] = &*queues;
            if event.kind == AuditKind::VerifyFailed {
                failures.record(event);
            } else {
                lifecycle.record(event);
            }
        }
    }

    /// Start the writers (the service looks up the owners of failed verifications), and
    /// return the log, for `GET /api/v1/audit`.
    pub fn start(mut self, tokens: &ApiTokens<DynTokenStore>) -> AuditLog {
        if let Some((lifecycle, failures)) = self.receivers.take() {
            // The store, not the service: the service holds the queues' senders, and a
            // writer holding it would keep its own queue open for ever.
            self.log
                .clone()
                .spawn_writer(0, lifecycle, tokens.store().clone());
            self.log
                .clone()
                .spawn_writer(1, failures, tokens.store().clone());
        }
        self.log
    }
}
