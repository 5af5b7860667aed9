//! JSON in and out: a body extractor whose rejections are JSON errors, and the error
//! responses the routes share.

use api_tokens::web::ErrorBody;
use axum::Json;
use axum::body::Body;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::header::{CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Serialize;

use super::limiter::Limited;
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

/// A JSON response that carries a token's plaintext, the one time it is shown.
///
/// The body is serialised straight into a buffer of exactly its size (no `serde_json::Value`
/// holding a copy, no reallocation leaving one behind), and that buffer is wiped when the
/// response body is dropped. What the HTTP stack and the kernel copy while sending is
/// beyond this program's reach.
pub fn one_time_json(status: StatusCode, body: &impl Serialize) -> Response {
    /// Counts bytes, to size the buffer before writing into it.
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    /// The wiped buffer, as what a `Bytes` owns.
    struct Wiped(Zeroizing<Vec<u8>>);
    impl AsRef<[u8]> for Wiped {
        fn as_ref(&self) -> &[u8] {
            &self.0
        }
    }
    let mut count = Count(0);
    let mut buffer = Zeroizing::new(Vec::new());
    let written = serde_json::to_writer(&mut count, body).and_then(|()| {
        buffer.reserve_exact(count.0);
        serde_json::to_writer(&mut *buffer, body)
    });
    if written.is_err() {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "the response could not be written",
        );
    }
    let body = Body::from(Bytes::from_owner(Wiped(buffer)));
    (
        status,
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        body,
    )
        .into_response()
}

/// A JSON error response: `{"code", "message"}` with `status`.
pub fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        ErrorBody::new(code, message).to_json(),
    )
        .into_response()
}

/// 429 with `Retry-After`: an attempt over a login or confirmation limit.
pub fn too_many_attempts(limited: Limited) -> Response {
    metrics::counter!("limiter_rejections_total", "limiter" => limited.limiter).increment(1);
    tracing::info!(
        limiter = limited.limiter,
        "refused an attempt over its limit"
    );
    let mut response = error(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_requests",
        "too many password attempts; try again later",
    );
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(limited.retry_after_secs));
    response
}

/// 503 with `Retry-After`: every password checker stayed busy for the queue timeout.
pub fn passwords_busy() -> Response {
    metrics::counter!("requests_shed_total", "reason" => "password_queue").increment(1);
    tracing::warn!(
        "answered 503: every password checker stayed busy for PASSWORD_QUEUE_TIMEOUT_MS"
    );
    unavailable("too many logins at once; try again shortly")
}

/// 503 with `Retry-After: 1` and `message`.
pub fn unavailable(message: &str) -> Response {
    let mut response = error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message);
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// The response for a failed operation of the token service, logging why when it is the
/// server's fault (the crate's errors never hold a token or secret).
pub fn failed(e: api_tokens::Error) -> Response {
    if e.status() >= 500 {
        tracing::error!(error = %e, status = e.status(), "the token service failed");
    }
    e.into_response()
}

/// The answer for a route that does not exist.
pub async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "not_found", "no such route")
}

/// The answer for a method a route does not accept.
pub async fn method_not_allowed() -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not accept that method",
    )
}

/// A JSON body whose rejections are JSON errors that never echo the body back.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(match rejection {
                JsonRejection::MissingJsonContentType(_) => error(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    "send the body as `Content-Type: application/json`",
                ),
                JsonRejection::BytesRejection(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                    error(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "payload_too_large",
                        "the body is larger than 64 KiB",
                    )
                }
                JsonRejection::BytesRejection(r) if timed_out(&r) => {
                    tracing::info!(
                        "answered 408: the request body did not arrive within BODY_READ_TIMEOUT_MS"
                    );
                    error(
                        StatusCode::REQUEST_TIMEOUT,
                        "request_timeout",
                        "the request body did not arrive in time",
                    )
                }
                JsonRejection::JsonSyntaxError(_) => error(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    "the body is not valid JSON",
                ),
                _ => error(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    "the body is missing a required field or has a field of the wrong type",
                ),
            }),
        }
    }
}

/// A JSON body that may be left out: a request with no body (`Content-Length: 0`, or
/// neither a length nor a content type) is `T::default()`; any other body is read as
/// [`JsonBody`] reads it. For routes whose fields are all optional (`rotate`).
pub struct OptionalJsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        use axum::http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
        let headers = req.headers();
        let empty = match headers.get(CONTENT_LENGTH) {
            Some(length) => length.as_bytes() == b"0",
            None => !headers.contains_key(TRANSFER_ENCODING) && !headers.contains_key(CONTENT_TYPE),
        };
        if empty {
            return Ok(Self(T::default()));
        }
        JsonBody::from_request(req, state)
            .await
            .map(|JsonBody(value)| Self(value))
    }
}

/// Whether reading the body failed because its deadline passed.
fn timed_out(rejection: &axum::extract::rejection::BytesRejection) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(rejection);
    while let Some(e) = source {
        if e.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// For a field where `null` means something (`"expires_in_days": null`: never): `None`
/// when the field is absent, `Some(None)` when it is `null`. Use with
/// `#[serde(default, deserialize_with = "nullable")]`.
pub fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    <Option<T> as serde::Deserialize>::deserialize(deserializer).map(Some)
}

/// An RFC 3339 timestamp from a request field, or the field error naming it.
pub fn timestamp(field: &str, text: &str) -> Result<time::OffsetDateTime, api_tokens::FieldError> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).map_err(
        |_| {
            api_tokens::FieldError::new(
                field,
                "must be an RFC 3339 date and time, such as 2027-01-31T00:00:00Z",
            )
        },
    )
}
