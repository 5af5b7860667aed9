//! Finding the presented token in `Authorization: Bearer <t>` or `X-API-Key: <t>`.

use crate::error::AuthError;

/// The token presented in the raw values of the `Authorization` and `X-API-Key` headers.
///
/// - `Authorization` must be `Bearer <token>`; the scheme is case-insensitive.
/// - `X-API-Key` is the token itself (surrounding spaces ignored, none inside).
/// - Both may be sent if they carry the same token; different tokens are malformed.
/// - Neither is [`AuthError::Missing`]. Bytes that are not visible ASCII are malformed.
///
/// Framework-neutral: pass `headers.get("authorization").map(|v| v.as_bytes())`.
///
/// ```
/// use api_tokens::{presented_token, AuthError};
///
/// assert_eq!(presented_token(Some(b"bearer dz_abc"), None)?, "dz_abc");
/// assert_eq!(presented_token(None, Some(b"dz_abc"))?, "dz_abc");
/// assert!(matches!(presented_token(None, None), Err(AuthError::Missing)));
/// assert!(matches!(
///     presented_token(Some(b"Basic dXNlcjpwYXNz"), None),
///     Err(AuthError::MalformedHeader { .. })
/// ));
/// # Ok::<(), AuthError>(())
/// ```
pub fn presented_token<'a>(
    authorization: Option<&'a [u8]>,
    api_key: Option<&'a [u8]>,
) -> Result<&'a str, AuthError> {
    let from_bearer = authorization.map(bearer).transpose()?;
    let from_key = api_key.map(key).transpose()?;
    match (from_bearer, from_key) {
        (Some(a), Some(b)) if a != b => Err(AuthError::MalformedHeader {
            reason: "Authorization and X-API-Key carry different tokens",
        }),
        (Some(t), _) | (None, Some(t)) => Ok(t),
        (None, None) => Err(AuthError::Missing),
    }
}

fn bearer(value: &[u8]) -> Result<&str, AuthError> {
    let value = visible_ascii(
        value,
        "the Authorization header is empty or not visible ASCII",
    )?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
            let token = token.trim_matches(' ');
            if token.is_empty() || token.contains(' ') {
                Err(AuthError::MalformedHeader {
                    reason: "the Authorization header must be `Bearer <token>`",
                })
            } else {
                Ok(token)
            }
        }
        _ => Err(AuthError::MalformedHeader {
            reason: "the Authorization scheme is not Bearer",
        }),
    }
}

fn key(value: &[u8]) -> Result<&str, AuthError> {
    let value = visible_ascii(value, "the X-API-Key header is empty or not visible ASCII")?;
    if value.contains(' ') {
        return Err(AuthError::MalformedHeader {
            reason: "the X-API-Key header must be the token alone, without spaces",
        });
    }
    Ok(value)
}

/// The value trimmed of spaces and tabs, if it is non-empty printable ASCII.
fn visible_ascii<'a>(value: &'a [u8], reason: &'static str) -> Result<&'a str, AuthError> {
    let value = value.trim_ascii();
    if value.is_empty() || !value.iter().all(|b| (0x20..0x7f).contains(b)) {
        return Err(AuthError::MalformedHeader { reason });
    }
    std::str::from_utf8(value).map_err(|_| AuthError::MalformedHeader { reason })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(r: Result<&str, AuthError>) -> &'static str {
        match r {
            Err(AuthError::MalformedHeader { reason }) => reason,
            other => panic!("expected a malformed header, got {other:?}"),
        }
    }

    #[test]
    fn accepts_both_forms_and_agreeing_pairs() {
        assert_eq!(presented_token(Some(b"Bearer t1"), None).unwrap(), "t1");
        assert_eq!(presented_token(Some(b"BEARER   t1  "), None).unwrap(), "t1");
        assert_eq!(presented_token(None, Some(b" t1 ")).unwrap(), "t1");
        assert_eq!(
            presented_token(Some(b"Bearer t1"), Some(b"t1")).unwrap(),
            "t1"
        );
    }

    #[test]
    fn rejects_bad_headers_with_reasons() {
        assert!(reason(presented_token(Some(b"Bearer t1"), Some(b"t2"))).contains("different"));
        assert!(reason(presented_token(Some(b"Token t1"), None)).contains("scheme"));
        assert!(reason(presented_token(Some(b"Bearer"), None)).contains("scheme"));
        assert!(reason(presented_token(Some(b"Bearer a b"), None)).contains("Bearer <token>"));
        assert!(reason(presented_token(Some(b"Bearer \xff\xfe"), None)).contains("ASCII"));
        assert!(reason(presented_token(None, Some(b""))).contains("X-API-Key"));
        assert!(reason(presented_token(None, Some(b"a\x00b"))).contains("X-API-Key"));
        // Found by fuzzing: a key with a space inside was passed on as the token.
        assert!(reason(presented_token(None, Some(b"/ +"))).contains("without spaces"));
        assert!(matches!(
            presented_token(None, None),
            Err(AuthError::Missing)
        ));
    }
}
