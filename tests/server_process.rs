//! The example server as a process: what it does at startup with its configuration, on
//! SIGTERM, under a login flood and with few file descriptors, and what it logs.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const USERS: &str = "alice@example.com:alice-pw:tenant_a";

/// The example server's binary, built now (a no-op when it is up to date) in this test's
/// own target directory and profile.
/// The features the example server needs (its `required-features`).
const SERVER_FEATURES: &str = "axum sqlite postgres cache rate-limit redis audit metrics tracing";

fn server_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps/<test>");
    let target_dir = profile_dir.parent().expect("target/<profile>");
    let mut build = Command::new(env!("CARGO"));
    build
        .args(["build", "--quiet", "--example", "server"])
        .args(["--features", SERVER_FEATURES])
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        build.arg("--release");
    }
    let status = build.status().expect("run cargo build");
    assert!(status.success(), "the example server does not build");
    profile_dir.join("examples").join("server")
}

fn command(url: &str) -> Command {
    let mut c = Command::new(server_binary());
    c.env("DATABASE_URL", url)
        .env("BIND", "127.0.0.1:0")
        .env("DEMO_USERS", USERS)
        .env_remove("DATABASE_CREATE")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    c
}

/// A running server: the process, its address, and the lines it has written to stderr.
struct Running {
    child: Child,
    address: String,
    lines: Vec<String>,
    more: mpsc::Receiver<String>,
}

impl Running {
    /// Every line written so far (waiting `settle` for more).
    fn logs(&mut self, settle: Duration) -> &[String] {
        while let Ok(line) = self.more.recv_timeout(settle) {
            self.lines.push(line);
        }
        &self.lines
    }

    fn request(&self, raw: &str) -> String {
        let mut stream = TcpStream::connect(&self.address).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.write_all(raw.as_bytes()).expect("send");
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer
    }

    /// A JSON request (`Connection: close`); the whole answer, head and body.
    fn json(&self, method: &str, path: &str, token: Option<&str>, body: &str) -> String {
        let auth = token.map_or(String::new(), |t| format!("authorization: Bearer {t}\r\n"));
        self.request(&format!(
            "{method} {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n{auth}content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        ))
    }

    fn stop(mut self) -> Vec<String> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.logs(Duration::from_millis(200));
        self.lines
    }
}

/// Start the server and wait until it listens.
fn start(c: Command) -> (Child, Vec<String>) {
    let running = launch(c);
    (running.child, running.lines)
}

/// Start the server and wait until it listens; it keeps its stderr flowing to the test.
fn launch(mut c: Command) -> Running {
    let mut child = c.stderr(Stdio::piped()).spawn().expect("start the server");
    let stderr = child.stderr.take().expect("its stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(60)) {
        let listening = line.split_once("listening on http://").map(|(_, rest)| {
            rest.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || ".:[]".contains(*c))
                .collect::<String>()
        });
        lines.push(line);
        if let Some(address) = listening {
            return Running {
                child,
                address,
                lines,
                more: rx,
            };
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the server did not start listening; it said {lines:?}");
}

/// A new SQLite database in a temporary directory, created by the server.
fn fresh_sqlite() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!("sqlite://{}", dir.path().join("tokens.db").display());
    (dir, url)
}

fn access_token(answer: &str) -> String {
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    v["access_token"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn a_missing_sqlite_file_is_created_only_when_asked() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("tokens.db");
    let url = format!("sqlite://{}", path.display());

    // Not asked: the server refuses to start, says what to do, and creates nothing.
    let out = command(&url).output().expect("run the server");
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("DATABASE_CREATE=true"), "{said}");
    assert!(
        !path.exists(),
        "a database file was created without DATABASE_CREATE"
    );

    // Asked: it creates the file, says so, and serves.
    let mut first = command(&url);
    first.env("DATABASE_CREATE", "true");
    let (mut child, lines) = start(first);
    child.kill().expect("stop the server");
    let _ = child.wait();
    assert!(path.exists());
    assert!(
        lines
            .iter()
            .any(|l| l.contains("created a new, empty token database")),
        "{lines:?}"
    );

    // Later starts open the existing file without being asked, and without the notice.
    let (mut child, lines) = start(command(&url));
    child.kill().expect("stop the server");
    let _ = child.wait();
    assert!(!lines.iter().any(|l| l.contains("created")), "{lines:?}");

    // A nonsense setting is refused.
    let out = command(&url)
        .env("DATABASE_CREATE", "maybe")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("DATABASE_CREATE must be"));
}

/// SIGTERM with five requests half sent: the server stops accepting, waits for them at most
/// `SHUTDOWN_TIMEOUT_MS`, says so, and exits cleanly.
#[test]
fn sigterm_exits_by_the_shutdown_deadline() {
    let (_dir, url) = fresh_sqlite();
    let mut c = command(&url);
    c.env("DATABASE_CREATE", "true")
        .env("SHUTDOWN_TIMEOUT_MS", "1000")
        .env("BODY_READ_TIMEOUT_MS", "60000")
        .env("HEADER_READ_TIMEOUT_MS", "60000");
    let mut server = launch(c);
    let mut half_sent = Vec::new();
    for _ in 0..5 {
        let mut stream = TcpStream::connect(&server.address).unwrap();
        stream
            .write_all(b"POST /auth/token HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{")
            .unwrap();
        half_sent.push(stream);
    }
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let killed = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "still running 10 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = started.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "exited after {took:?}"
    );
    let logs = server.logs(Duration::from_millis(200)).join("\n");
    assert!(logs.contains("shutdown deadline passed"), "{logs}");
}

/// PostgreSQL unreachable at startup: retried with backoff, each retry said, then a clear
/// error once `DATABASE_STARTUP_TIMEOUT_SECS` has passed.
#[test]
fn an_unreachable_postgres_is_retried_then_reported() {
    let started = Instant::now();
    let out = command("postgres://postgres@127.0.0.1:1/test")
        .env("DATABASE_STARTUP_TIMEOUT_SECS", "4")
        .output()
        .expect("run the server");
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.matches("PostgreSQL is unreachable; retrying").count() >= 2,
        "{said}"
    );
    assert!(said.contains("stayed unreachable"), "{said}");
    assert!(started.elapsed() < Duration::from_secs(20));
}

/// PostgreSQL that comes up while the server waits: the server starts serving.
#[test]
#[cfg_attr(
    not(api_tokens_postgres_tests),
    ignore = "set API_TOKENS_TEST_POSTGRES_URL to run the PostgreSQL tests"
)]
fn a_postgres_that_comes_up_late_is_waited_for() {
    // A port nothing listens on yet; after 2.5 s, a relay from it to the real server.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let real: url_parts::Target = url_parts::target();
    let mut c = command(&format!(
        "postgres://{}@127.0.0.1:{port}/{}",
        real.user, real.database
    ));
    c.env("DATABASE_STARTUP_TIMEOUT_SECS", "30");
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(2500));
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        for client in listener.incoming().map_while(Result::ok) {
            let server = TcpStream::connect(&real.address).unwrap();
            let (mut a, b) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || std::io::copy(&mut a, &mut b.try_clone().unwrap()));
            let (mut c, mut d) = (server, client);
            std::thread::spawn(move || std::io::copy(&mut c, &mut d));
        }
    });
    let server = launch(c);
    let answer = server.request("GET /readyz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let logs = server.stop().join("\n");
    assert!(
        logs.contains("PostgreSQL is unreachable; retrying"),
        "{logs}"
    );
}

/// The real PostgreSQL server of `API_TOKENS_TEST_POSTGRES_URL`, for the relay above.
mod url_parts {
    pub struct Target {
        pub address: String,
        pub user: String,
        pub database: String,
    }

    pub fn target() -> Target {
        let url = std::env::var("API_TOKENS_TEST_POSTGRES_URL").expect("the PostgreSQL URL");
        let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
        let (auth, rest) = rest.split_once('@').unwrap_or(("postgres", rest));
        let (host, database) = rest.split_once('/').unwrap_or((rest, "test"));
        let host = if host.contains(':') {
            host.to_owned()
        } else {
            format!("{host}:5432")
        };
        Target {
            address: host,
            user: auth.split(':').next().unwrap_or("postgres").to_owned(),
            database: database.split('?').next().unwrap_or("test").to_owned(),
        }
    }
}

/// 64 clients logging in with made-up emails for 8 seconds: every login is answered (401,
/// or 503 when the hashers stay busy) and the server's peak RSS stays under 300 MB.
#[test]
fn a_login_flood_keeps_peak_memory_under_300_mb() {
    let (_dir, url) = fresh_sqlite();
    let mut c = command(&url);
    c.env("DATABASE_CREATE", "true")
        .env("LOGIN_ATTEMPTS_PER_ADDRESS", "1000000")
        .env("LOGIN_ATTEMPTS_PER_ACCOUNT_ADDRESS", "1000000")
        .env("LOGIN_ATTEMPTS_PER_ACCOUNT", "1000000")
        .env("LOGIN_ATTEMPTS_PER_NETWORK", "1000000")
        .env("RUST_LOG", "warn,server=info,server::app=warn");
    let server = launch(c);
    let pid = server.child.id();
    let until = Instant::now() + Duration::from_secs(8);
    let answered: Vec<_> = (0..64)
        .map(|i| {
            let address = server.address.clone();
            std::thread::spawn(move || {
                let mut statuses = Vec::new();
                let mut n = 0;
                while Instant::now() < until {
                    let body = format!(r#"{{"email":"flood-{i}-{n}@example.com","password":"guess"}}"#);
                    n += 1;
                    let Ok(mut stream) = TcpStream::connect(&address) else {
                        continue;
                    };
                    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                    let request = format!(
                        "POST /auth/token HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    let mut answer = String::new();
                    if stream.write_all(request.as_bytes()).is_ok() {
                        let _ = stream.read_to_string(&mut answer);
                    }
                    statuses.push(answer.get(9..12).unwrap_or("???").to_owned());
                }
                statuses
            })
        })
        .collect();
    let statuses: Vec<String> = answered
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let peak_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    let logs = server.stop();
    let count = |code: &str| statuses.iter().filter(|s| *s == code).count();
    println!(
        "login flood: {} logins answered ({} × 401, {} × 503), peak RSS {} MB",
        statuses.len(),
        count("401"),
        count("503"),
        peak_kb / 1024
    );
    assert!(count("401") > 0, "{logs:?}");
    assert_eq!(count("401") + count("503"), statuses.len(), "{statuses:?}");
    assert!(peak_kb < 300 * 1024, "peak RSS {} MB", peak_kb / 1024);
}

/// With 256 file descriptors, 300 idle sockets cannot stop the service: connections over
/// the cap are answered 503 (or closed, when many are being refused), the health listener
/// answers meanwhile, and idle ones are closed at the header deadline.
#[test]
fn idle_sockets_cannot_use_up_the_file_descriptors() {
    let (_dir, url) = fresh_sqlite();
    let server_binary = server_binary();
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(format!("ulimit -n 256 && exec {}", server_binary.display()))
        .env("DATABASE_URL", &url)
        .env("DATABASE_CREATE", "true")
        .env("BIND", "127.0.0.1:0")
        .env("DEMO_USERS", USERS)
        .env("HEADER_READ_TIMEOUT_MS", "2000")
        .env("HEALTH_BIND", "127.0.0.1:0")
        .env("RUST_LOG", "warn,server=info")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let mut server = launch(c);
    let health = server
        .lines
        .iter()
        .find_map(|l| l.split_once("health checks and metrics on http://"))
        .map(|(_, rest)| {
            rest.split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned()
        })
        .expect("the health listener's address in the log");
    let idle: Vec<_> = (0..300)
        .filter_map(|_| TcpStream::connect(&server.address).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // While they are held: the API answers 503 or closes at once, never hangs...
    let answer = server.request("GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    assert!(
        answer.is_empty()
            || answer.starts_with("HTTP/1.1 503")
            || answer.starts_with("HTTP/1.1 200"),
        "{answer:?}"
    );
    // ...and the health listener answers.
    let mut probe = TcpStream::connect(&health).expect("the health listener");
    probe
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    probe
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    let _ = probe.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "health: {answer:?}");
    // After the header deadline they are gone, and the service is whole again.
    std::thread::sleep(Duration::from_millis(2500));
    let answer = server.request("GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(server.child.try_wait().unwrap().is_none(), "still running");
    drop(idle);
    let logs = server.logs(Duration::from_millis(100)).join("\n");
    assert!(logs.contains("shed a connection"), "{logs}");
}

/// A 500, a 503 and a shed request each log one line saying why; one log line per request;
/// no token or password ever appears in the logs.
#[test]
fn failures_and_shedding_each_log_why() {
    let (dir, url) = fresh_sqlite();
    let mut c = command(&url);
    c.env("DATABASE_CREATE", "true")
        .env("MAX_IN_FLIGHT", "4")
        .env("PASSWORD_HASHERS", "1")
        .env("PASSWORD_QUEUE_TIMEOUT_MS", "1")
        .env("LOG_FORMAT", "json");
    let mut server = launch(c);
    let login = server.json(
        "POST",
        "/auth/token",
        None,
        r#"{"email":"alice@example.com","password":"alice-pw"}"#,
    );
    let token = access_token(&login);
    assert!(!token.is_empty(), "{login}");

    // 503: more logins at once than the one hasher takes within 1 ms.
    let address = server.address.clone();
    let busy: Vec<_> = (0..4)
        .map(|_| {
            let address = address.clone();
            std::thread::spawn(move || {
                let body = r#"{"email":"alice@example.com","password":"wrong-pw"}"#;
                let mut s = TcpStream::connect(&address).unwrap();
                write!(s, "POST /auth/token HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}", body.len()).unwrap();
                let mut answer = String::new();
                let _ = s.read_to_string(&mut answer);
                answer
            })
        })
        .collect();
    let busy: Vec<String> = busy.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(
        busy.iter().any(|a| a.starts_with("HTTP/1.1 503")),
        "{busy:?}"
    );

    // Shed: four requests hold every slot.
    let held: Vec<_> = (0..4)
        .map(|_| {
            let mut s = TcpStream::connect(&server.address).unwrap();
            s.write_all(b"POST /auth/token HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{").unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let shed = server.json("GET", "/api/v1/me", Some(&token), "");
    assert!(shed.starts_with("HTTP/1.1 503"), "{shed}");
    drop(held);
    std::thread::sleep(Duration::from_millis(300));

    // 500: the token table is gone from under the running server.
    let db = dir.path().join("tokens.db");
    let dropped = Command::new("python3")
        .arg("-c")
        .arg(format!(
            "import sqlite3; c = sqlite3.connect({:?}); c.execute('DROP TABLE api_tokens'); c.commit()",
            db.display().to_string()
        ))
        .status()
        .expect("python3 with sqlite3");
    assert!(dropped.success());
    let failed = server.json("GET", "/api/v1/me", Some(&token), "");
    assert!(failed.starts_with("HTTP/1.1 5"), "{failed}");
    // And the store is not ready (once the last second's answer has aged).
    std::thread::sleep(Duration::from_millis(1100));
    let ready = server.request("GET /readyz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    assert!(ready.starts_with("HTTP/1.1 503"), "{ready}");

    let logs = server.logs(Duration::from_millis(300)).join("\n");
    for why in [
        "every password checker stayed busy",
        "shed a request: MAX_IN_FLIGHT",
        "the token store could not answer",
        "not ready: the token store failed",
    ] {
        assert_eq!(
            logs.lines().filter(|l| l.contains(why)).count(),
            if why.starts_with("every") {
                busy.iter()
                    .filter(|a| a.starts_with("HTTP/1.1 503"))
                    .count()
            } else {
                1
            },
            "{why}\n{logs}"
        );
    }
    let requests: Vec<_> = logs
        .lines()
        .filter(|l| l.contains("\"answered\""))
        .collect();
    assert!(
        requests
            .iter()
            .any(|l| l.contains("\"route\":\"/api/v1/me\"") && l.contains("\"status\":503")),
        "{logs}"
    );
    for line in logs.lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    }
    let secret = token.rsplit('_').next().unwrap();
    assert!(!logs.contains(secret), "a token in the logs");
    assert!(
        !logs.contains("alice-pw") && !logs.contains("wrong-pw"),
        "a password in the logs"
    );
    server.stop();
}

/// Two server processes with `TOKEN_CACHE=on` on one PostgreSQL table: a token revoked on
/// one is refused by the other (which had it cached) within milliseconds.
#[test]
#[cfg_attr(
    not(api_tokens_postgres_tests),
    ignore = "set API_TOKENS_TEST_POSTGRES_URL to run the PostgreSQL tests"
)]
fn a_revocation_on_one_server_reaches_another_at_once() {
    let base = std::env::var("API_TOKENS_TEST_POSTGRES_URL").expect("the PostgreSQL URL");
    let schema = format!("api_tokens_test_two_{}", std::process::id());
    let psql = |sql: &str| {
        let ok = Command::new("psql")
            .args([base.as_str(), "-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .env("PGOPTIONS", "--client-min-messages=warning")
            .status()
            .expect("psql");
        assert!(ok.success(), "{sql}");
    };
    psql(&format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
    ));
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-csearch_path%3D{schema}");
    let mut a = command(&url);
    a.env("TOKEN_CACHE", "on");
    let a = launch(a);
    let mut b = command(&url);
    b.env("TOKEN_CACHE", "on");
    let b = launch(b);

    let login = a.json(
        "POST",
        "/auth/token",
        None,
        r#"{"email":"alice@example.com","password":"alice-pw"}"#,
    );
    let token = access_token(&login);
    assert!(!token.is_empty(), "{login}");
    // b verifies it and keeps it cached (once its invalidations are confirmed).
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(
            b.json("GET", "/api/v1/me", Some(&token), "")
                .starts_with("HTTP/1.1 200")
        );
        let metrics = b.request("GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
        let hits = metrics
            .lines()
            .find_map(|l| l.strip_prefix("token_cache_hits "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0);
        if hits >= 1.0 {
            break;
        }
        assert!(
            Instant::now() < until,
            "b never answered from its cache:\n{metrics}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let revoked = a.json("DELETE", "/auth/token", Some(&token), "");
    assert!(revoked.starts_with("HTTP/1.1 200"), "{revoked}");
    let returned = Instant::now();
    loop {
        let answer = b.json("GET", "/api/v1/me", Some(&token), "");
        if answer.starts_with("HTTP/1.1 401") {
            break;
        }
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(
            returned.elapsed() < Duration::from_millis(500),
            "b still served the revoked token {:?} after the revocation returned",
            returned.elapsed()
        );
    }
    println!(
        "two servers: b refused the token {:?} after a revoked it",
        returned.elapsed()
    );
    a.stop();
    b.stop();
    psql(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
}
