//! Input checks shared by every entry point, at the bottom of the crate so that records,
//! stores and the service all apply the same rules.
//!
//! Two kinds of text:
//!
//! - **identifiers** (owner, tenant): compared byte for byte, so never altered. Surrounding
//!   whitespace, control characters and invisible format characters are refused, not
//!   trimmed: `"\u{3000}carol "` would otherwise be stored as one owner and looked up as
//!   another;
//! - **display text** (name, description, reason): trimmed, and refused if it holds control
//!   characters or invisible format characters (bidi overrides such as U+202E, which make
//!   `"\u{202e}exe.txt"` read as `txt.exe`, and zero-width characters).

use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

use crate::error::{Error, FieldError, ValidationErrors};
use crate::limits::{MAX_PRINCIPAL_CHARS, MAX_REASON_CHARS};

/// Unicode's `Default_Ignorable_Code_Point` ranges (DerivedCoreProperties.txt): characters
/// that render as nothing, including some outside category Cf (the combining grapheme
/// joiner U+034F, variation selectors U+FE00–FE0F, the Hangul fillers U+115F, U+3164).
const DEFAULT_IGNORABLE: &[(char, char)] = &[
    ('\u{00AD}', '\u{00AD}'),
    ('\u{034F}', '\u{034F}'),
    ('\u{061C}', '\u{061C}'),
    ('\u{115F}', '\u{1160}'),
    ('\u{17B4}', '\u{17B5}'),
    ('\u{180B}', '\u{180F}'),
    ('\u{200B}', '\u{200F}'),
    ('\u{202A}', '\u{202E}'),
    ('\u{2060}', '\u{206F}'),
    ('\u{3164}', '\u{3164}'),
    ('\u{FE00}', '\u{FE0F}'),
    ('\u{FEFF}', '\u{FEFF}'),
    ('\u{FFA0}', '\u{FFA0}'),
    ('\u{FFF0}', '\u{FFF8}'),
    ('\u{1BCA0}', '\u{1BCA3}'),
    ('\u{1D173}', '\u{1D17A}'),
    ('\u{E0000}', '\u{E0FFF}'),
];

/// Whether `c` is an invisible format character (general category Cf): bidi controls,
/// zero-width spaces and joiners, the BOM, soft hyphens and the like. Refused in display
/// text, where an emoji's variation selector (U+FE0F) is still welcome.
fn is_format(c: char) -> bool {
    // No ASCII character is one (tested below): most text never reaches the table.
    !c.is_ascii() && c.general_category() == GeneralCategory::Format
}

/// Whether `c` renders as nothing: a format character or any other default-ignorable code
/// point. Refused in identifiers, where `"carol\u{FE0F}"` must not pass for `"carol"`.
fn is_invisible(c: char) -> bool {
    !c.is_ascii()
        && (is_format(c)
            || DEFAULT_IGNORABLE
                .iter()
                .any(|&(lo, hi)| (lo..=hi).contains(&c)))
}

/// Whether every byte of `text` is printable ASCII (a space through `~`): no control,
/// format or invisible character, one character per byte, and a space the only whitespace.
/// Most owners, tenants and names are, and skip the per-character checks.
fn printable_ascii(text: &str) -> bool {
    text.bytes().all(|b| matches!(b, b' '..=b'~'))
}

/// Whether the identifier `value` is printable ASCII, not blank, within 255 characters and
/// neither starting nor ending with a space: accepted without the per-character checks.
fn plain_identifier(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= MAX_PRINCIPAL_CHARS
        && !value.starts_with(' ')
        && !value.ends_with(' ')
        && printable_ascii(value)
}

/// Why the identifier `value` is refused, if it is.
fn identifier_refusal(value: &str) -> Option<&'static str> {
    if value.trim().is_empty() {
        Some("is required and must not be blank")
    } else if value.chars().count() > MAX_PRINCIPAL_CHARS {
        Some("is longer than 255 characters")
    } else if value.starts_with(char::is_whitespace) || value.ends_with(char::is_whitespace) {
        Some("must not start or end with whitespace")
    } else if value.chars().any(char::is_control) {
        Some("contains control characters")
    } else if value.chars().any(is_invisible) {
        Some("contains invisible characters (bidi or zero-width controls, fillers or selectors)")
    } else {
        None
    }
}

/// Check an identifier (owner, tenant): 1..=255 characters, taken exactly as given.
pub(crate) fn check_identifier(field: &str, value: &str, errors: &mut Vec<FieldError>) {
    if plain_identifier(value) {
        return;
    }
    if let Some(reason) = identifier_refusal(value) {
        errors.push(FieldError::new(field, reason));
    }
}

/// [`check_identifier`] for one value, as an [`Error`].
pub(crate) fn identifier(field: &str, value: &str) -> Result<(), Error> {
    let mut errors = Vec::new();
    check_identifier(field, value, &mut errors);
    match errors.is_empty() {
        true => Ok(()),
        false => Err(Error::Invalid(ValidationErrors(errors))),
    }
}

/// Whether the trimmed display text `trimmed` is printable ASCII, not blank and within
/// `max` characters: accepted without the per-character checks.
fn plain_text(trimmed: &str, max: usize) -> bool {
    !trimmed.is_empty() && trimmed.len() <= max && printable_ascii(trimmed)
}

/// Check a required single-line display text (a name): trimmed, 1..=max characters, no
/// control or format characters. Returns the trimmed text.
pub(crate) fn check_text<'a>(
    field: &str,
    value: &'a str,
    max: usize,
    errors: &mut Vec<FieldError>,
) -> &'a str {
    let trimmed = value.trim();
    if !plain_text(trimmed, max)
        && let Some(refused) = text_refusal(field, trimmed, max)
    {
        errors.push(refused);
    }
    trimmed
}

/// Why the trimmed display text `trimmed` is refused, if it is.
fn text_refusal(field: &str, trimmed: &str, max: usize) -> Option<FieldError> {
    let reason = if trimmed.is_empty() {
        "is required and must not be blank".into()
    } else if trimmed.chars().count() > max {
        format!("is longer than {max} characters")
    } else if trimmed.chars().any(char::is_control) {
        "contains control characters".into()
    } else if trimmed.chars().any(is_format) {
        "contains invisible formatting characters (bidi or zero-width controls)".into()
    } else {
        return None;
    };
    Some(FieldError::new(field, reason))
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
    } else if trimmed.chars().any(is_format) {
        errors.push(FieldError::new(
            field,
            "contains invisible formatting characters (bidi or zero-width controls)",
        ));
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

    fn refused(value: &str) -> bool {
        let mut e = Vec::new();
        check_identifier("owner", value, &mut e);
        !e.is_empty()
    }

    #[test]
    fn no_ascii_character_is_invisible_so_the_fast_path_is_exact() {
        for c in (0u8..128).map(char::from) {
            assert_ne!(c.general_category(), GeneralCategory::Format, "{c:?}");
            assert!(
                !DEFAULT_IGNORABLE
                    .iter()
                    .any(|&(lo, hi)| (lo..=hi).contains(&c)),
                "{c:?}"
            );
        }
    }

    #[test]
    fn the_printable_ascii_shortcut_accepts_only_what_the_full_checks_accept() {
        // Every string of up to three characters over an alphabet with each kind of
        // boundary: printable ASCII, the space, other whitespace, controls, DEL, non-ASCII
        // letters, spaces and invisible characters; and the length limits.
        let alphabet = [
            "a", "~", " ", "\t", "\n", "\u{0b}", "\u{1f}", "\u{7f}", "\u{a0}", "\u{3000}", "é",
            "名", "\u{200b}", "\u{202e}", "\u{fe0f}",
        ];
        let mut samples = vec![String::new()];
        for _ in 0..3 {
            let longer: Vec<String> = samples
                .iter()
                .flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}")))
                .collect();
            samples.extend(longer);
        }
        for n in [254, 255, 256] {
            samples.push("x".repeat(n));
            samples.push(format!("{} ", "x".repeat(n - 1)));
        }
        let mut shortcuts = (0, 0);
        for s in &samples {
            if plain_identifier(s) {
                shortcuts.0 += 1;
                assert_eq!(identifier_refusal(s), None, "{s:?}");
            }
            let trimmed = s.trim();
            if plain_text(trimmed, MAX_PRINCIPAL_CHARS) {
                shortcuts.1 += 1;
                let refused = text_refusal("name", trimmed, MAX_PRINCIPAL_CHARS);
                assert!(refused.is_none(), "{s:?}: {refused:?}");
            }
        }
        assert!(shortcuts.0 > 20 && shortcuts.1 > 100, "{shortcuts:?}");
    }

    #[test]
    fn identifiers_are_refused_rather_than_altered() {
        for good in ["carol", "user_42", "Acme Corp", "名前", "a"] {
            assert!(!refused(good), "{good:?}");
        }
        for bad in [
            "",
            "   ",
            "\u{3000}carol ",
            " carol",
            "carol\t",
            "ca\u{0}rol",
            "ca\u{7}rol",
            // Invisible, though not in category Cf (found in review).
            "carol\u{FE0F}",
            "car\u{034F}ol",
            "\u{3164}carol",
            "carol\u{115F}",
            "ca\u{200b}rol",
            "\u{202e}lorac",
            "\u{feff}carol",
            &"x".repeat(256),
        ] {
            assert!(refused(bad), "{bad:?}");
        }
    }

    #[test]
    fn text_checks() {
        let mut e = Vec::new();
        assert_eq!(check_text("name", "  ci  ", 255, &mut e), "ci");
        assert!(e.is_empty());
        check_text("name", "   ", 255, &mut e);
        check_text("name", "a\u{0}b", 255, &mut e);
        check_text("name", &"é".repeat(256), 255, &mut e);
        check_text("name", "\u{202e}exe.txt", 255, &mut e);
        check_text("name", "zero\u{200b}width", 255, &mut e);
        assert_eq!(e.len(), 5);
        // An emoji's variation selector is fine in display text.
        assert_eq!(
            check_text("name", "deploy \u{2764}\u{FE0F}", 255, &mut e),
            "deploy \u{2764}\u{FE0F}"
        );
        assert_eq!(e.len(), 5);
        let mut e = Vec::new();
        check_prose("description", "line one\nline two", 1024, &mut e);
        assert!(e.is_empty());
        check_prose("description", "bell\u{7}", 1024, &mut e);
        check_prose("description", "\u{2066}isolate", 1024, &mut e);
        assert_eq!(e.len(), 2);
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
        assert!(check_reason(Some("\u{202e}dekael")).is_err());
    }
}
