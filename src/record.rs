//! What a store keeps of a token ([`TokenRecord`]), the view that can be shown to users
//! ([`TokenInfo`]), and scopes.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;

use crate::error::FieldError;
use crate::hash::TokenHash;
use crate::token::TokenId;

/// Longest token name, in characters.
pub const MAX_NAME_CHARS: usize = 255;
/// Longest token description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 1024;
/// Longest owner or tenant id, in characters.
pub const MAX_PRINCIPAL_CHARS: usize = 255;
/// Longest revocation reason, in characters.
pub const MAX_REASON_CHARS: usize = 1024;
/// Longest scope, in characters.
pub const MAX_SCOPE_CHARS: usize = 128;
/// Most scopes on one token.
pub const MAX_SCOPES: usize = 64;

/// Everything a store keeps about one token. It never holds the token itself, only the
/// SHA-256 of its secret.
///
/// Owner, tenant, scopes and prefix are shared (`Arc`), so a store in memory keeps one copy
/// of each for all the tokens that have it. Timestamps are UTC with microsecond precision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
// `repr(C)` keeps what verification reads (id, hash, revocation, expiry, last use) together at
// the start, next to an `Arc`'s counters: a record in memory costs one or two cache lines to
// check, not four.
#[repr(C)]
pub struct TokenRecord {
    /// The public id (also embedded in the token).
    pub id: TokenId,
    /// SHA-256 of the secret.
    pub hash: TokenHash,
    /// When it was revoked; `None` while not revoked.
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    /// When it stops working; `None` for never.
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// When it last verified (kept to within the last-use interval).
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    /// When it was issued.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// The user or organisation the token acts for.
    pub owner: Arc<str>,
    /// The tenant (business, workspace) the token is confined to, if any.
    pub tenant: Option<Arc<str>>,
    /// What the token may do.
    pub scopes: Scopes,
    /// The issuer prefix the token starts with (`dz`); see
    /// [`display_prefix`](Self::display_prefix).
    pub prefix: Arc<str>,
    /// Human-readable name (`deploy-script`).
    pub name: Box<str>,
    /// Optional longer description.
    pub description: Option<Box<str>>,
    /// Why it was revoked, if a reason was given.
    pub revocation_reason: Option<Box<str>>,
}

impl TokenRecord {
    /// The first characters of the token, safe to show in lists (`dz_1a2b3c4d`): the prefix
    /// and 8 characters of the public id.
    pub fn display_prefix(&self) -> String {
        crate::token::display_prefix(&self.prefix, &self.id)
    }

    /// Whether the token has expired at `now`.
    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// Whether the token is revoked.
    pub fn is_revoked(&self) -> bool {
        self.revoked_at.is_some()
    }

    /// Whether the token would verify at `now` (neither revoked nor expired).
    pub fn is_active(&self, now: OffsetDateTime) -> bool {
        !self.is_revoked() && !self.is_expired(now)
    }

    /// The view of this record that may be shown to users: everything but the hash.
    pub fn info(&self) -> TokenInfo {
        TokenInfo::from(self)
    }
}

/// A token as users see it in a list: everything but the hash, which this type cannot carry.
///
/// Serialises with the field names of the seeds' APIs (`token_prefix`, `last_used_at`,
/// `revocation_reason`, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    /// The public id.
    pub id: TokenId,
    /// The owner.
    pub owner: Arc<str>,
    /// The tenant, if any.
    pub tenant_id: Option<Arc<str>>,
    /// Human-readable name.
    pub name: Box<str>,
    /// Optional description.
    pub description: Option<Box<str>>,
    /// The first characters of the token.
    pub token_prefix: String,
    /// What the token may do.
    pub scopes: Scopes,
    /// When it was issued.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it last verified.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    /// When it stops working; `None` for never.
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// When it was revoked.
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    /// Why it was revoked.
    pub revocation_reason: Option<Box<str>>,
}

impl From<&TokenRecord> for TokenInfo {
    fn from(r: &TokenRecord) -> Self {
        Self {
            id: r.id,
            owner: r.owner.clone(),
            tenant_id: r.tenant.clone(),
            name: r.name.clone(),
            description: r.description.clone(),
            token_prefix: r.display_prefix(),
            scopes: r.scopes.clone(),
            created_at: r.created_at,
            last_used_at: r.last_used_at,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
            revocation_reason: r.revocation_reason.clone(),
        }
    }
}

/// A token's scopes: a sorted set of strings such as `tokens:read` or `user:api-token:write`.
///
/// A scope is 1–128 characters of `[A-Za-z0-9_:.*/-]`. Matching is exact; a `*` has no
/// special meaning to this crate. Cloning is one reference-count increment.
///
/// ```
/// use api_tokens::Scopes;
///
/// let scopes = Scopes::parse(["tokens:write", "profile:read", "tokens:write"])?;
/// assert_eq!(scopes.iter().collect::<Vec<_>>(), ["profile:read", "tokens:write"]);
/// assert!(scopes.contains("profile:read"));
/// assert!(Scopes::parse(["has space"]).is_err());
/// # Ok::<(), api_tokens::ValidationErrors>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Scopes(Arc<[Box<str>]>);

impl Default for Scopes {
    /// No scopes. All empty sets share one allocation.
    fn default() -> Self {
        static EMPTY: std::sync::OnceLock<Arc<[Box<str>]>> = std::sync::OnceLock::new();
        Self(Arc::clone(EMPTY.get_or_init(|| Arc::from([]))))
    }
}

impl Scopes {
    /// Validate, sort and de-duplicate scopes.
    pub fn parse<I, T>(scopes: I) -> Result<Self, crate::ValidationErrors>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        let mut errors = Vec::new();
        let mut out: Vec<Box<str>> = Vec::new();
        for (i, s) in scopes.into_iter().enumerate() {
            let s = s.as_ref();
            match check_scope(s) {
                Ok(()) => out.push(s.into()),
                Err(reason) => errors.push(FieldError::new(format!("scopes[{i}]"), reason)),
            }
        }
        out.sort_unstable();
        out.dedup();
        if out.len() > MAX_SCOPES {
            errors.push(FieldError::new(
                "scopes",
                format!("has more than {MAX_SCOPES} scopes"),
            ));
        }
        if errors.is_empty() {
            Ok(if out.is_empty() {
                Self::default()
            } else {
                Self(out.into())
            })
        } else {
            Err(crate::ValidationErrors(errors))
        }
    }

    /// Whether `scope` is one of these.
    pub fn contains(&self, scope: &str) -> bool {
        self.0.binary_search_by(|s| (**s).cmp(scope)).is_ok()
    }

    /// Whether every one of `other` is one of these.
    pub fn contains_all(&self, other: &Scopes) -> bool {
        other.iter().all(|s| self.contains(s))
    }

    /// The scopes, sorted.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.0.iter().map(|s| &**s)
    }

    /// How many scopes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many values share this set (for a store that keeps one copy of each set).
    pub(crate) fn ref_count(&self) -> usize {
        Arc::strong_count(&self.0)
    }
}

fn check_scope(s: &str) -> Result<(), &'static str> {
    if s.is_empty() {
        Err("is empty")
    } else if s.len() > MAX_SCOPE_CHARS {
        Err("is longer than 128 characters")
    } else if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_:.*/-".contains(&b))
    {
        Err("has a character outside [A-Za-z0-9_:.*/-]")
    } else {
        Ok(())
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl Serialize for Scopes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Scopes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Vec::<String>::deserialize(deserializer)?;
        Scopes::parse(raw).map_err(serde::de::Error::custom)
    }
}

/// Check a required free-text field: trimmed, 1..=max characters, no control characters.
/// Returns the trimmed text.
pub(crate) fn check_text<'a>(
    field: &str,
    value: &'a str,
    max: usize,
    errors: &mut Vec<FieldError>,
) -> &'a str {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        errors.push(FieldError::new(field, "is required and must not be blank"));
    } else if trimmed.chars().count() > max {
        errors.push(FieldError::new(
            field,
            format!("is longer than {max} characters"),
        ));
    } else if trimmed.chars().any(|c| c.is_control()) {
        errors.push(FieldError::new(field, "contains control characters"));
    }
    trimmed
}

/// Like [`check_text`] but allows line breaks and tabs (for descriptions and reasons).
pub(crate) fn check_prose<'a>(
    field: &str,
    value: &'a str,
    max: usize,
    errors: &mut Vec<FieldError>,
) -> &'a str {
    let trimmed = value.trim();
    if trimmed.chars().count() > max {
        errors.push(FieldError::new(
            field,
            format!("is longer than {max} characters"),
        ));
    } else if trimmed
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        errors.push(FieldError::new(field, "contains control characters"));
    }
    trimmed
}

/// Validate an optional reason (for revocation) into the stored form.
pub(crate) fn check_reason(reason: Option<&str>) -> Result<Option<Box<str>>, crate::Error> {
    let Some(reason) = reason else {
        return Ok(None);
    };
    let mut errors = Vec::new();
    let reason = check_prose("reason", reason, MAX_REASON_CHARS, &mut errors);
    if !errors.is_empty() {
        return Err(crate::Error::Invalid(crate::ValidationErrors(errors)));
    }
    Ok((!reason.is_empty()).then(|| Box::from(reason)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_validate_each_entry_by_index() {
        let err = Scopes::parse(["ok:scope", "", "bad scope", &"x".repeat(129)]).unwrap_err();
        let fields: Vec<_> = err.fields().iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["scopes[1]", "scopes[2]", "scopes[3]"]);
        let too_many: Vec<String> = (0..65).map(|i| format!("s{i}")).collect();
        assert!(Scopes::parse(&too_many).unwrap_err().has("scopes"));
    }

    #[test]
    fn scopes_serde_round_trip_and_reject_bad_input() {
        let s = Scopes::parse(["b", "a"]).unwrap();
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, r#"["a","b"]"#);
        assert_eq!(serde_json::from_str::<Scopes>(&json).unwrap(), s);
        assert!(serde_json::from_str::<Scopes>(r#"["a b"]"#).is_err());
    }

    #[test]
    fn text_checks() {
        let mut e = Vec::new();
        assert_eq!(check_text("name", "  ci  ", 255, &mut e), "ci");
        assert!(e.is_empty());
        check_text("name", "   ", 255, &mut e);
        check_text("name", "a\u{0}b", 255, &mut e);
        check_text("name", &"é".repeat(256), 255, &mut e);
        assert_eq!(e.len(), 3);
        let mut e = Vec::new();
        check_prose("description", "line one\nline two", 1024, &mut e);
        assert!(e.is_empty());
        check_prose("description", "bell\u{7}", 1024, &mut e);
        assert_eq!(e.len(), 1);
    }
}
