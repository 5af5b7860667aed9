//! What the service tells the outside: audit events to the configured sink, `tracing`
//! events (feature `tracing`) and `metrics` counters and histograms (feature `metrics`).
//! Without those features the hooks compile to nothing. Nothing here ever carries a
//! token, a secret or a hash: only ids, owners, labels and durations.
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `api_tokens_verify_total` | counter | `outcome`: `ok` or [`AuthError::reason`] |
//! | `api_tokens_operations_total` | counter | `operation`, `outcome` |
//! | `api_tokens_store_duration_seconds` | histogram | `operation` |
//! | `api_tokens_rate_limited_total` | counter | |
//! | `api_tokens_usage_exceeded_total` | counter | |
//! | `api_tokens_rate_limiter_errors_total` | counter | |

use std::future::Future;
use std::time::{Duration, Instant};

use super::ApiTokens;
use super::audit::{AuditEvent, AuditKind};
use super::principal::Principal;
use crate::error::{AuthError, Error};
use crate::ratelimit::RateLimitError;
use crate::token::TokenId;

impl<S> ApiTokens<S> {
    /// Whether anything listens: an audit sink, or (with the features) tracing and metrics.
    pub(super) fn observed(&self) -> bool {
        self.inner.audit.is_some() || cfg!(any(feature = "tracing", feature = "metrics"))
    }

    /// A verification's outcome: its metric, its trace event and (failures, and sampled
    /// successes) its audit event. `presented` is only parsed for the token's id.
    pub(super) fn verified(&self, presented: &str, result: &Result<Principal, AuthError>) {
        let outcome = match result {
            Ok(_) => "ok",
            Err(e) => e.reason(),
        };
        #[cfg(feature = "metrics")]
        metrics::counter!("api_tokens_verify_total", "outcome" => outcome).increment(1);
        let id = || match result {
            Ok(who) => Some(who.token_id()),
            Err(_) => self.format().id_of(presented),
        };
        #[cfg(feature = "tracing")]
        match result {
            Ok(who) => tracing::debug!(
                token_id = %who.token_id(),
                owner = who.owner(),
                outcome,
                "api_tokens: verified"
            ),
            Err(AuthError::Store(e)) => tracing::warn!(
                token_id = id().map(tracing::field::display),
                outcome,
                error = %e,
                "api_tokens: verification failed: the store could not answer"
            ),
            Err(_) => tracing::info!(
                token_id = id().map(tracing::field::display),
                outcome,
                "api_tokens: verification refused"
            ),
        }
        if let Some(audit) = &self.inner.audit {
            let now = self.now();
            match result {
                Ok(who) if audit.sample_verified() => audit.sink.record(
                    AuditEvent::new(now, AuditKind::Verified)
                        .token(who.token_id())
                        .owner(who.owner()),
                ),
                Ok(_) => {}
                Err(e) => {
                    let mut event = AuditEvent::new(now, AuditKind::VerifyFailed).code(e.reason());
                    event.token_id = id();
                    audit.sink.record(event);
                }
            }
        }
        let _ = (presented, id, outcome);
    }

    /// Run an operation, then report it: its metric, a span around it and an event after
    /// it (feature `tracing`: operation, outcome, token id, owner, store latency), and on
    /// success its audit events.
    pub(super) async fn observe_op<T>(
        &self,
        operation: &'static str,
        token_id: Option<TokenId>,
        work: impl Future<Output = Result<T, Error>>,
        events: impl FnOnce(&T) -> Vec<AuditEvent>,
    ) -> Result<T, Error> {
        if !self.observed() {
            return work.await;
        }
        let started = Instant::now();
        #[cfg(feature = "tracing")]
        let work = tracing::Instrument::instrument(
            work,
            tracing::info_span!(
                "api_tokens",
                operation,
                token_id = token_id.map(tracing::field::display)
            ),
        );
        let result = work.await;
        let took = started.elapsed();
        let events = result.as_ref().map(events).unwrap_or_default();
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.code(),
        };
        #[cfg(feature = "metrics")]
        {
            metrics::counter!("api_tokens_operations_total", "operation" => operation, "outcome" => outcome)
                .increment(1);
            metrics::histogram!("api_tokens_store_duration_seconds", "operation" => operation)
                .record(took);
        }
        #[cfg(feature = "tracing")]
        {
            let first = events.first();
            let token_id = first.and_then(|e| e.token_id).or(token_id);
            let owner = first.and_then(|e| e.owner.as_deref());
            let store_ms = took.as_secs_f64() * 1e3;
            match &result {
                Err(e) if e.status() >= 500 => tracing::warn!(
                    operation,
                    outcome,
                    token_id = token_id.map(tracing::field::display),
                    store_ms,
                    error = %e,
                    "api_tokens: operation failed"
                ),
                _ => tracing::info!(
                    operation,
                    outcome,
                    token_id = token_id.map(tracing::field::display),
                    owner,
                    store_ms,
                    "api_tokens: operation"
                ),
            }
        }
        let _ = (operation, outcome, took, token_id);
        if let Some(audit) = &self.inner.audit {
            for event in events {
                audit.sink.record(event);
            }
        }
        result
    }

    /// The store's latency for a verification that waited for it.
    pub(super) fn store_waited(&self, took: Duration) {
        #[cfg(feature = "metrics")]
        metrics::histogram!("api_tokens_store_duration_seconds", "operation" => "verify")
            .record(took);
        let _ = took;
    }
}

/// A request refused by a rate limit.
pub(super) fn rate_limited() {
    #[cfg(feature = "metrics")]
    metrics::counter!("api_tokens_rate_limited_total").increment(1);
}

/// A request refused for having no uses left.
pub(super) fn usage_exceeded() {
    #[cfg(feature = "metrics")]
    metrics::counter!("api_tokens_usage_exceeded_total").increment(1);
}

/// A rate limiter that could not decide.
pub(super) fn limiter_failed(e: &RateLimitError) {
    #[cfg(feature = "metrics")]
    metrics::counter!("api_tokens_rate_limiter_errors_total").increment(1);
    #[cfg(feature = "tracing")]
    tracing::warn!(error = %e, "api_tokens: the rate limiter could not decide");
    let _ = e;
}
