//! `GET /api/v1/audit`: the caller's own audit trail, newest first.

use api_tokens::{Error, FieldError, ValidationErrors};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::TokensRead;
use crate::app::caller::Caller;
use crate::app::json::error;
use crate::app::state::AppState;

/// `GET /api/v1/audit?page=&per_page=` (needs `tokens:read`): the events of the caller's
/// user (issued, rotated, revoked with reason, revoke-all, edited, suspended, resumed, and
/// failed verifications of its tokens with their code), newest first, 20 to a page by
/// default (`per_page` 1–100): `{data: [{at, event, token_id, reason?, code?}], meta}`.
pub async fn list(
    State(state): State<AppState>,
    auth: Caller<TokensRead>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    let Some(log) = &state.audit else {
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            "this server keeps no audit trail",
        );
    };
    let Ok(Query(pairs)) = query else {
        return Error::from(FieldError::new("query", "is not a valid query string"))
            .into_response();
    };
    let (mut page, mut per_page) = (1_u32, 20_u32);
    let mut details = Vec::new();
    for (key, value) in &pairs {
        match key.as_str() {
            "page" => match value.parse() {
                Ok(n) if n >= 1 => page = n,
                _ => details.push(FieldError::new(
                    "page",
                    "must be a whole number of 1 or more",
                )),
            },
            "per_page" => match value.parse() {
                Ok(n) if (1..=100).contains(&n) => per_page = n,
                _ => details.push(FieldError::new(
                    "per_page",
                    "must be a whole number from 1 to 100",
                )),
            },
            _ => {}
        }
    }
    if !details.is_empty() {
        return Error::Invalid(ValidationErrors(details)).into_response();
    }
    match log.list(auth.owner(), page, per_page).await {
        Ok((data, total)) => Json(json!({
            "data": data,
            "meta": { "page": page, "per_page": per_page, "total": total },
        }))
        .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "could not read the audit trail");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the audit trail could not be read; try again later",
            )
        }
    }
}
