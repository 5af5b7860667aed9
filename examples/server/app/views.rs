//! How this API shows a token: the token API's `token_info`.

use api_tokens::{IpAllowlist, RateLimit, Refill, TokenInfo};
use serde::Serialize;
use time::OffsetDateTime;

/// A timestamp as RFC 3339 (`2026-01-01T00:00:00Z`).
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// A token as this API shows it (the token API's `token_info`): never a hash or a secret.
#[derive(Debug, Serialize)]
pub struct TokenView {
    id: String,
    /// The identifier inside the token itself (the DayZero seed's `jti`): with this crate's
    /// format it is the record's id, readable from the plaintext before any lookup.
    jti: String,
    name: String,
    description: Option<String>,
    token_prefix: String,
    token_type: &'static str,
    scopes: Vec<String>,
    created_at: String,
    last_used_at: Option<String>,
    expires_at: Option<String>,
    revoked_at: Option<String>,
    revocation_reason: Option<String>,
    /// When the token was suspended (it verifies again once resumed), if it is.
    suspended_at: Option<String>,
    /// The token that created this one (revoking it revokes this one), if any.
    created_by: Option<String>,
    /// The token that replaced this one by rotation, if any.
    replaced_by: Option<String>,
    /// The caller's JSON object kept with the token, if any.
    metadata: Option<serde_json::Value>,
    /// The addresses the token may be used from, if restricted.
    allowed_ips: Option<IpAllowlist>,
    /// The uses it has left, if they are counted.
    remaining: Option<u64>,
    /// How its uses are refilled, if they are.
    refill: Option<Refill>,
    /// How often it may be used: `{limit, per_seconds}`, if limited.
    rate_limit: Option<RateView>,
}

/// A rate limit as the API shows it (which token's count it shares stays inside).
#[derive(Debug, Serialize)]
struct RateView {
    limit: u32,
    per_seconds: u32,
}

impl From<RateLimit> for RateView {
    fn from(l: RateLimit) -> Self {
        Self {
            limit: l.limit(),
            per_seconds: l.per_seconds(),
        }
    }
}

impl From<&TokenInfo> for TokenView {
    fn from(t: &TokenInfo) -> Self {
        Self {
            id: t.id.to_string(),
            jti: t.id.to_string(),
            name: t.name.to_string(),
            description: t.description.as_deref().map(str::to_owned),
            token_prefix: t.token_prefix.to_string(),
            token_type: "api",
            scopes: t.scopes.iter().map(str::to_owned).collect(),
            created_at: rfc3339(t.created_at),
            last_used_at: t.last_used_at.map(rfc3339),
            expires_at: t.expires_at.map(rfc3339),
            revoked_at: t.revoked_at.map(rfc3339),
            revocation_reason: t.revocation_reason.as_deref().map(str::to_owned),
            suspended_at: t.suspended_at.map(rfc3339),
            created_by: t.created_by.map(|id| id.to_string()),
            replaced_by: t.replaced_by.map(|id| id.to_string()),
            metadata: t.metadata.as_ref().map(api_tokens::Metadata::to_value),
            allowed_ips: t.allowed_ips.clone(),
            remaining: t.usage.map(|u| u.remaining),
            refill: t.usage.and_then(|u| u.refill),
            rate_limit: t.rate_limit.map(RateView::from),
        }
    }
}

/// A token in the admin's listing: its `token_info` with the user and tenant it belongs to.
#[derive(Debug, Serialize)]
pub struct OwnedTokenView {
    owner: String,
    tenant: Option<String>,
    #[serde(flatten)]
    token: TokenView,
}

impl From<&TokenInfo> for OwnedTokenView {
    fn from(t: &TokenInfo) -> Self {
        Self {
            owner: t.owner.to_string(),
            tenant: t.tenant_id.as_deref().map(str::to_owned),
            token: TokenView::from(t),
        }
    }
}
