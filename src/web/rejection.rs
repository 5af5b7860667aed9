//! [`Rejection`]: the answer to a request that failed, as status, headers and JSON body,
//! decided once for every framework.

use std::borrow::Cow;
use std::fmt;

use serde::Serialize;

use crate::error::{AuthError, Error, FieldError};

/// The one message every 401 carries, so a caller cannot tell a missing, malformed,
/// unknown, revoked or expired token apart.
pub(crate) const UNAUTHORIZED_MESSAGE: &str = "a valid API token is required: send it as `Authorization: Bearer <token>` or `X-API-Key: <token>`";

/// The JSON error body: `{"code", "message", "details"?}`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ErrorBody {
    /// A stable machine-readable code.
    pub code: String,
    /// A sentence for people.
    pub message: String,
    /// Rejected fields, for validation errors.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<FieldError>,
}

impl ErrorBody {
    /// A body with no details.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            details: Vec::new(),
        }
    }

    /// With these rejected fields.
    pub fn with_details(mut self, details: Vec<FieldError>) -> Self {
        self.details = details;
        self
    }

    /// The body as JSON.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_else(|_| {
            br#"{"code":"internal_error","message":"the error could not be encoded"}"#.to_vec()
        })
    }
}

/// A gRPC status code, for rejecting a gRPC call ([`Rejection::grpc_status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum GrpcCode {
    /// `3`: invalid input (422).
    InvalidArgument = 3,
    /// `5`: not found (404).
    NotFound = 5,
    /// `7`: the token lacks a scope or is of another tenant (403).
    PermissionDenied = 7,
    /// `8`: a limit was reached (429).
    ResourceExhausted = 8,
    /// `9`: the token's state does not allow it (409).
    FailedPrecondition = 9,
    /// `13`: the service failed (500).
    Internal = 13,
    /// `14`: the token store is unavailable; retry (503).
    Unavailable = 14,
    /// `16`: no valid token (401).
    Unauthenticated = 16,
}

/// How a web layer answers a request that failed: the status, the headers to set, and
/// the JSON body, the same for every framework. Build it from an [`AuthError`] or an
/// [`Error`] (`Rejection::from(err)`), never by hand.
///
/// The rules it applies:
/// - every credential failure (missing, malformed, unknown, revoked, expired) is **one**
///   401 with `WWW-Authenticate: Bearer` and one body, so a caller cannot probe which
///   tokens exist or learn when one was revoked;
/// - a missing scope or the wrong tenant is 403 naming what is missing;
/// - validation errors are 422 with every rejected field in `details`;
/// - an unavailable store is 503 with `Retry-After: 1`; any other store failure is 500,
///   and neither carries the backend's message.
///
/// ```
/// use api_tokens::web::Rejection;
/// use api_tokens::AuthError;
///
/// let r = Rejection::from(AuthError::Revoked { revoked_at: time::OffsetDateTime::UNIX_EPOCH });
/// assert_eq!(r.status(), 401);
/// assert_eq!(r.header("www-authenticate"), Some("Bearer"));
/// assert!(!r.body_str().contains("revoked"), "{}", r.body_str());
/// assert_eq!(r, Rejection::from(AuthError::Invalid)); // the same to the client
/// assert_eq!(r.reason(), "revoked"); // for your logs only
/// ```
#[derive(Clone)]
pub struct Rejection {
    status: u16,
    code: &'static str,
    body: Vec<u8>,
    headers: Vec<(&'static str, Cow<'static, str>)>,
    message: String,
    /// Why, for logs and metrics only (never sent): `AuthError::reason` or the error code.
    reason: &'static str,
}

impl fmt::Debug for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rejection")
            .field("status", &self.status)
            .field("code", &self.code)
            .field("reason", &self.reason)
            .finish_non_exhaustive()
    }
}

/// Two rejections are equal when a client sees the same: status, headers and body (not
/// the internal [`reason`](Rejection::reason)).
impl PartialEq for Rejection {
    fn eq(&self, other: &Self) -> bool {
        (self.status, &self.headers, &self.body) == (other.status, &other.headers, &other.body)
    }
}

impl Eq for Rejection {}

/// The status and code only: never the message of a credential failure.
impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.code)
    }
}

impl std::error::Error for Rejection {}

impl Rejection {
    fn new(status: u16, code: &'static str, body: ErrorBody, reason: &'static str) -> Self {
        let mut headers = vec![("content-type", Cow::Borrowed("application/json"))];
        if status == 401 {
            headers.push(("www-authenticate", Cow::Borrowed("Bearer")));
        }
        if status == 503 {
            headers.push(("retry-after", Cow::Borrowed("1")));
        }
        Self {
            status,
            code,
            message: body.message.clone(),
            body: body.to_json(),
            headers,
            reason,
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The body's stable code (`invalid_token`, `insufficient_scope`, …).
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// Every header to set, names in lower case: `content-type`, and `www-authenticate`
    /// on a 401, `retry-after` on a 503, or on a rate-limited 429 `retry-after` and the
    /// IETF draft's `ratelimit-limit`, `ratelimit-remaining`, `ratelimit-reset` and
    /// `ratelimit-policy`.
    pub fn headers(&self) -> impl Iterator<Item = (&'static str, &str)> + '_ {
        self.headers.iter().map(|(n, v)| (*n, &**v))
    }

    /// The value of one of [`headers`](Self::headers), by lower-case name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| &**v)
    }

    /// The JSON body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The JSON body, as text.
    pub fn body_str(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap_or_default()
    }

    /// Why the request failed, for logs and metrics (`invalid`, `expired`, `revoked`,
    /// `missing`, …, or the error's code): it tells the 401s apart, so never send it.
    pub fn reason(&self) -> &'static str {
        self.reason
    }

    /// The answer for a gRPC call: the status code and its message (send them as the
    /// `grpc-status` and `grpc-message` of a trailers-only response).
    pub fn grpc_status(&self) -> (GrpcCode, &str) {
        let code = match self.status {
            401 => GrpcCode::Unauthenticated,
            403 => GrpcCode::PermissionDenied,
            404 => GrpcCode::NotFound,
            409 => GrpcCode::FailedPrecondition,
            422 => GrpcCode::InvalidArgument,
            429 => GrpcCode::ResourceExhausted,
            503 => GrpcCode::Unavailable,
            _ => GrpcCode::Internal,
        };
        (code, &self.message)
    }

    /// `404 not_found`, for a path id that names no token (or is not an id at all).
    pub fn not_found() -> Self {
        Self::new(
            404,
            "not_found",
            ErrorBody::new("not_found", "no such token"),
            "not_found",
        )
    }
}

impl From<AuthError> for Rejection {
    fn from(e: AuthError) -> Self {
        Self::from(&e)
    }
}

impl From<&AuthError> for Rejection {
    fn from(e: &AuthError) -> Self {
        let status = e.status();
        if status == 401 {
            return Self::new(
                401,
                "invalid_token",
                ErrorBody::new("invalid_token", UNAUTHORIZED_MESSAGE),
                e.reason(),
            );
        }
        // A store error's details (the backend's message, a table name) stay out of the body.
        let message = match e {
            AuthError::Store(_) if status == 503 => {
                "the token store is unavailable; try again later".to_owned()
            }
            // Not retryable (corrupt, read-only, misconfigured): no "try again".
            AuthError::Store(_) => "the token store failed".to_owned(),
            other => other.to_string(),
        };
        let mut rejection = Self::new(
            status,
            e.code(),
            ErrorBody::new(e.code(), message),
            e.reason(),
        );
        if let AuthError::RateLimited {
            limit,
            window_seconds,
            reset_after,
            retry_after,
        } = e
        {
            let secs = |d: &std::time::Duration| crate::error::retry_secs(d).to_string();
            rejection.headers.extend([
                ("retry-after", Cow::Owned(secs(retry_after))),
                ("ratelimit-limit", Cow::Owned(limit.to_string())),
                ("ratelimit-remaining", Cow::Borrowed("0")),
                ("ratelimit-reset", Cow::Owned(secs(reset_after))),
                (
                    "ratelimit-policy",
                    Cow::Owned(format!("{limit};w={window_seconds}")),
                ),
            ]);
        }
        rejection
    }
}

impl From<Error> for Rejection {
    fn from(e: Error) -> Self {
        Self::from(&e)
    }
}

impl From<&Error> for Rejection {
    fn from(e: &Error) -> Self {
        match e {
            Error::Auth(a) => Self::from(a),
            Error::Invalid(v) => Self::new(
                422,
                "validation_failed",
                ErrorBody::new("validation_failed", "the request has invalid fields")
                    .with_details(v.0.clone()),
                "validation_failed",
            ),
            Error::Store(s) => {
                let status = s.status();
                let message = if status == 503 {
                    "the token store is unavailable; try again later"
                } else {
                    "the token store failed"
                };
                Self::new(status, s.code(), ErrorBody::new(s.code(), message), "store")
            }
            other => Self::new(
                other.status(),
                other.code(),
                ErrorBody::new(other.code(), other.to_string()),
                other.code(),
            ),
        }
    }
}
