//! `GET /api/v1/me`: the caller and the token in use.

use axum::Json;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::ProfileRead;
use crate::app::caller::Caller;

/// `GET /api/v1/me` (needs `profile:read`).
pub async fn me(caller: Caller<ProfileRead>) -> Response {
    Json(json!({
        "id": caller.user.id,
        "email": caller.user.email,
        "tenant_id": caller.user.tenant,
        "token": {
            "id": caller.token_id().to_string(),
            "name": caller.name(),
            "scopes": caller.scopes().iter().collect::<Vec<_>>(),
            "expires_at": caller.expires_at().map(crate::app::views::rfc3339),
        },
    }))
    .into_response()
}
