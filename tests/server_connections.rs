//! The example server against clients that misbehave, over real TCP: slow and idle
//! connections, too many connections or requests at once, a login flood, and shutdown
//! with requests half sent. The application runs in-process on SQLite.

#[path = "../examples/server/app/mod.rs"]
#[allow(dead_code, unused_imports)]
mod app;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use api_tokens::{DynTokenStore, SqliteStore};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const USERS: &str = "alice@example.com:alice-pw:tenant_a";

struct Server {
    address: String,
    /// The health listener (`HEALTH_BIND`), serving the same state.
    health: String,
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
            ("LOGIN_ATTEMPTS_PER_NETWORK", "100000"),
            ("CLIENT_IP_HEADER", "x-test-client-ip"),
            ("TRUSTED_PROXIES", "127.0.0.1"),
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
        let tokens = app::token_service(
            DynTokenStore::new(store),
            &config,
            None::<api_tokens::ChannelSink>,
        )
        .await
        .unwrap();
        let users = Arc::new(app::Users::from_spec(USERS).unwrap());
        let state = app::AppState::new(tokens, users, config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let health_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let health = health_listener.local_addr().unwrap().to_string();
        tokio::spawn(app::serve_health(
            health_listener,
            state.clone(),
            std::future::pending(),
        ));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let done = tokio::spawn(async move {
            app::serve(listener, state, async {
                let _ = stopped.await;
            })
            .await;
        });
        Self {
            address,
            health,
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
    assert_eq!(seen, 5, "{metrics}");
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

/// Connections from one address beyond `MAX_CONNECTIONS_PER_ADDRESS` are answered 503 and
/// closed; the health listener still answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_address_are_capped_and_health_answers_apart() {
    // No trusted proxy: the loopback peer is a client like any other.
    let s = Server::start(&[
        ("CLIENT_IP_HEADER", ""),
        ("TRUSTED_PROXIES", ""),
        ("MAX_CONNECTIONS_PER_ADDRESS", "3"),
    ])
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(s.connect().await);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut over = s.connect().await;
    assert_eq!(
        status_line(&mut over, Duration::from_secs(2)).await,
        "HTTP/1.1 503 Service Unavailable"
    );
    for path in ["/healthz", "/readyz", "/metrics"] {
        let r = reqwest::get(format!("http://{}{path}", s.health))
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path} on the health listener");
    }
    let r = reqwest::get(format!("http://{}/api/v1/me", s.health))
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "the health listener serves nothing else");
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = s.http.get(s.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200, "room again");
}

/// The client address header is believed only from a trusted proxy, and then the client is
/// the nearest entry that is not itself a trusted proxy: a client cannot choose the address
/// its logins are counted against.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_cannot_choose_the_address_it_is_counted_as() {
    let login = |s: &Server, forwarded: String| {
        s.http
            .post(s.url("/auth/token"))
            .header("x-forwarded-for", forwarded)
            .json(&json!({ "email": "alice@example.com", "password": "wrong" }))
            .send()
    };
    // Loopback is not a trusted proxy: the header is ignored and the peer counts.
    let direct = Server::start(&[
        ("CLIENT_IP_HEADER", "x-forwarded-for"),
        ("TRUSTED_PROXIES", "10.0.0.0/8"),
        ("LOGIN_ATTEMPTS_PER_ADDRESS", "2"),
    ])
    .await;
    let mut statuses = Vec::new();
    for i in 0..3 {
        statuses.push(
            login(&direct, format!("198.51.100.{i}"))
                .await
                .unwrap()
                .status(),
        );
    }
    assert_eq!(
        statuses,
        [401, 401, 429],
        "the header did not spread the attempts"
    );

    // Behind trusted proxies (loopback and 192.0.2.0/24), the client is 198.51.100.7
    // whatever it wrote to the left of it.
    let proxied = Server::start(&[
        ("CLIENT_IP_HEADER", "x-forwarded-for"),
        ("TRUSTED_PROXIES", "127.0.0.1, 192.0.2.0/24"),
        ("LOGIN_ATTEMPTS_PER_ADDRESS", "2"),
    ])
    .await;
    let mut statuses = Vec::new();
    for i in 0..3 {
        let chain = format!("203.0.113.{i}, 198.51.100.7, 192.0.2.5");
        statuses.push(login(&proxied, chain).await.unwrap().status());
    }
    assert_eq!(statuses, [401, 401, 429], "counted as 198.51.100.7");
    let other = login(&proxied, "198.51.100.8, 192.0.2.5".into())
        .await
        .unwrap();
    assert_eq!(other.status(), 401, "another client has its own allowance");
}

/// A flood of logins that keeps every login password checker busy does not keep a token
/// holder from confirming a revocation: confirmations have a checker of their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_flood_never_delays_a_revocation() {
    let s = Server::start(&[
        ("PASSWORD_HASHERS", "1"),
        ("PASSWORD_QUEUE_TIMEOUT_MS", "50"),
    ])
    .await;
    let login: Value = s
        .http
        .post(s.url("/auth/token"))
        .json(&json!({ "email": "alice@example.com", "password": "alice-pw" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["access_token"].as_str().unwrap().to_owned();
    let created: Value = s
        .http
        .post(s.url("/api/v1/tokens"))
        .bearer_auth(&token)
        .json(&json!({ "name": "leaked" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let leaked = created["token_info"]["id"].as_str().unwrap().to_owned();
    let flood: Vec<_> = (0..24)
        .map(|i| {
            let request = s
                .http
                .post(s.url("/auth/token"))
                .json(&json!({ "email": format!("flood-{i}@example.com"), "password": "x" }));
            tokio::spawn(async move { request.send().await.unwrap().status().as_u16() })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let revoked = s
        .http
        .delete(s.url(&format!("/api/v1/tokens/{leaked}")))
        .bearer_auth(&token)
        .json(&json!({ "password": "alice-pw" }))
        .send()
        .await
        .unwrap();
    let mut statuses = Vec::new();
    for f in flood {
        statuses.push(f.await.unwrap());
    }
    assert!(
        statuses.contains(&503),
        "the flood kept the login checker busy: {statuses:?}"
    );
    assert_eq!(
        revoked.status(),
        200,
        "the revocation was confirmed meanwhile"
    );
}

/// Every variable the README lists is read, and a present but unusable one stops the
/// server with a message naming it.
#[test]
fn every_setting_is_read_and_a_bad_one_is_named() {
    let set: HashMap<&str, &str> = [
        ("BIND", "127.0.0.1:9"),
        ("DATABASE_URL", "postgres://u:secret-pw@db/x"),
        ("DATABASE_CREATE", "false"),
        ("DATABASE_MAX_CONNECTIONS", "7"),
        ("DATABASE_ACQUIRE_TIMEOUT_MS", "1500"),
        ("DATABASE_STARTUP_TIMEOUT_SECS", "9"),
        ("STORE_DEADLINE_MS", "750"),
        ("LAST_USE_FAILURE", "serve"),
        ("TOKEN_PREFIX", "dz"),
        ("DEMO_USERS", "a@x:demo-secret:t"),
        ("CLIENT_IP_HEADER", "x-forwarded-for"),
        ("TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.1"),
        ("HEALTH_BIND", "127.0.0.1:10"),
        ("HEADER_READ_TIMEOUT_MS", "1001"),
        ("BODY_READ_TIMEOUT_MS", "1002"),
        ("REQUEST_TIMEOUT_MS", "1003"),
        ("MAX_CONNECTIONS", "11"),
        ("MAX_CONNECTIONS_PER_ADDRESS", "12"),
        ("MAX_IN_FLIGHT", "13"),
        ("SHUTDOWN_TIMEOUT_MS", "1004"),
        ("PASSWORD_HASHERS", "3"),
        ("PASSWORD_QUEUE_TIMEOUT_MS", "1005"),
        ("LOGIN_ATTEMPTS_PER_ADDRESS", "14"),
        ("LOGIN_ATTEMPTS_PER_NETWORK", "15"),
        ("LOGIN_ATTEMPTS_PER_ACCOUNT_ADDRESS", "16"),
        ("LOGIN_ATTEMPTS_PER_ACCOUNT", "17"),
        ("CONFIRM_ATTEMPTS_PER_TOKEN", "18"),
        ("LIMITER_MAX_KEYS", "19"),
        ("LOG_FORMAT", "json"),
        ("TOKEN_CACHE", "on"),
        ("ALLOW_NEVER_EXPIRING", "true"),
        ("TOKEN_IDLE_DAYS", "30"),
        ("TOKEN_DESCRIPTION_CHARS", "3-255"),
        ("REDIS_FAILURE", "allow"),
        ("REDIS_DEADLINE_MS", "400"),
    ]
    .into_iter()
    .collect();
    let c = app::Config::from_lookup(|k| set.get(k).map(|v| (*v).to_owned())).unwrap();
    let ms = Duration::from_millis;
    assert_eq!(
        (
            c.bind.as_str(),
            c.database_create,
            c.database_max_connections
        ),
        ("127.0.0.1:9", Some(false), 7)
    );
    assert_eq!(
        (
            c.database_acquire_timeout,
            c.database_startup_timeout,
            c.store_deadline
        ),
        (ms(1500), Duration::from_secs(9), Some(ms(750)))
    );
    assert_eq!(c.last_use_failure, api_tokens::LastUseFailure::ServeRequest);
    assert_eq!((c.token_prefix.as_str(), c.log_json), ("dz", true));
    assert_eq!(c.trusted_proxies.len(), 2);
    assert_eq!(c.health_bind.as_deref(), Some("127.0.0.1:10"));
    let l = &c.limits;
    assert_eq!(
        (
            l.header_read_timeout,
            l.body_read_timeout,
            l.request_timeout,
            l.shutdown_timeout
        ),
        (ms(1001), ms(1002), ms(1003), ms(1004))
    );
    assert_eq!(
        (
            l.max_connections,
            l.max_connections_per_address,
            l.max_in_flight
        ),
        (11, 12, 13)
    );
    assert_eq!(
        (l.password_hashers, l.password_queue_timeout),
        (3, ms(1005))
    );
    let g = &c.login;
    assert_eq!(
        (
            g.per_address,
            g.per_network,
            g.per_account_address,
            g.per_account
        ),
        (14, 15, 16, 17)
    );
    assert_eq!((g.confirm_per_token, g.max_keys), (18, 19));
    assert!(c.token_cache && c.allow_never_expiring);
    assert_eq!(
        (c.idle_days, c.description_chars),
        (Some(30), Some((3, 255)))
    );
    assert_eq!(c.redis_failure, api_tokens::RedisFailure::Allow);
    assert_eq!(c.redis_deadline, ms(400));
    let defaults = app::Config::from_lookup(|_| None).unwrap();
    assert_eq!(
        defaults.redis_deadline,
        ms(250),
        "a busy machine's Redis has time"
    );
    let shown = format!("{c:?}");
    assert!(
        !shown.contains("secret-pw") && !shown.contains("demo-secret"),
        "Debug leaves out passwords: {shown}"
    );

    for (name, bad) in [
        ("DATABASE_MAX_CONNECTIONS", "0"),
        ("STORE_DEADLINE_MS", "soon"),
        ("LAST_USE_FAILURE", "maybe"),
        ("MAX_CONNECTIONS_PER_ADDRESS", "-1"),
        ("LOGIN_ATTEMPTS_PER_NETWORK", "lots"),
        ("TRUSTED_PROXIES", "10.0.0.0/33"),
        ("LOG_FORMAT", "xml"),
        ("DATABASE_CREATE", "perhaps"),
        ("TOKEN_CACHE", "sometimes"),
        ("ALLOW_NEVER_EXPIRING", "yes"),
        ("TOKEN_IDLE_DAYS", "0"),
        ("TOKEN_IDLE_DAYS", "36501"),
        ("TOKEN_DESCRIPTION_CHARS", "255-3"),
        ("TOKEN_DESCRIPTION_CHARS", "3-1025"),
        ("TOKEN_DESCRIPTION_CHARS", "0-0"),
        ("TOKEN_DESCRIPTION_CHARS", "three"),
        ("REDIS_FAILURE", "maybe"),
        ("REDIS_DEADLINE_MS", "0"),
        ("REDIS_DEADLINE_MS", "10001"),
        ("REDIS_DEADLINE_MS", "fast"),
    ] {
        let err = app::Config::from_lookup(|k| (k == name).then(|| bad.to_owned())).unwrap_err();
        assert!(err.contains(name), "{name}={bad}: {err}");
    }
    let err = app::Config::from_lookup(|k| (k == "CLIENT_IP_HEADER").then(|| "x-real-ip".into()))
        .unwrap_err();
    assert!(err.contains("TRUSTED_PROXIES"), "{err}");
}
