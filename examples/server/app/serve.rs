//! The connection loop: HTTP/1.1 on hyper, with the deadlines and caps a server on the
//! open internet needs.
//!
//! - **Header deadline** (`HEADER_READ_TIMEOUT_MS`): hyper closes a connection whose request
//!   headers have not all arrived within it. It is counted from the connection's start and
//!   again after each response, so it also closes idle keep-alive connections.
//! - **Connection cap** (`MAX_CONNECTIONS`, below the file-descriptor limit by default): a
//!   connection over it is answered `503` and closed at once, so idle or slow clients can
//!   never use up the descriptors the service needs.
//! - **Shutdown deadline** (`SHUTDOWN_TIMEOUT_MS`): on the shutdown signal, stop accepting,
//!   let requests in progress finish, and close whatever is still open at the deadline.
//!
//! The body and request deadlines and the cap on requests in flight are layers on the
//! router (see `routes`).

use std::future::Future;
use std::sync::Arc;
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

use super::config::Limits;

/// Connections being refused at once; beyond, a refused connection is just closed.
const MAX_REFUSING: usize = 64;

/// Serve `app` on `listener` until `shutdown` resolves, then for at most the shutdown
/// deadline.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: &Limits,
    shutdown: impl Future<Output = ()>,
) {
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let refusing = Arc::new(Semaphore::new(MAX_REFUSING));
    let graceful = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
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
        let Ok(permit) = Arc::clone(&open).try_acquire_owned() else {
            metrics::counter!("connections_shed_total", "reason" => "max_connections").increment(1);
            tracing::warn!(
                max_connections = limits.max_connections,
                "shed a connection: MAX_CONNECTIONS connections are open; answered 503"
            );
            if let Ok(slot) = Arc::clone(&refusing).try_acquire_owned() {
                tokio::spawn(async move {
                    refuse(stream).await;
                    drop(slot);
                });
            }
            continue;
        };
        let app = app
            .clone()
            .map_request(move |mut request: axum::http::Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            });
        let connection = graceful
            .watch(http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app)));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, %peer, "connection closed with an error");
            }
            drop(permit);
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
