//! `examples/actix.rs` and `examples/tower.rs` as a user would run them: started as
//! processes, driven over real HTTP through their whole token API.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};

/// Build `example` (with `features`) into this test's target directory; its path.
fn binary(example: &str, features: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test's path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps/<test>");
    let target_dir = profile_dir.parent().expect("target/<profile>");
    let mut build = Command::new(env!("CARGO"));
    build
        .args([
            "build",
            "--quiet",
            "--example",
            example,
            "--features",
            features,
        ])
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        build.arg("--release");
    }
    assert!(
        build.status().expect("cargo build").success(),
        "{example} builds"
    );
    profile_dir.join("examples").join(example)
}

/// A running example: the process, its base URL and the token it printed.
struct Running {
    child: Child,
    base: String,
    token: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(example: &str, features: &str) -> Running {
    let mut child = Command::new(binary(example, features))
        .env("BIND", "127.0.0.1:0")
        .env_remove("DATABASE_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the example");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let (mut base, mut token) = (None, None);
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(60)) {
        if let Some(rest) = line.strip_prefix("listening on ") {
            base = Some(rest.trim().to_owned());
        }
        if let Some(rest) = line.split_once("(shown once): ") {
            token = Some(rest.1.trim().to_owned());
        }
        if let (Some(base), Some(token)) = (&base, &token) {
            return Running {
                child,
                base: base.clone(),
                token: token.clone(),
            };
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("{example} did not start");
}

async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = client.request(method, url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let r = request.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn the_token_api_works(example: &str, features: &str) {
    let running = start(example, features);
    let (base, token) = (&running.base, running.token.as_str());
    let client = reqwest::Client::new();
    use reqwest::Method;

    let (status, me) = call(
        &client,
        Method::GET,
        format!("{base}/me"),
        Some(token),
        None,
    )
    .await;
    assert_eq!(status, 200, "{example}: {me}");
    assert_eq!(me["owner"], "demo");

    let (status, body) = call(&client, Method::GET, format!("{base}/me"), None, None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("invalid_token")),
        "{example}"
    );

    let create = json!({ "name": "ci", "scopes": ["tokens:read"], "expires_in_days": 30 });
    let (status, made) = call(
        &client,
        Method::POST,
        format!("{base}/tokens"),
        Some(token),
        Some(create),
    )
    .await;
    assert_eq!(status, 201, "{example}: {made}");
    let child = made["token"].as_str().unwrap().to_owned();
    let child_id = made["token_info"]["id"].as_str().unwrap().to_owned();
    assert!(
        made["token_info"]["created_by"].as_str().is_some(),
        "{example}: {made}"
    );

    let wider = json!({ "name": "x", "scopes": ["admin"] });
    let (status, body) = call(
        &client,
        Method::POST,
        format!("{base}/tokens"),
        Some(token),
        Some(wider),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("insufficient_scope")),
        "{example}"
    );

    let (status, page) = call(
        &client,
        Method::GET,
        format!("{base}/tokens"),
        Some(token),
        None,
    )
    .await;
    assert_eq!(status, 200, "{example}: {page}");
    assert_eq!(page["meta"]["total"], 2, "{example}: {page}");

    let (status, _) = call(
        &client,
        Method::GET,
        format!("{base}/me"),
        Some(&child),
        None,
    )
    .await;
    assert_eq!(status, 200, "{example}: the child verifies");
    let (status, body) = call(
        &client,
        Method::DELETE,
        format!("{base}/tokens/not-an-id"),
        Some(token),
        None,
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("not_found")),
        "{example}"
    );
    let (status, _) = call(
        &client,
        Method::DELETE,
        format!("{base}/tokens/{child_id}"),
        Some(token),
        None,
    )
    .await;
    assert!(
        (200..300).contains(&status),
        "{example}: revoke answered {status}"
    );
    let (status, _) = call(
        &client,
        Method::GET,
        format!("{base}/me"),
        Some(&child),
        None,
    )
    .await;
    assert_eq!(status, 401, "{example}: the revoked child is refused");
}

#[tokio::test]
async fn the_actix_example_serves_the_token_api() {
    the_token_api_works("actix", "actix sqlite").await;
}

#[tokio::test]
async fn the_tower_example_serves_the_token_api() {
    the_token_api_works("tower", "tower sqlite").await;
}
