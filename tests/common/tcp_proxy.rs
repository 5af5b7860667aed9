//! A TCP proxy in front of a test server (PostgreSQL, Redis), that a test can take down,
//! stall, or stall after a given message, to see what a client does when the network does
//! that.
#![allow(dead_code)] // each test file uses part of this

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration as StdDuration;

/// A TCP proxy in front of the server that can cut every connection and refuse new ones,
/// as a crashed or unreachable database would, or stall: keep every connection open but
/// forward nothing, as a silently partitioned network would.
pub struct Proxy {
    pub addr: std::net::SocketAddr,
    up: Arc<AtomicBool>,
    stalled: Arc<AtomicBool>,
    trigger: Trigger,
    conns: Arc<std::sync::Mutex<tokio::task::JoinSet<()>>>,
}

/// Bytes which, once a client has sent them, stall the proxy (see `Proxy::stall_after`).
type Trigger = Arc<std::sync::Mutex<Option<Vec<u8>>>>;

/// Copy `from` to `to`, holding whatever arrives while `stalled`; after forwarding a
/// chunk that holds the `trigger` bytes, stall.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    stalled: Arc<AtomicBool>,
    trigger: Option<Trigger>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        while stalled.load(Ordering::SeqCst) {
            tokio::time::sleep(StdDuration::from_millis(5)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
        if let Some(trigger) = &trigger {
            let mut armed = trigger.lock().unwrap();
            if armed
                .as_deref()
                .is_some_and(|t| buf[..n].windows(t.len()).any(|w| w == t))
            {
                *armed = None;
                stalled.store(true, Ordering::SeqCst);
            }
        }
    }
}

impl Proxy {
    pub async fn start(target: std::net::SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let stalled = Arc::new(AtomicBool::new(false));
        let trigger: Trigger = Arc::default();
        let conns = Arc::new(std::sync::Mutex::new(tokio::task::JoinSet::new()));
        let (up2, stalled2, conns2) = (up.clone(), stalled.clone(), conns.clone());
        let trigger2 = trigger.clone();
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                if !up2.load(Ordering::SeqCst) {
                    drop(client); // refused: the "server" is down
                    continue;
                }
                let stalled = stalled2.clone();
                let trigger = trigger2.clone();
                conns2.lock().unwrap().spawn(async move {
                    if let Ok(server) = tokio::net::TcpStream::connect(target).await {
                        let (cr, cw) = client.into_split();
                        let (sr, sw) = server.into_split();
                        tokio::join!(
                            pump(cr, sw, stalled.clone(), Some(trigger)),
                            pump(sr, cw, stalled, None)
                        );
                    }
                });
            }
        });
        Self {
            addr,
            up,
            stalled,
            trigger,
            conns,
        }
    }

    pub fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.conns.lock().unwrap().abort_all();
    }

    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }

    pub fn stall(&self, stalled: bool) {
        self.stalled.store(stalled, Ordering::SeqCst);
    }

    /// Stall right after a client sends `bytes` (which the server still receives).
    pub fn stall_after(&self, bytes: &[u8]) {
        *self.trigger.lock().unwrap() = Some(bytes.to_vec());
    }
}
