//! `GET /healthz` (the process is up) and `GET /readyz` (the token store answers within
//! its deadline). Neither needs a token, and neither is limited: `/readyz` probes the store
//! at most once a second however often it is asked (concurrent probes wait for one), so a
//! flood of it cannot drain the database pool.

use std::time::Duration;

use api_tokens::{Error, TokenId};
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::app::json::unavailable;
use crate::app::state::AppState;

/// `GET /healthz`: 200 while the process serves.
pub async fn healthz() -> Response {
    Json(json!({ "status": "ok" })).into_response()
}

/// How long a readiness answer is reused.
const READY_FOR: Duration = Duration::from_secs(1);

/// The last readiness probe: when it finished, and whether the store answered.
pub type Readiness = tokio::sync::Mutex<Option<(std::time::Instant, bool)>>;

/// `GET /readyz`: 200 when a read of the token store is answered within its deadline,
/// else 503 (and a log line saying why); the answer of the last second's probe.
pub async fn readyz(State(state): State<AppState>) -> Response {
    // One probe at a time; the ones that waited reuse its answer.
    let mut last = state.readiness.lock().await;
    let ready = match *last {
        Some((at, ready)) if at.elapsed() < READY_FOR => ready,
        _ => {
            let ready = probe(&state).await;
            *last = Some((std::time::Instant::now(), ready));
            ready
        }
    };
    drop(last);
    if ready {
        Json(json!({ "status": "ready" })).into_response()
    } else {
        unavailable("the token store is unavailable")
    }
}

/// Whether the store answers a read within its deadline.
async fn probe(state: &AppState) -> bool {
    let deadline = state
        .config
        .store_deadline
        .unwrap_or(Duration::from_secs(2));
    // A lookup that finds nothing: it reaches the store and changes nothing.
    let probe = state
        .tokens
        .get("readyz-probe", TokenId::from_bytes([0; 16]));
    match tokio::time::timeout(deadline, probe).await {
        Ok(Ok(_) | Err(Error::NotFound)) => true,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "not ready: the token store failed");
            false
        }
        Err(_) => {
            tracing::warn!(
                deadline_ms = deadline.as_millis() as u64,
                "not ready: the token store did not answer in time"
            );
            false
        }
    }
}
