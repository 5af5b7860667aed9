//! Last uses of cached verifications, written in batches: every interval, one
//! [`TokenStore::record_last_uses`] call (one statement on the SQL stores) carries every
//! token verified since the last batch, however many.

use std::sync::{Arc, Weak};

use super::state::State;
use crate::error::StoreError;
use crate::store::token_store::TokenStore;

/// Write every queued last use in one batch; on failure they are queued again (a lost
/// batch costs last-use precision, never a revocation). Returns how many were written.
pub(crate) async fn flush<S: TokenStore>(store: &S, state: &State) -> Result<u64, StoreError> {
    let uses = state.take_pending();
    if uses.is_empty() {
        return Ok(0);
    }
    let done = store.record_last_uses(&uses).await;
    if done.is_ok() {
        state.counters.last_use_batches.bump();
        state.counters.last_uses_flushed.add(uses.len() as u64);
    }
    state.written(uses, done.is_err());
    done
}

/// Flush every `state.settings.flush_every` for as long as the cache lives.
pub(crate) fn spawn<S: TokenStore>(
    store: Weak<super::Shared<S>>,
    every: std::time::Duration,
) -> tokio::task::AbortHandle {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(shared) = store.upgrade() else {
                return;
            };
            // A failed batch is queued again for the next tick.
            let _ = flush(&shared.inner, &shared.state).await;
            drop::<Arc<_>>(shared);
        }
    })
    .abort_handle()
}
