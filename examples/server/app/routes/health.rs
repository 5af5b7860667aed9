//! `GET /healthz` (the process is up) and `GET /readyz` (the token store answers within
//! its deadline). Neither needs a token, and neither is limited.

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

/// `GET /readyz`: 200 when a read of the token store is answered within its deadline,
/// else 503 (and a log line saying why).
pub async fn readyz(State(state): State<AppState>) -> Response {
    let deadline = state
        .config
        .store_deadline
        .unwrap_or(Duration::from_secs(2));
    // A lookup that finds nothing: it reaches the store and changes nothing.
    let probe = state
        .tokens
        .get("readyz-probe", TokenId::from_bytes([0; 16]));
    match tokio::time::timeout(deadline, probe).await {
        Ok(Ok(_) | Err(Error::NotFound)) => Json(json!({ "status": "ready" })).into_response(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "not ready: the token store failed");
            unavailable("the token store is unavailable")
        }
        Err(_) => {
            tracing::warn!(
                deadline_ms = deadline.as_millis() as u64,
                "not ready: the token store did not answer in time"
            );
            unavailable("the token store is unavailable")
        }
    }
}
