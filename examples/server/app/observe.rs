//! Logs and metrics: one log line per request (method, route, status, latency, token id
//! when known; never a token, secret, password or body), and Prometheus metrics at
//! `GET /metrics`.
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `http_requests_total` | counter | `method`, `route`, `status` |
//! | `http_request_duration_seconds` | histogram | `route` |
//! | `http_requests_in_flight` | gauge | |
//! | `verify_outcomes_total` | counter | `outcome` (`ok`, `missing`, `invalid`, `expired`, `revoked`, …) |
//! | `store_operation_duration_seconds` | histogram | `operation` |
//! | `limiter_rejections_total` | counter | `limiter` |
//! | `limiter_keys` | gauge | `limiter` |
//! | `requests_shed_total`, `connections_shed_total` | counter | `reason` |
//! | `token_cache_hits`, `…_misses`, `…_store_reads`, `…_invalidations_received`, `…_flushed_on_doubt`, `…_trusted`, … | gauge | (with `TOKEN_CACHE=on`) |

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing::Instrument;

use super::state::AppState;

/// The process's metrics recorder, installed on first use.
pub fn recorder() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&[
                0.000_1, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                2.5, 5.0, 10.0,
            ])
            .expect("non-empty buckets")
            .build_recorder();
        let handle = recorder.handle();
        // Another recorder may already be installed (a test process): keep its handle then.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

/// Counts in-flight requests while alive (also when the request is cancelled).
struct InFlight;

impl InFlight {
    fn start() -> Self {
        metrics::gauge!("http_requests_in_flight").increment(1.0);
        Self
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::gauge!("http_requests_in_flight").decrement(1.0);
    }
}

/// Middleware: the request's span, its log line and its metrics.
pub async fn track(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let span = tracing::info_span!(
        "request",
        method = %method,
        route = %route,
        token_id = tracing::field::Empty,
    );
    let _in_flight = InFlight::start();
    let response = next.run(request).instrument(span.clone()).await;
    let latency = started.elapsed();
    let status = response.status().as_u16();
    metrics::counter!(
        "http_requests_total",
        "method" => method_label(&method),
        "route" => route.clone(),
        "status" => status.to_string(),
    )
    .increment(1);
    metrics::histogram!("http_request_duration_seconds", "route" => route).record(latency);
    span.in_scope(|| {
        tracing::info!(status, latency_ms = latency.as_secs_f64() * 1e3, "answered");
    });
    response
}

/// A method as a metric label: the standard ones by name, anything else as `other`, so a
/// client inventing methods cannot create a series each.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// `GET /metrics`: every metric, in Prometheus's text format.
pub async fn metrics(State(state): State<AppState>) -> Response {
    for (name, keys) in state.limiters.keys() {
        metrics::gauge!("limiter_keys", "limiter" => name).set(keys as f64);
    }
    if let Some(cache) = &state.cache_metrics {
        for (name, value) in cache() {
            metrics::gauge!(name).set(value);
        }
    }
    (
        [(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        recorder().render(),
    )
        .into_response()
}
