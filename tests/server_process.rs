//! The example server as a process: what it does at startup with its configuration.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const USERS: &str = "alice@example.com:alice-pw:tenant_a";

/// The example server's binary, built now (a no-op when it is up to date) in this test's
/// own target directory and profile.
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
        .args(["--features", "axum sqlite postgres"])
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

/// Start the server and wait until it listens; the lines it printed to stderr until then.
fn start(mut c: Command) -> (Child, Vec<String>) {
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
        let listening = line.starts_with("listening on");
        lines.push(line);
        if listening {
            return (child, lines);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the server did not start listening; it said {lines:?}");
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
