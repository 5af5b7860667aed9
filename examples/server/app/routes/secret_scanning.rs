//! `POST /api/v1/secret-scanning`: GitHub's secret-scanning partner endpoint. GitHub posts
//! the tokens it found in public code; every live one is revoked (reason `leaked`) and the
//! answer labels each match, in the format GitHub expects.

use api_tokens::{LeakOutcome, TokenHash};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::app::github_keys::Refused;
use crate::app::json::{error, failed};
use crate::app::state::AppState;

/// The largest message accepted: GitHub batches matches.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// The most matches one message may carry.
pub const MAX_MATCHES: usize = 1_000;

/// One match, as GitHub sends it.
#[derive(Deserialize)]
struct Found {
    token: Zeroizing<String>,
    #[serde(rename = "type")]
    token_type: String,
    #[allow(dead_code)] // part of GitHub's format; not needed to revoke
    url: Option<String>,
    #[allow(dead_code)]
    source: Option<String>,
}

/// One label, as GitHub expects it: the token as GitHub sent it and its SHA-256 (GitHub
/// reads either). Echoing it tells GitHub nothing it did not send, and a live token of
/// ours is revoked before the answer leaves.
#[derive(Serialize)]
struct Label<'a> {
    token_raw: &'a str,
    token_hash: String,
    token_type: String,
    label: &'static str,
}

/// Check GitHub's signature over the raw body, revoke every live token among the matches
/// (reason `leaked`), and answer `[{token_raw, token_hash, token_type, label}]`:
/// `true_positive` for a token this service issued (live, expired or already revoked),
/// `false_positive` for anything else. A bad or missing signature is 401 and changes nothing; without
/// `SECRET_SCANNING_KEYS` the route is 404.
pub async fn report(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Some(keys) = &state.config.secret_scanning_keys else {
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            "secret scanning is not configured on this server (SECRET_SCANNING_KEYS)",
        );
    };
    let body = match body {
        Ok(body) => body,
        Err(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the message is larger than 1 MiB",
            );
        }
        Err(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "the body could not be read",
            );
        }
    };
    let header = |name: &str| headers.get(name).map(|v| v.as_bytes());
    if let Err(refused) = keys.check(
        header("github-public-key-identifier"),
        header("github-public-key-signature"),
        &body,
    ) {
        metrics::counter!("secret_scanning_refused_total").increment(1);
        tracing::warn!(
            ?refused,
            "refused a secret-scanning message: its signature does not check"
        );
        let message = match refused {
            Refused::Missing => "send Github-Public-Key-Identifier and Github-Public-Key-Signature",
            Refused::UnknownKey => "the key identifier names no key this server trusts",
            Refused::BadSignature => "the signature does not match the body",
        };
        return error(StatusCode::UNAUTHORIZED, "invalid_signature", message);
    }
    let found: Vec<Found> = match serde_json::from_slice(&body) {
        Ok(found) => found,
        Err(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "the body is not a JSON array of {token, type, url, source}",
            );
        }
    };
    if found.len() > MAX_MATCHES {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "send at most 1000 matches in one message",
        );
    }
    // On a task of its own: a request deadline or a client hanging up must not stop a
    // batch half way (each revocation is complete, but the batch would not be).
    let tokens = state.tokens.clone();
    let plaintexts: Vec<Zeroizing<String>> = found.iter().map(|f| f.token.clone()).collect();
    let revoking = tokio::spawn(async move {
        let plaintexts: Vec<&str> = plaintexts.iter().map(|t| t.as_str()).collect();
        tokens.revoke_leaked(&plaintexts).await
    });
    let reports = match revoking.await {
        Ok(Ok(reports)) => reports,
        Ok(Err(e)) => return failed(e),
        Err(_) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "the revocations failed",
            );
        }
    };
    let mut revoked = 0;
    let labels: Vec<Label> = found
        .iter()
        .zip(&reports)
        .map(|(found, report)| {
            if report.outcome == LeakOutcome::WasLive {
                revoked += 1;
                // The id and owner only: never the token.
                tracing::warn!(
                    token_id = ?report.token_id,
                    owner = ?report.owner,
                    successors_revoked = report.successors_revoked,
                    "revoked a token found leaked by GitHub secret scanning"
                );
            }
            Label {
                token_raw: found.token.as_str(),
                token_hash: hex::encode(TokenHash::of_secret(found.token.as_bytes()).as_bytes()),
                token_type: found.token_type.clone(),
                label: if report.outcome.is_ours() {
                    "true_positive"
                } else {
                    "false_positive"
                },
            }
        })
        .collect();
    metrics::counter!("secret_scanning_revoked_total").increment(revoked);
    tracing::info!(
        matches = found.len(),
        revoked,
        "handled a secret-scanning message"
    );
    Json(labels).into_response()
}
