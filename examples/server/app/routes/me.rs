//! `GET /api/v1/me`: the caller and the token in use.

use api_tokens::TokenStore;
use api_tokens::axum::RequireScopes;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::ProfileRead;
use crate::app::json::error;
use crate::app::state::AppState;

/// `GET /api/v1/me` (needs `profile:read`).
pub async fn me<St: TokenStore>(
    State(state): State<AppState<St>>,
    auth: RequireScopes<ProfileRead, St>,
) -> Response {
    let Some(user) = state.users.by_id(auth.owner()) else {
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            "the token's user no longer exists",
        );
    };
    Json(json!({
        "id": user.id,
        "email": user.email,
        "tenant_id": user.tenant,
        "token": {
            "id": auth.token_id().to_string(),
            "name": auth.name(),
            "scopes": auth.scopes().iter().collect::<Vec<_>>(),
        },
    }))
    .into_response()
}
