//! The example server against clients that misbehave, over real TCP: slow and idle
//! connections, too many connections or requests at once, a login flood, and shutdown
//! with requests half sent. The application runs in-process on SQLite.

#[path = "../examples/server/app/mod.rs"]
#[allow(dead_code)]
mod app;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use api_tokens::{ApiTokens, DynTokenStore, SqliteStore};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const USERS: &str = "alice@example.com:alice-pw:tenant_a";

struct Server {
    address: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<()>,
    http: reqwest::Client,
}

impl Server {
    async fn start(settings: &[(&str, &str)]) -> Self {
        let settings: HashMap<String, String> = [
            ("LOGIN_ATTEMPTS_PER_ADDRESS", "100000"),
            ("LOGIN_ATTEMPTS_PER_ACCOUNT_ADDRESS", "100000"),
            ("LOGIN_ATTEMPTS_PER_ACCOUNT", "100000"),
            ("CLIENT_IP_HEADER", "x-test-client-ip"),
        ]
        .iter()
        .chain(settings)
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        let config = app::Config::from_lookup(|k| settings.get(k).cloned()).unwrap();
        let dir = tempfile::tempdir().unwrap().keep();
        let store = SqliteStore::connect(&format!("sqlite://{}", dir.join("t.db").display()))
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let tokens = ApiTokens::new(DynTokenStore::new(store), "api_prod").unwrap();
        let users = Arc::new(app::Users::from_spec(USERS).unwrap());
        let limits = config.limits.clone();
        let state = app::AppState::new(tokens, users, config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let done = tokio::spawn(async move {
            app::serve(listener, app::router(state), &limits, async {
                let _ = stopped.await;
            })
            .await;
        });
        Self {
            address,
            stop: Some(stop),
            done,
            http: reqwest::Client::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    async fn connect(&self) -> TcpStream {
        TcpStream::connect(&self.address).await.unwrap()
    }
}

/// Whether the server closes `stream` within `within` (reading whatever it answers).
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buffer = [0u8; 4096];
    tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// The status line of the response read from `stream` within `within`.
async fn status_line(stream: &mut TcpStream, within: Duration) -> String {
    let mut buffer = vec![0u8; 4096];
    let n = tokio::time::timeout(within, stream.read(&mut buffer))
        .await
        .expect("an answer in time")
        .expect("a readable connection");
    String::from_utf8_lossy(&buffer[..n])
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_and_idle_connections_are_closed() {
    let s = Server::start(&[("HEADER_READ_TIMEOUT_MS", "300")]).await;
    // Connected, silent.
    let mut silent = s.connect().await;
    // Half a request line, never finished.
    let mut slow = s.connect().await;
    slow.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    // A whole request on a keep-alive connection, then nothing.
    let mut idle = s.connect().await;
    idle.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(
        status_line(&mut idle, Duration::from_secs(2)).await,
        "HTTP/1.1 200 OK"
    );
    let started = Instant::now();
    for (name, stream) in [
        ("silent", &mut silent),
        ("slow", &mut slow),
        ("idle", &mut idle),
    ] {
        assert!(
            closed_within(stream, Duration::from_secs(3)).await,
            "the {name} connection is still open"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_body_gets_408() {
    let s = Server::start(&[("BODY_READ_TIMEOUT_MS", "300")]).await;
    let mut stream = s.connect().await;
    stream
        .write_all(b"POST /auth/token HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"em")
        .await
        .unwrap();
    let started = Instant::now();
    let line = status_line(&mut stream, Duration::from_secs(3)).await;
    assert_eq!(line, "HTTP/1.1 408 Request Timeout");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_its_deadline_gets_503() {
    // Argon2 takes tens of milliseconds: a login cannot finish within 1 ms.
    let s = Server::start(&[("REQUEST_TIMEOUT_MS", "1")]).await;
    let r = s
        .http
        .post(s.url("/auth/token"))
        .json(&json!({ "email": "alice@example.com", "password": "alice-pw" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "unavailable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_get_503_until_idle_ones_close() {
    let s = Server::start(&[("MAX_CONNECTIONS", "4"), ("HEADER_READ_TIMEOUT_MS", "1000")]).await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(s.connect().await);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut over = s.connect().await;
    over.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(
        status_line(&mut over, Duration::from_secs(2)).await,
        "HTTP/1.1 503 Service Unavailable"
    );
    // The idle ones pass their header deadline and make room.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let r = s.http.get(s.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_over_the_in_flight_cap_are_shed() {
    let s = Server::start(&[("MAX_IN_FLIGHT", "2")]).await;
    let mut slow = Vec::new();
    for _ in 0..2 {
        let mut stream = s.connect().await;
        stream
            .write_all(b"POST /auth/token HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{")
            .await
            .unwrap();
        slow.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = s.http.get(s.url("/api/v1/me")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    drop(slow);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = s.http.get(s.url("/api/v1/me")).send().await.unwrap();
    assert_eq!(
        r.status(),
        401,
        "room again: an unauthenticated request is judged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_flood_queues_for_the_hashers_and_sheds_with_503() {
    let s = Server::start(&[
        ("PASSWORD_HASHERS", "1"),
        ("PASSWORD_QUEUE_TIMEOUT_MS", "30"),
    ])
    .await;
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let request = s
                .http
                .post(s.url("/auth/token"))
                .json(&json!({ "email": format!("made-up-{i}@example.com"), "password": "x" }));
            tokio::spawn(async move { request.send().await.unwrap() })
        })
        .collect();
    let mut statuses = HashMap::<u16, usize>::new();
    for task in tasks {
        let r = task.await.unwrap();
        if r.status() == 503 {
            assert_eq!(r.headers()["retry-after"], "1");
        }
        *statuses.entry(r.status().as_u16()).or_default() += 1;
    }
    assert!(statuses.get(&503).is_some_and(|n| *n > 0), "{statuses:?}");
    assert!(statuses.get(&401).is_some_and(|n| *n > 0), "{statuses:?}");
    assert_eq!(
        statuses.keys().filter(|s| ![401, 503].contains(*s)).count(),
        0,
        "{statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limiters_memory_is_bounded() {
    let s = Server::start(&[
        ("LIMITER_MAX_KEYS", "50"),
        ("LOGIN_ATTEMPTS_PER_ADDRESS", "5"),
    ])
    .await;
    for i in 0..300u32 {
        let r = s
            .http
            .post(s.url("/auth/token"))
            .header("x-test-client-ip", format!("10.{}.{}.1", i / 256, i % 256))
            .json(&json!({ "email": format!("u{i}-{}@example.com", "x".repeat(200)), "password": "x" }))
            .send()
            .await
            .unwrap();
        assert!([401, 429].contains(&r.status().as_u16()));
    }
    let metrics = s
        .http
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut seen = 0;
    for line in metrics.lines().filter(|l| l.starts_with("limiter_keys{")) {
        let keys: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(keys <= 51.0, "{line}");
        seen += 1;
    }
    assert_eq!(seen, 4, "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_for_half_sent_requests_only_until_its_deadline() {
    let mut s = Server::start(&[
        ("SHUTDOWN_TIMEOUT_MS", "500"),
        ("BODY_READ_TIMEOUT_MS", "60000"),
        ("HEADER_READ_TIMEOUT_MS", "60000"),
    ])
    .await;
    let mut half_sent = Vec::new();
    for _ in 0..5 {
        let mut stream = s.connect().await;
        stream
            .write_all(b"POST /auth/token HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{")
            .await
            .unwrap();
        half_sent.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    s.stop.take().unwrap().send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(3), &mut s.done)
        .await
        .expect("serve returned by the deadline")
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(450),
        "it did wait"
    );
    assert!(
        TcpStream::connect(&s.address).await.is_err(),
        "no longer accepting"
    );
}
