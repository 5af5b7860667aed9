//! The connection loop: HTTP/1.1 on hyper, with the deadlines and caps a server on the
//! open internet needs.
//!
//! - **Header deadline** (`HEADER_READ_TIMEOUT_MS`): hyper closes a connection whose request
//!   headers have not all arrived within it. It is counted from the connection's start and
//!   again after each response, so it also closes idle keep-alive connections.
//! - **Header size**: at most 16 KiB of request head is buffered per connection (431
//!   beyond), so thousands of slow clients cannot hold hyper's default 400 KiB each.
//! - **Connection caps** (`MAX_CONNECTIONS`, below the file-descriptor limit by default, and
//!   `MAX_CONNECTIONS_PER_ADDRESS` per client address, trusted proxies exempt): a connection
//!   over either is answered `503` and closed at once (or just closed, when 64 are being
//!   refused already), so idle or slow clients can never use up the descriptors the service
//!   needs. These are counted on accepted sockets, below any `tower` layer.
//! - **Shutdown deadline** (`SHUTDOWN_TIMEOUT_MS`): on the shutdown signal, stop accepting,
//!   let requests in progress finish, and close whatever is still open at the deadline.
//!
//! The body and request deadlines and the cap on requests in flight are layers on the
//! router (see `routes`).

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::ServiceExt;

use super::config::{Config, Limits, MAX_REFUSING};
use super::limiter::network;
use super::state::AppState;

/// The most request head buffered per connection.
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Open connections per client network, with a guard that gives one back when dropped.
#[derive(Default)]
struct PerAddress(Mutex<HashMap<IpAddr, usize>>);

impl PerAddress {
    fn take(self: &Arc<Self>, address: IpAddr, cap: usize) -> Option<AddressSlot> {
        let key = network(address);
        let mut open = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(key).or_default();
        if *count >= cap {
            return None;
        }
        *count += 1;
        Some(AddressSlot(Arc::clone(self), key))
    }
}

struct AddressSlot(Arc<PerAddress>, IpAddr);

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = (self.0).0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.1) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.1);
            }
        }
    }
}

/// Serve the token API of `state` on `listener` until `shutdown` resolves, then for at
/// most the shutdown deadline.
pub async fn serve(listener: TcpListener, state: AppState, shutdown: impl Future<Output = ()>) {
    let config = Arc::clone(&state.config);
    serve_with(
        listener,
        super::routes::router(state),
        &config.limits,
        &config,
        shutdown,
    )
    .await;
}

/// Serve only `/healthz`, `/readyz` and `/metrics` of `state` on `listener` (`HEALTH_BIND`),
/// outside the API's connection cap: probes get an answer while the API sheds connections.
/// Its own cap is small (64 connections), since only probes and scrapers use it.
pub async fn serve_health(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()>,
) {
    let config = Arc::clone(&state.config);
    let limits = Limits {
        max_connections: 64,
        max_connections_per_address: 64,
        ..config.limits.clone()
    };
    serve_with(
        listener,
        super::routes::health_router(state),
        &limits,
        &config,
        shutdown,
    )
    .await;
}

/// Serve `app` on `listener` under `limits` until `shutdown` resolves, then for at most
/// the shutdown deadline. Peers in `config.trusted_proxies` are not capped per address.
async fn serve_with(
    listener: TcpListener,
    app: Router,
    limits: &Limits,
    config: &Config,
    shutdown: impl Future<Output = ()>,
) {
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let per_address = Arc::new(PerAddress::default());
    let refusing = Arc::new(Semaphore::new(MAX_REFUSING));
    let graceful = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(MAX_HEAD_BYTES)
        .keep_alive(true);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors or memory for a moment: back off, don't spin.
                    tracing::warn!(error = %e, "could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let trusted = config
            .trusted_proxies
            .iter()
            .any(|n| n.contains(&peer.ip()));
        let address_slot = if trusted {
            None
        } else {
            match per_address.take(peer.ip(), limits.max_connections_per_address) {
                Some(slot) => Some(slot),
                None => {
                    shed(
                        stream,
                        &refusing,
                        "max_connections_per_address",
                        "MAX_CONNECTIONS_PER_ADDRESS connections are open from this address",
                    );
                    continue;
                }
            }
        };
        let Ok(permit) = Arc::clone(&open).try_acquire_owned() else {
            shed(
                stream,
                &refusing,
                "max_connections",
                "MAX_CONNECTIONS connections are open",
            );
            continue;
        };
        let app = app
            .clone()
            .map_request(move |mut request: axum::http::Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                // The crate's extractors check IP allowlists against it.
                request
                    .extensions_mut()
                    .insert(api_tokens::web::PeerAddr(peer.ip()));
                request
            });
        let connection = graceful
            .watch(http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app)));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, %peer, "connection closed with an error");
            }
            drop((permit, address_slot));
        });
    }
    drop(listener);
    tracing::info!(
        deadline_ms = limits.shutdown_timeout.as_millis() as u64,
        "shutting down: no new connections; waiting for requests in progress"
    );
    match tokio::time::timeout(limits.shutdown_timeout, graceful.shutdown()).await {
        Ok(()) => tracing::info!("shut down cleanly"),
        Err(_) => {
            tracing::warn!("the shutdown deadline passed with connections still open; closing them")
        }
    }
}

/// Shed a connection over a cap: answer 503 and close it, or just close it when
/// `MAX_REFUSING` are being answered already; one log line saying which and why.
fn shed(stream: TcpStream, refusing: &Arc<Semaphore>, reason: &'static str, why: &'static str) {
    metrics::counter!("connections_shed_total", "reason" => reason).increment(1);
    match Arc::clone(refusing).try_acquire_owned() {
        Ok(slot) => {
            tracing::warn!(reason, "shed a connection: {why}; answered 503");
            tokio::spawn(async move {
                refuse(stream).await;
                drop(slot);
            });
        }
        Err(_) => {
            tracing::warn!(
                reason,
                "shed a connection: {why}; closed (too many being refused)"
            );
            drop(stream);
        }
    }
}

/// Answer 503 on a connection over the cap and close it, within a second.
async fn refuse(mut stream: TcpStream) {
    const BODY: &str = r#"{"code":"unavailable","message":"the server has too many open connections; try again shortly"}"#;
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await?;
        // Read what the client sent, so closing does not reset the connection before the
        // client has read the answer.
        let mut sink = [0u8; 1024];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<_, std::io::Error>(())
    })
    .await;
}
