//! JSON in and out: a body extractor whose rejections are JSON errors, and the error
//! responses the routes share.

use api_tokens::axum::ErrorBody;
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header::RETRY_AFTER};
use axum::response::Response;
use serde::de::DeserializeOwned;

/// A JSON error response: `{"code", "message"}` with `status`.
pub fn error(status: StatusCode, code: &str, message: &str) -> Response {
    ErrorBody::new(code, message).into_response(status)
}

/// 429 with `Retry-After`, after too many wrong passwords for one email.
pub fn too_many_attempts(retry_after_secs: u64) -> Response {
    let mut response = error(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_requests",
        "too many failed password attempts for this email; try again later",
    );
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(retry_after_secs));
    response
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
