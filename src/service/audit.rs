//! Audit events: what happened to which token, for a security team's trail.
//!
//! Give the service an [`AuditSink`] ([`ApiTokensBuilder::audit`](crate::ApiTokensBuilder::audit));
//! it receives an [`AuditEvent`] for every issue, rotation, revocation (with its reason),
//! revoke-all, purge, edit, suspension and resumption, and for every failed verification
//! (with its reason code and the token's id when the token was well formed). Successful
//! verifications are sampled ([`AuditVerified`]), off by default. An event never holds a
//! token, a secret or a hash.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use time::OffsetDateTime;

use crate::token::TokenId;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuditKind {
    /// A token was issued.
    Issued,
    /// A token was rotated; the event's token is the old one.
    Rotated,
    /// A token was revoked (the reason is the revocation's).
    Revoked,
    /// Every active token of an owner was revoked.
    RevokedAll,
    /// Long-dead records were deleted.
    Purged,
    /// A token was edited.
    Edited,
    /// A token was suspended.
    Suspended,
    /// A suspended token was resumed.
    Resumed,
    /// A token verified (only when [`AuditVerified`] samples it).
    Verified,
    /// A presented token failed verification (the code says why).
    VerifyFailed,
}

impl AuditKind {
    /// The kind as a stable label (`issued`, `verify_failed`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Issued => "issued",
            Self::Rotated => "rotated",
            Self::Revoked => "revoked",
            Self::RevokedAll => "revoked_all",
            Self::Purged => "purged",
            Self::Edited => "edited",
            Self::Suspended => "suspended",
            Self::Resumed => "resumed",
            Self::Verified => "verified",
            Self::VerifyFailed => "verify_failed",
        }
    }
}

/// One audit event. Never a token, a secret or a hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct AuditEvent {
    /// When it happened.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// What happened.
    pub kind: AuditKind,
    /// The token it concerns, when there is one (for a failed verification: the id the
    /// presented token names, if it was well formed, whether or not such a token exists).
    pub token_id: Option<TokenId>,
    /// The owner (none for a failed verification, whose token may not exist: look the
    /// owner up by `token_id` if you need it).
    pub owner: Option<Arc<str>>,
    /// A revocation's reason, a rotation's successor (as text), or a count (revoke-all,
    /// purge).
    pub reason: Option<Box<str>>,
    /// For a failed verification, why: [`AuthError::reason`](crate::AuthError::reason)
    /// (`invalid`, `expired`, `revoked`, `rate_limited`, …).
    pub code: Option<&'static str>,
}

impl AuditEvent {
    pub(crate) fn new(at: OffsetDateTime, kind: AuditKind) -> Self {
        Self {
            at,
            kind,
            token_id: None,
            owner: None,
            reason: None,
            code: None,
        }
    }

    pub(crate) fn token(mut self, id: TokenId) -> Self {
        self.token_id = Some(id);
        self
    }

    pub(crate) fn owner(mut self, owner: impl Into<Arc<str>>) -> Self {
        self.owner = Some(owner.into());
        self
    }

    pub(crate) fn reason(mut self, reason: Option<impl Into<Box<str>>>) -> Self {
        self.reason = reason.map(Into::into);
        self
    }

    pub(crate) fn code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }
}

/// Where audit events go. It is called on the request's path, so it must not block:
/// hand the event to a queue (as `ChannelSink`, feature `audit`, does) and write it
/// elsewhere.
pub trait AuditSink: Send + Sync + 'static {
    /// Take one event.
    fn record(&self, event: AuditEvent);
}

impl<F: Fn(AuditEvent) + Send + Sync + 'static> AuditSink for F {
    fn record(&self, event: AuditEvent) {
        self(event)
    }
}

/// Which successful verifications become [`AuditKind::Verified`] events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuditVerified {
    /// None (the default): a verification is the hot path, and its failures are audited
    /// anyway.
    #[default]
    Off,
    /// One in every `n` (counted across the service).
    OneIn(u64),
    /// Every one.
    All,
}

/// The service's sink and sampling.
pub(crate) struct Audit {
    pub(crate) sink: Arc<dyn AuditSink>,
    pub(crate) verified: AuditVerified,
    pub(crate) seen: AtomicU64,
}

impl Audit {
    /// Whether this successful verification is sampled.
    pub(crate) fn sample_verified(&self) -> bool {
        match self.verified {
            AuditVerified::Off => false,
            AuditVerified::All => true,
            AuditVerified::OneIn(n) => self
                .seen
                .fetch_add(1, Ordering::Relaxed)
                .is_multiple_of(n.max(1)),
        }
    }
}

#[cfg(feature = "audit")]
pub use channel::ChannelSink;

#[cfg(feature = "audit")]
mod channel {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use tokio::sync::mpsc;

    use super::{AuditEvent, AuditSink};

    /// An [`AuditSink`] that queues events on a bounded Tokio channel, for a task of yours
    /// to write (to a table, a log, a SIEM). A full queue drops the event and counts it
    /// ([`dropped`](Self::dropped)) rather than slowing requests down.
    ///
    /// ```
    /// use api_tokens::{ApiTokens, AuditKind, ChannelSink, MemoryStore, NewToken};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let (sink, mut events) = ChannelSink::new(1024);
    /// let tokens = ApiTokens::builder(MemoryStore::new(), "dz").audit(sink).build()?;
    /// tokens.issue(NewToken::new("u1", "ci")).await?;
    /// let event = events.recv().await.unwrap();
    /// assert_eq!((event.kind, event.owner.as_deref()), (AuditKind::Issued, Some("u1")));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    #[derive(Debug, Clone)]
    pub struct ChannelSink {
        sender: mpsc::Sender<AuditEvent>,
        dropped: Arc<AtomicU64>,
    }

    impl ChannelSink {
        /// A sink holding at most `capacity` events not yet received, and its receiver.
        pub fn new(capacity: usize) -> (Self, mpsc::Receiver<AuditEvent>) {
            let (sender, receiver) = mpsc::channel(capacity.max(1));
            let sink = Self {
                sender,
                dropped: Arc::default(),
            };
            (sink, receiver)
        }

        /// Events dropped because the queue was full (or its receiver gone).
        pub fn dropped(&self) -> u64 {
            self.dropped.load(Ordering::Relaxed)
        }
    }

    impl AuditSink for ChannelSink {
        fn record(&self, event: AuditEvent) {
            if self.sender.try_send(event).is_err() {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
