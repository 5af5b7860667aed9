//! [`Scopes`]: what a token may do.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{FieldError, ValidationErrors};
use crate::limits::{MAX_SCOPE_CHARS, MAX_SCOPES};

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
    pub fn parse<I, T>(scopes: I) -> Result<Self, ValidationErrors>
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
            Err(ValidationErrors(errors))
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

    /// The scopes in both sets.
    pub(crate) fn intersection(&self, other: &Scopes) -> Scopes {
        Self::from_sorted(self.iter().filter(|s| other.contains(s)))
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

    /// Scopes already validated, sorted and de-duplicated (copied from another set).
    pub(crate) fn from_sorted<'a>(scopes: impl Iterator<Item = &'a str>) -> Self {
        let scopes: Vec<Box<str>> = scopes.map(Box::from).collect();
        if scopes.is_empty() {
            return Self::default();
        }
        Self(scopes.into())
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
}
