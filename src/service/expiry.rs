//! [`Expiry`]: when a new token expires, resolved against the policy.

use time::{Duration, OffsetDateTime};

use super::policy::TokenPolicy;
use crate::clock::{in_utc, to_stored_precision};
use crate::error::FieldError;

/// When a new token expires.
///
/// ```
/// use api_tokens::{Expiry, TokenPolicy};
/// use time::{Duration, macros::datetime};
///
/// let now = datetime!(2026-01-01 0:00 UTC);
/// let policy = TokenPolicy::default();
/// assert_eq!(Expiry::InDays(30).resolve(&policy, now), Ok(Some(now + Duration::days(30))));
/// assert_eq!(Expiry::PolicyDefault.resolve(&policy, now), Ok(Some(now + Duration::days(365))));
/// let refused = Expiry::InDays(366).resolve(&policy, now).unwrap_err();
/// assert_eq!(refused.field, "expires_in_days");
/// assert!(Expiry::Never.resolve(&policy, now).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Expiry {
    /// The policy's default lifetime (365 days unless configured).
    #[default]
    PolicyDefault,
    /// After this many days (1–365 under the default policy). Rejected fields are named
    /// `expires_in_days`.
    InDays(i64),
    /// After this duration. Rejected fields are named `expires_at`.
    After(Duration),
    /// At this instant. Rejected fields are named `expires_at`.
    At(OffsetDateTime),
    /// Never, if the policy allows it.
    Never,
}

impl Expiry {
    /// The instant a token issued at `now` under `policy` expires (`None` for never), or the
    /// field error that explains why this expiry is not allowed.
    pub fn resolve(
        self,
        policy: &TokenPolicy,
        now: OffsetDateTime,
    ) -> Result<Option<OffsetDateTime>, FieldError> {
        let max = policy.get_max_lifetime();
        let too_long = |field: &str| {
            FieldError::new(
                field,
                format!(
                    "exceeds the maximum lifetime of {} days",
                    max.map_or(0, |m| m.whole_days())
                ),
            )
        };
        let too_far = |field: &str| FieldError::new(field, "is too far in the future");
        match self {
            Self::PolicyDefault => now
                .checked_add(policy.get_default_lifetime())
                .map(Some)
                .ok_or_else(|| too_far("expires_at")),
            Self::Never if policy.allows_never() => Ok(None),
            Self::Never => Err(FieldError::new(
                "expires_at",
                "tokens that never expire are not allowed; give an expiry",
            )),
            Self::InDays(days) => {
                let max_days = policy.max_days();
                if days < 1 || max_days.is_some_and(|m| days > m) {
                    let reason = match max_days {
                        Some(m) => format!("must be between 1 and {m}"),
                        None => "must be at least 1".to_owned(),
                    };
                    return Err(FieldError::new("expires_in_days", reason));
                }
                days.checked_mul(86_400)
                    .map(Duration::seconds)
                    .and_then(|d| now.checked_add(d))
                    .map(Some)
                    .ok_or_else(|| FieldError::new("expires_in_days", "is too large"))
            }
            Self::After(lifetime) => {
                if !lifetime.is_positive() {
                    Err(FieldError::new("expires_at", "must be in the future"))
                } else if max.is_some_and(|m| lifetime > m) {
                    Err(too_long("expires_at"))
                } else {
                    now.checked_add(lifetime)
                        .map(Some)
                        .ok_or_else(|| too_far("expires_at"))
                }
            }
            Self::At(at) => {
                let Some(at) = in_utc(at) else {
                    return Err(too_far("expires_at"));
                };
                let at = to_stored_precision(at);
                if at <= now {
                    Err(FieldError::new("expires_at", "must be in the future"))
                } else if max.is_some_and(|m| at - now > m) {
                    Err(too_long("expires_at"))
                } else {
                    Ok(Some(at))
                }
            }
        }
    }
}
