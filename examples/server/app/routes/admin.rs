//! `/api/v1/admin/…`: what an administrator (a token with `admin:tokens`) can see across
//! users: the tokens about to expire, to send notices (as GitLab mails 7 days and 1 day
//! before).

use api_tokens::{Error, ExpiringRequest, FieldError, ValidationErrors};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AdminTokens;
use crate::app::caller::Caller;
use crate::app::json::failed;
use crate::app::state::AppState;
use crate::app::views::OwnedTokenView;

/// The widest window `within_days` may ask for.
const MAX_WITHIN_DAYS: i64 = 366;

/// `GET /api/v1/admin/tokens/expiring?within_days=&page=&per_page=` (needs
/// `admin:tokens`): the active tokens of every user that expire within `within_days`
/// (1–366, default 7), soonest first, 20 to a page by default (`per_page` 1–100), each with
/// its `owner` and `tenant`: `{data, meta}`.
pub async fn expiring(
    State(state): State<AppState>,
    _admin: Caller<AdminTokens>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    let Ok(Query(pairs)) = query else {
        return Error::from(FieldError::new("query", "is not a valid query string"))
            .into_response();
    };
    let (mut within_days, mut page, mut per_page) = (7_i64, 1_u32, 20_u32);
    let mut details = Vec::new();
    for (key, value) in &pairs {
        match key.as_str() {
            "within_days" => match value.parse() {
                Ok(days) if (1..=MAX_WITHIN_DAYS).contains(&days) => within_days = days,
                _ => details.push(FieldError::new(
                    "within_days",
                    "must be a whole number of days from 1 to 366",
                )),
            },
            "page" => match value.parse() {
                Ok(n) => page = n,
                Err(_) => details.push(FieldError::new(
                    "page",
                    "must be a whole number of 1 or more",
                )),
            },
            "per_page" => match value.parse() {
                Ok(n) => per_page = n,
                Err(_) => details.push(FieldError::new(
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
    let request = ExpiringRequest::within(time::Duration::days(within_days))
        .page(page)
        .per_page(per_page);
    match state.tokens.list_expiring(&request).await {
        Ok(listed) => Json(json!({
            "data": listed.data.iter().map(OwnedTokenView::from).collect::<Vec<_>>(),
            "meta": listed.meta,
        }))
        .into_response(),
        Err(e) => failed(e),
    }
}
