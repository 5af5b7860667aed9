//! Input checks shared by every entry point, at the bottom of the crate so that records,
//! stores and the service all apply the same rules.

use crate::error::{Error, FieldError, ValidationErrors};
use crate::limits::MAX_REASON_CHARS;

/// Check a required single-line text field: trimmed, 1..=max characters, no control
/// characters. Returns the trimmed text.
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
    } else if trimmed.chars().any(char::is_control) {
        errors.push(FieldError::new(field, "contains control characters"));
    }
    trimmed
}

/// Like [`check_text`] but optional and allowing line breaks and tabs (for descriptions
/// and reasons).
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

/// Validate an optional reason (for revocation) into the stored form: `None` when blank.
pub(crate) fn check_reason(reason: Option<&str>) -> Result<Option<Box<str>>, Error> {
    let Some(reason) = reason else {
        return Ok(None);
    };
    let mut errors = Vec::new();
    let reason = check_prose("reason", reason, MAX_REASON_CHARS, &mut errors);
    if !errors.is_empty() {
        return Err(Error::Invalid(ValidationErrors(errors)));
    }
    Ok((!reason.is_empty()).then(|| Box::from(reason)))
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn reasons_are_trimmed_and_blank_is_none() {
        assert_eq!(
            check_reason(Some("  leaked ")).unwrap().as_deref(),
            Some("leaked")
        );
        assert_eq!(check_reason(Some("   ")).unwrap(), None);
        assert_eq!(check_reason(None).unwrap(), None);
        assert!(check_reason(Some("a\u{0}b")).is_err());
    }
}
