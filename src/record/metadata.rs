//! [`Metadata`]: a small JSON object a service keeps with a token.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::error::FieldError;
use crate::limits::{MAX_METADATA_BYTES, MAX_METADATA_DEPTH};

/// A small JSON object kept with a token (who it is for, a plan, a note), returned in the
/// [`Principal`](crate::Principal) on every verification and in listings.
///
/// Always an object; at most [`MAX_METADATA_BYTES`] (4 KiB) of compact JSON and
/// [`MAX_METADATA_DEPTH`] (5) levels deep. Kept as its compact text, so cloning is one
/// reference-count increment and a verification copies no JSON tree. It is not a place for
/// secrets: it is shown wherever the token's info is.
///
/// ```
/// use api_tokens::Metadata;
/// use serde_json::json;
///
/// let meta = Metadata::new(json!({ "plan": "pro", "team": { "id": 7 } }))?;
/// assert_eq!(meta.as_str(), r#"{"plan":"pro","team":{"id":7}}"#);
/// assert_eq!(meta.to_value()["team"]["id"], 7);
/// assert!(Metadata::new(json!(["not", "an", "object"])).is_err());
/// # Ok::<(), api_tokens::FieldError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Metadata(Arc<str>);

impl Metadata {
    /// Validate `value` as token metadata; the error names the field `metadata`.
    pub fn new(value: Value) -> Result<Self, FieldError> {
        let refuse = |reason: String| FieldError::new("metadata", reason);
        if !value.is_object() {
            return Err(refuse("must be a JSON object".into()));
        }
        if depth(&value) > MAX_METADATA_DEPTH {
            return Err(refuse(format!(
                "is nested more than {MAX_METADATA_DEPTH} levels deep"
            )));
        }
        let text = value.to_string();
        if text.len() > MAX_METADATA_BYTES {
            return Err(refuse(format!(
                "is larger than {MAX_METADATA_BYTES} bytes of JSON"
            )));
        }
        Ok(Self(text.into()))
    }

    /// Parse and validate metadata from JSON text (as a store keeps it).
    pub fn parse(text: &str) -> Result<Self, FieldError> {
        if text.len() > 4 * MAX_METADATA_BYTES {
            return Err(FieldError::new("metadata", "is too large"));
        }
        let value: Value = serde_json::from_str(text)
            .map_err(|_| FieldError::new("metadata", "is not valid JSON"))?;
        Self::new(value)
    }

    /// The compact JSON text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The JSON value (parsed again; cheap at this size).
    pub fn to_value(&self) -> Value {
        serde_json::from_str(&self.0).unwrap_or(Value::Null)
    }
}

/// How deeply `value` nests (a scalar is 0, an empty object 1).
fn depth(value: &Value) -> usize {
    match value {
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

impl fmt::Debug for Metadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Metadata {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_value().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Metadata {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Self::new(value).map_err(|e| serde::de::Error::custom(e.reason))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bounds_are_enforced() {
        assert!(Metadata::new(json!({})).is_ok());
        assert!(Metadata::new(json!("text")).is_err());
        assert!(Metadata::new(json!(null)).is_err());
        let deep = json!({"a": {"b": {"c": {"d": {"e": 1}}}}});
        assert!(Metadata::new(deep).is_ok(), "five levels");
        let deeper = json!({"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}});
        assert!(Metadata::new(deeper).unwrap_err().reason.contains("nested"));
        let big = json!({ "x": "y".repeat(MAX_METADATA_BYTES) });
        assert!(Metadata::new(big).unwrap_err().reason.contains("larger"));
        assert!(Metadata::parse("{not json").is_err());
        let m = Metadata::parse(r#"{ "b": 1, "a": [1, 2] }"#).unwrap();
        assert_eq!(Metadata::parse(m.as_str()).unwrap(), m, "round trip");
    }
}
