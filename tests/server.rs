//! The example server's API, end to end: its router started in-process on 127.0.0.1:0 and
//! driven with a real HTTP client, on SQLite and (with `API_TOKENS_TEST_POSTGRES_URL`) on
//! PostgreSQL.

mod common;
mod server_harness;

use server_harness::*;

use reqwest::StatusCode;
use reqwest::header::HeaderValue;
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};
// ---------------------------------------------------------------------------------------
// Scenarios, each run once per database.

async fn login_issues_a_bearer_token(s: &Server) {
    let (status, body) = s.login("Alice@Example.com", "alice-pw").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["access_token"].as_str().unwrap();
    assert!(token.starts_with("api_prod_"));
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["token_id"].as_str().unwrap().len(), 32);
    assert_eq!(body["user"]["email"], "alice@example.com");
    assert_eq!(body["user"]["tenant_id"], "tenant_a");
    assert!(body["user"]["id"].as_str().unwrap().starts_with("user_"));
    let lifetime = parse_time(&body["expires_at"]) - OffsetDateTime::now_utc();
    assert!(
        (lifetime - Duration::days(365)).abs() < Duration::minutes(1),
        "{lifetime}"
    );
    let (status, me) = s.get("/api/v1/me", token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        me["token"]["scopes"],
        json!(["profile:read", "tokens:read", "tokens:write"])
    );
}

async fn login_rejects_bad_requests_and_credentials(s: &Server) {
    let post = |body: &'static str, ctype: &'static str| {
        s.http
            .post(s.url("/auth/token"))
            .header("content-type", ctype)
            .body(body)
            .send()
    };
    for (body, ctype, expected) in [
        ("{not json", "application/json", StatusCode::BAD_REQUEST),
        (
            r#"{"email":"alice@example.com"}"#,
            "application/json",
            StatusCode::BAD_REQUEST,
        ),
        (
            r#"{"email":1,"password":2}"#,
            "application/json",
            StatusCode::BAD_REQUEST,
        ),
        ("", "application/json", StatusCode::BAD_REQUEST),
        (
            r#"{"email":"a","password":"b"}"#,
            "text/plain",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
    ] {
        let r = post(body, ctype).await.unwrap();
        assert_eq!(r.status(), expected, "{body}");
        let json: Value = r.json().await.unwrap();
        assert!(json["code"].is_string() && json["message"].is_string());
        assert!(
            !json.to_string().contains("alice@example.com"),
            "the body is not echoed"
        );
    }
    let (s1, wrong_password) = s.login("alice@example.com", "nope").await;
    let (s2, unknown_email) = s.login("nobody@example.com", "alice-pw").await;
    assert_error(
        s1,
        &wrong_password,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    );
    assert_eq!(
        (s1, &wrong_password),
        (s2, &unknown_email),
        "the same answer for both"
    );
}

async fn failed_logins_are_rate_limited(s: &Server) {
    let s = s.with(&[("LOGIN_ATTEMPTS_PER_ACCOUNT_ADDRESS", "5")]).await;
    for _ in 0..5 {
        let (status, _) = s.login("bob@example.com", "wrong").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let r = s
        .http
        .post(s.url("/auth/token"))
        .json(&json!({ "email": "bob@example.com", "password": "bob-pw" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "too_many_requests");
    let (status, _) = s.login("alice@example.com", "alice-pw").await;
    assert_eq!(status, StatusCode::OK, "other emails are not limited");
    let (status, _) = s
        .login_from("bob@example.com", "bob-pw", "198.51.100.7")
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "bob from another address is not limited by failures from this one"
    );
}

/// 24 logins for one email at once, 23 wrong and the right one last: exactly the allowance
/// reaches the password check; the rest are refused before it.
async fn parallel_logins_cannot_outrun_the_limit(s: &Server) {
    let s = s.with(&[("LOGIN_ATTEMPTS_PER_ACCOUNT_ADDRESS", "5")]).await;
    let tasks: Vec<_> = (0..24)
        .map(|i| {
            let password = if i == 23 { "bob-pw" } else { "wrong" };
            let request = s
                .http
                .post(s.url("/auth/token"))
                .json(&json!({ "email": "bob@example.com", "password": password }));
            tokio::spawn(send(request))
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    let count = |status| answers.iter().filter(|(s, _)| *s == status).count();
    assert_eq!(
        count(StatusCode::UNAUTHORIZED) + count(StatusCode::OK),
        5,
        "{answers:?}"
    );
    assert_eq!(count(StatusCode::TOO_MANY_REQUESTS), 19, "{answers:?}");
}

/// Anyone can send failed logins for bob; that never stops bob, holding a valid token,
/// from revoking a leaked one. A thief holding the leaked token cannot guess bob's password
/// through confirmations faster than the leaked token's family allows, whatever address
/// it speaks from or however many tokens it mints from the leaked one, and cannot spend
/// the confirmations of bob's own login. Revoking the leaked token kills what the thief
/// minted from it.
async fn failed_logins_never_stop_a_token_holder_from_revoking(s: &Server) {
    let s = s
        .with(&[
            ("LOGIN_ATTEMPTS_PER_ACCOUNT_ADDRESS", "5"),
            ("LOGIN_ATTEMPTS_PER_ACCOUNT", "20"),
            ("CONFIRM_ATTEMPTS_PER_TOKEN", "2"),
        ])
        .await;
    let (_, bob) = s
        .login_from("bob@example.com", "bob-pw", "192.0.2.10")
        .await;
    let bob = bob["access_token"].as_str().unwrap().to_owned();
    let (status, leaked) = s
        .create(
            &bob,
            json!({ "name": "ci", "scopes": ["tokens:write", "tokens:read", "profile:read"] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{leaked}");
    let leaked_token = leaked["token"].as_str().unwrap().to_owned();
    let leaked_id = leaked["token_info"]["id"].as_str().unwrap().to_owned();

    // The thief mints a token from the leaked one and guesses bob's password with both,
    // from a new address each time: two guesses, then 429, for the whole family.
    let (status, minted) = s
        .create(
            &leaked_token,
            json!({ "name": "thief", "scopes": ["tokens:write"] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{minted}");
    let minted_token = minted["token"].as_str().unwrap().to_owned();
    let mut guesses = Vec::new();
    for i in 0..6 {
        let token = if i % 2 == 0 {
            &leaked_token
        } else {
            &minted_token
        };
        let r = s
            .http
            .delete(s.url(&format!("/api/v1/tokens/{leaked_id}")))
            .bearer_auth(token)
            .header("x-test-client-ip", format!("198.51.100.{i}"))
            .json(&json!({ "password": format!("guess-{i}") }))
            .send()
            .await
            .unwrap();
        guesses.push(r.status());
    }
    assert_eq!(
        guesses,
        [
            StatusCode::FORBIDDEN,
            StatusCode::FORBIDDEN,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::TOO_MANY_REQUESTS,
        ],
        "two wrong passwords, then the family's confirmations are spent"
    );

    // The thief locks bob's login from everywhere: the per-email limit is spent.
    for i in 0..25 {
        s.login_from("bob@example.com", "guess", &format!("203.0.113.{i}"))
            .await;
    }
    let (status, _) = s
        .login_from("bob@example.com", "bob-pw", "192.0.2.10")
        .await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "the email's limit is spent"
    );
    // Bob's password-confirmed revocation, with his own login token, still goes through.
    let r = s
        .http
        .delete(s.url(&format!("/api/v1/tokens/{leaked_id}")))
        .bearer_auth(&bob)
        .header("x-test-client-ip", "192.0.2.10")
        .json(&json!({ "password": "bob-pw", "reason": "leaked" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    for (what, token) in [
        ("the leaked token", &leaked_token),
        ("what it minted", &minted_token),
    ] {
        assert_eq!(
            s.get("/api/v1/me", token).await.0,
            StatusCode::UNAUTHORIZED,
            "{what} is dead"
        );
    }
    assert_eq!(s.get("/api/v1/me", &bob).await.0, StatusCode::OK);
}

/// Made-up emails are counted too (per address), and an absurd email is refused before
/// anything is hashed or remembered.
async fn unknown_emails_are_limited_per_address(s: &Server) {
    let s = s.with(&[("LOGIN_ATTEMPTS_PER_ADDRESS", "10")]).await;
    let mut answers = Vec::new();
    for i in 0..20 {
        let email = format!("nobody{i}@example.com");
        answers.push(s.login_from(&email, "x", "192.0.2.77").await.0);
    }
    let limited = answers
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(limited, 10, "{answers:?}");
    let (status, body) = s
        .login_from(&"a".repeat(64 * 1024 - 100), "x", "192.0.2.78")
        .await;
    assert_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    );
}

/// A token never outlives the token that created it.
async fn tokens_never_outlive_their_creator(s: &Server) {
    let alice = s.alice().await;
    let (status, parent) = s
        .create(
            &alice,
            json!({ "name": "parent", "expires_in_days": 1, "scopes": ["tokens:write", "tokens:read", "profile:read"] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{parent}");
    let parent_token = parent["token"].as_str().unwrap();
    let parent_expiry = parse_time(&parent["token_info"]["expires_at"]);

    for body in [
        json!({ "name": "child", "expires_in_days": 365, "scopes": ["tokens:write"] }),
        json!({ "name": "child", "scopes": ["tokens:write"] }),
        json!({ "name": "child", "expires_in_days": 1, "scopes": ["tokens:write"] }),
    ] {
        let (status, child) = s.create(parent_token, body.clone()).await;
        assert_eq!(status, StatusCode::CREATED, "{child}");
        assert_eq!(
            parse_time(&child["token_info"]["expires_at"]),
            parent_expiry,
            "{body}: cut to the creator's expiry"
        );
        // And the cut holds one generation further down.
        let (status, grandchild) = s
            .create(
                child["token"].as_str().unwrap(),
                json!({ "name": "g", "expires_in_days": 365, "scopes": [] }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{grandchild}");
        assert_eq!(
            parse_time(&grandchild["token_info"]["expires_at"]),
            parent_expiry
        );
    }
    let (_, short) = s
        .create(
            &alice,
            json!({ "name": "short", "expires_in_days": 1, "scopes": ["tokens:write"] }),
        )
        .await;
    let short_expiry = parse_time(&short["token_info"]["expires_at"]);
    let (status, child) = s
        .create(
            short["token"].as_str().unwrap(),
            json!({ "name": "c", "scopes": ["tokens:write"], "expires_in_days": 30 }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{child}");
    assert_eq!(parse_time(&child["token_info"]["expires_at"]), short_expiry);
}

/// Revoking a token, by id or as the token in use, revokes every token created from it,
/// however deep; the caller's other tokens keep working.
async fn revoking_a_token_revokes_the_tokens_it_created(s: &Server) {
    let alice = s.alice().await;
    let writer = json!({ "name": "w", "scopes": ["tokens:write", "profile:read"] });
    let (_, parent) = s.create(&alice, writer.clone()).await;
    let parent_token = parent["token"].as_str().unwrap().to_owned();
    let (_, child) = s.create(&parent_token, writer.clone()).await;
    let child_token = child["token"].as_str().unwrap().to_owned();
    let (_, grandchild) = s.create(&child_token, writer.clone()).await;
    let grandchild_token = grandchild["token"].as_str().unwrap().to_owned();
    let (_, sibling) = s.create(&alice, writer.clone()).await;
    let sibling_token = sibling["token"].as_str().unwrap().to_owned();
    assert_eq!(
        child["token_info"]["created_by"], parent["token_info"]["id"],
        "token_info names the creator"
    );
    for t in [&parent_token, &child_token, &grandchild_token] {
        assert_eq!(s.get("/api/v1/me", t).await.0, StatusCode::OK);
    }
    let (status, body) = s
        .revoke(
            &alice,
            parent["token_info"]["id"].as_str().unwrap(),
            json!({ "password": "alice-pw", "reason": "leaked" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for t in [&parent_token, &child_token, &grandchild_token] {
        assert_eq!(s.get("/api/v1/me", t).await.0, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(s.get("/api/v1/me", &sibling_token).await.0, StatusCode::OK);
    assert_eq!(s.get("/api/v1/me", &alice).await.0, StatusCode::OK);

    // `DELETE /auth/token` cascades too.
    let (_, child) = s.create(&sibling_token, writer).await;
    let child_token = child["token"].as_str().unwrap().to_owned();
    let r = s
        .http
        .delete(s.url("/auth/token"))
        .bearer_auth(&sibling_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        s.get("/api/v1/me", &child_token).await.0,
        StatusCode::UNAUTHORIZED
    );
}

/// Tokens created by tokens nest at most four levels below a login: the fifth is refused
/// with 403, and the login can always create more.
async fn tokens_nest_at_most_four_deep(s: &Server) {
    let alice = s.alice().await;
    let writer = json!({ "name": "w", "scopes": ["tokens:write"] });
    let mut token = alice.clone();
    for depth in 1..=4 {
        let (status, made) = s.create(&token, writer.clone()).await;
        assert_eq!(status, StatusCode::CREATED, "depth {depth}: {made}");
        token = made["token"].as_str().unwrap().to_owned();
    }
    let (status, body) = s.create(&token, writer.clone()).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "nesting_limit");
    let (status, _) = s.create(&alice, writer).await;
    assert_eq!(status, StatusCode::CREATED);
}

/// A token of a user who no longer exists gets 401 on every route.
async fn a_removed_users_tokens_get_401_everywhere(s: &Server) {
    let (_, bob) = s.login("bob@example.com", "bob-pw").await;
    let bob = bob["access_token"].as_str().unwrap().to_owned();
    let (_, created) = s.create(&bob, json!({ "name": "t" })).await;
    let id = created["token_info"]["id"].as_str().unwrap().to_owned();
    let without_bob = s.with_users("alice@example.com:alice-pw:tenant_a").await;
    let requests = [
        without_bob.http.get(without_bob.url("/api/v1/me")),
        without_bob.http.get(without_bob.url("/api/v1/tokens")),
        without_bob
            .http
            .post(without_bob.url("/api/v1/tokens"))
            .json(&json!({ "name": "n" })),
        without_bob
            .http
            .delete(without_bob.url(&format!("/api/v1/tokens/{id}")))
            .json(&json!({ "password": "bob-pw" })),
        without_bob
            .http
            .delete(without_bob.url("/api/v1/tokens"))
            .json(&json!({ "password": "bob-pw" })),
        without_bob.http.delete(without_bob.url("/auth/token")),
    ];
    for r in requests {
        let (status, body) = send(r.bearer_auth(&bob)).await;
        assert_error(status, &body, StatusCode::UNAUTHORIZED, "invalid_token");
    }
    let (status, _) = without_bob.login("bob@example.com", "bob-pw").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// `DELETE /api/v1/tokens` revokes every token of the caller, once the password is right.
async fn revoke_all_revokes_every_token_of_the_caller(s: &Server) {
    let alice = s.alice().await;
    let (_, a) = s.create(&alice, json!({ "name": "a" })).await;
    let (_, b) = s.create(&alice, json!({ "name": "b" })).await;
    let bob = s.login("bob@example.com", "bob-pw").await.1["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let revoke_all = |password: &str| {
        s.http
            .delete(s.url("/api/v1/tokens"))
            .bearer_auth(&alice)
            .json(&json!({ "password": password, "reason": "compromised laptop" }))
    };
    let (status, body) = send(revoke_all("wrong")).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "wrong_password");
    assert_eq!(s.get("/api/v1/me", &alice).await.0, StatusCode::OK);
    let (status, body) = send(revoke_all("alice-pw")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["revoked"], 3, "{body}");
    for token in [
        &alice,
        a["token"].as_str().unwrap(),
        b["token"].as_str().unwrap(),
    ] {
        assert_eq!(
            s.get("/api/v1/tokens", token).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        s.get("/api/v1/me", &bob).await.0,
        StatusCode::OK,
        "another user's tokens are untouched"
    );
    let fresh = s.alice().await;
    let (_, list) = s.get("/api/v1/tokens?include_revoked=true", &fresh).await;
    let reasons: Vec<_> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["revocation_reason"].as_str())
        .collect();
    assert_eq!(reasons, vec!["compromised laptop"; 3]);
}

/// `/healthz` and `/readyz` answer without a token and are never limited.
async fn health_and_readiness(s: &Server) {
    let s = s.with(&[("MAX_IN_FLIGHT", "1")]).await;
    for path in ["/healthz", "/readyz"] {
        let (status, body) = send(s.http.get(s.url(path))).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
    // Busy API: one slow request holds the only slot; health still answers.
    let mut slow = slow_body_request(&s.base, "/auth/token").await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let (status, body) = send(s.http.get(s.url("/api/v1/me"))).await;
    assert_error(
        status,
        &body,
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
    );
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(
            send(s.http.get(s.url(path))).await.0,
            StatusCode::OK,
            "{path}"
        );
    }
    use tokio::io::AsyncWriteExt;
    let _ = slow.shutdown().await;
}

/// `/metrics` counts requests by route and status, verify outcomes, store latency and
/// limiter rejections, in Prometheus's text format.
async fn metrics_count_requests_outcomes_and_rejections(s: &Server) {
    let s = s.with(&[("LOGIN_ATTEMPTS_PER_ACCOUNT_ADDRESS", "1")]).await;
    let alice = s.alice().await;
    s.get("/api/v1/me", &alice).await;
    s.get("/api/v1/me", "api_prod_nonsense").await;
    s.login("alice@example.com", "alice-pw").await;
    let r = s.http.get(s.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = r.text().await.unwrap();
    for needle in [
        r#"http_requests_total{method="GET",route="/api/v1/me",status="200"}"#,
        r#"http_requests_total{method="POST",route="/auth/token",status="429"}"#,
        r#"verify_outcomes_total{outcome="ok"}"#,
        r#"verify_outcomes_total{outcome="malformed"}"#,
        r#"store_operation_duration_seconds_bucket{operation="verify""#,
        r#"limiter_rejections_total{limiter="login_account_address"}"#,
        "http_requests_in_flight",
        r#"limiter_keys{limiter="login_address"}"#,
    ] {
        assert!(text.contains(needle), "{needle} is missing from\n{text}");
    }
    assert!(!text.contains(&alice), "no token in the metrics");

    // Invented methods share one label: a client cannot create a series per method.
    let invented = reqwest::Method::from_bytes(b"FOO123").unwrap();
    let r = s
        .http
        .request(invented, s.url("/api/v1/me"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
    let text = s.metrics().await;
    assert!(
        !text.contains("FOO123"),
        "an invented method became a label"
    );
    assert!(text.contains(r#"method="other""#), "{text}");
    // A verification is counted once more than before.
    let ok = |text: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(r#"verify_outcomes_total{outcome="ok"} "#))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    let before = ok(&text);
    s.get("/api/v1/me", &alice).await;
    let after = ok(&s.metrics().await);
    assert!(after > before, "{before} → {after}");
}

async fn delete_auth_token_revokes_only_the_token_in_use(s: &Server) {
    let first = s.alice().await;
    let second = s.alice().await;
    let r = s
        .http
        .delete(s.url("/auth/token"))
        .header("X-API-Key", &first)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["message"], "Token revoked successfully");
    let (status, body) = s.get("/api/v1/me", &first).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "invalid_token");
    let (status, _) = s.get("/api/v1/me", &second).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the user's other tokens keep working"
    );
    let r = s
        .http
        .delete(s.url("/auth/token"))
        .bearer_auth(&first)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "a revoked token cannot revoke"
    );
    let r = s.http.delete(s.url("/auth/token")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

async fn create_token_returns_the_token_once_with_its_info(s: &Server) {
    let alice = s.alice().await;
    let (status, body) = s
        .create(
            &alice,
            json!({ "name": "deploy-script", "description": "CI", "expires_in_days": 30 }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let token = body["token"].as_str().unwrap();
    let info = &body["token_info"];
    assert_eq!(info["name"], "deploy-script");
    assert_eq!(info["description"], "CI");
    assert_eq!(info["token_type"], "api");
    assert_eq!(
        info["scopes"],
        json!(["profile:read", "tokens:read"]),
        "read-only by default"
    );
    assert!(token.starts_with(info["token_prefix"].as_str().unwrap()));
    for field in ["last_used_at", "revoked_at", "revocation_reason"] {
        assert!(info[field].is_null(), "{field}");
    }
    let lifetime = parse_time(&info["expires_at"]) - parse_time(&info["created_at"]);
    assert_eq!(lifetime, Duration::days(30));
    let (status, _) = s.get("/api/v1/me", token).await;
    assert_eq!(status, StatusCode::OK);

    let (_, body) = s.create(&alice, json!({ "name": "default-expiry" })).await;
    let info = &body["token_info"];
    // The policy's 365 days, cut to the login token's expiry (a few milliseconds sooner).
    let (_, me) = s.get("/api/v1/me", &alice).await;
    assert_eq!(
        parse_time(&info["expires_at"]),
        parse_time(&me["token"]["expires_at"])
            .min(parse_time(&info["created_at"]) + Duration::days(365))
    );
    assert!(
        parse_time(&info["expires_at"]) - parse_time(&info["created_at"])
            > Duration::days(365) - Duration::minutes(1)
    );

    // A read-only token cannot create tokens; no token grants what it lacks.
    let (status, body) = s.create(token, json!({ "name": "x" })).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "insufficient_scope");
    let (_, body) = s
        .create(
            &alice,
            json!({ "name": "writer", "scopes": ["tokens:write", "tokens:read"] }),
        )
        .await;
    let writer = body["token"].as_str().unwrap();
    let (status, body) = s
        .create(writer, json!({ "name": "x", "scopes": ["profile:read"] }))
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "insufficient_scope");
    let (status, _) = s
        .create(writer, json!({ "name": "x", "scopes": ["tokens:read"] }))
        .await;
    assert_eq!(status, StatusCode::CREATED);
}

async fn create_token_validation_is_422_with_details(s: &Server) {
    let alice = s.alice().await;
    for (body, field) in [
        (json!({}), "name"),
        (json!({ "name": "" }), "name"),
        (json!({ "name": "x".repeat(256) }), "name"),
        (
            json!({ "name": "ok", "expires_in_days": 0 }),
            "expires_in_days",
        ),
        (
            json!({ "name": "ok", "expires_in_days": 366 }),
            "expires_in_days",
        ),
        (
            json!({ "name": "ok", "scopes": ["bad scope"] }),
            "scopes[0]",
        ),
    ] {
        let (status, resp) = s.create(&alice, body.clone()).await;
        assert_error(
            status,
            &resp,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        );
        let details = resp["details"].as_array().unwrap();
        assert!(
            details
                .iter()
                .any(|d| d["field"] == field && d["reason"].is_string()),
            "{body} -> {resp}"
        );
    }
    let (status, _) = s
        .create(&alice, json!({ "name": "ok", "expires_in_days": "soon" }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = s.get("/api/v1/tokens?per_page=100", &alice).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["meta"]["total"], 1,
        "only the login token: nothing was written"
    );
}

async fn list_tokens_is_private_paged_and_newest_first(s: &Server) {
    let alice = s.alice().await;
    let mut created = Vec::new();
    for i in 0..4 {
        let (_, body) = s.create(&alice, json!({ "name": format!("t{i}") })).await;
        created.push(body);
    }
    let (_, bob) = s.login("bob@example.com", "bob-pw").await;
    let bob = bob["access_token"].as_str().unwrap().to_owned();
    s.create(&bob, json!({ "name": "bobs" })).await;

    let (status, page) = s.get("/api/v1/tokens?page=1&per_page=2", &alice).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        page["meta"],
        json!({ "page": 1, "per_page": 2, "total": 5 })
    );
    let names: Vec<_> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].clone())
        .collect();
    assert_eq!(names, [json!("t3"), json!("t2")], "newest first");
    let (_, page3) = s.get("/api/v1/tokens?page=3&per_page=2", &alice).await;
    assert_eq!(page3["data"][0]["name"], "login token");
    let text = page3.to_string() + &page.to_string();
    assert!(
        !text.contains(&alice) && !text.contains("hash"),
        "never the plaintext or hash"
    );
    for t in &created {
        assert!(!text.contains(t["token"].as_str().unwrap()));
    }
    let (_, bobs) = s.get("/api/v1/tokens", &bob).await;
    assert_eq!(bobs["meta"]["total"], 2, "only the caller's own tokens");

    let id = created[0]["token_info"]["id"].as_str().unwrap();
    let (status, _) = s
        .revoke(
            &alice,
            id,
            json!({ "password": "alice-pw", "reason": "old" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, active) = s.get("/api/v1/tokens", &alice).await;
    assert_eq!(active["meta"]["total"], 4);
    let (_, all) = s
        .get("/api/v1/tokens?include_revoked=true&per_page=100", &alice)
        .await;
    assert_eq!(all["meta"]["total"], 5);
    let revoked = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .unwrap();
    assert_eq!(revoked["revocation_reason"], "old");
    assert!(revoked["revoked_at"].is_string());

    for query in [
        "page=0",
        "per_page=0",
        "per_page=101",
        "page=x",
        "per_page=-1",
        "include_revoked=maybe",
    ] {
        let (status, body) = s.get(&format!("/api/v1/tokens?{query}"), &alice).await;
        assert_error(
            status,
            &body,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        );
        assert!(
            body["details"].as_array().is_some_and(|d| !d.is_empty()),
            "{query}"
        );
    }
    let (_, body) = s
        .create(
            &alice,
            json!({ "name": "reader", "scopes": ["profile:read"] }),
        )
        .await;
    let (status, _) = s
        .get("/api/v1/tokens", body["token"].as_str().unwrap())
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "listing needs tokens:read");
}

async fn a_repeated_query_field_takes_its_last_value(s: &Server) {
    let alice = s.alice().await;
    for i in 0..3 {
        s.create(&alice, json!({ "name": format!("t{i}") })).await;
    }
    let (status, page) = s
        .get("/api/v1/tokens?per_page=1&page=3&page=2", &alice)
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["meta"]["page"], 2);
    assert_eq!(page["data"][0]["name"], "t1");
}

async fn revoke_by_id_needs_the_owners_password(s: &Server) {
    let alice = s.alice().await;
    let (_, created) = s.create(&alice, json!({ "name": "victim" })).await;
    let token = created["token"].as_str().unwrap();
    let id = created["token_info"]["id"].as_str().unwrap();

    let (status, body) = s.revoke(&alice, id, json!({ "password": "wrong" })).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "wrong_password");
    assert_eq!(
        s.get("/api/v1/me", token).await.0,
        StatusCode::OK,
        "untouched"
    );
    let (status, body) = s.revoke(&alice, id, json!({})).await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );

    let (_, bob) = s.login("bob@example.com", "bob-pw").await;
    let bob = bob["access_token"].as_str().unwrap().to_owned();
    let (status, body) = s.revoke(&bob, id, json!({ "password": "bob-pw" })).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, unknown) = s
        .revoke(
            &alice,
            "00000000000000000000000000000000",
            json!({ "password": "alice-pw" }),
        )
        .await;
    assert_eq!(
        (status, &unknown),
        (StatusCode::NOT_FOUND, &body),
        "another user's id looks like no id"
    );
    let (status, _) = s
        .revoke(&alice, "not-an-id", json!({ "password": "alice-pw" }))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, body) = s
        .revoke(
            &alice,
            id,
            json!({ "password": "alice-pw", "reason": "done" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["message"], "Token revoked successfully");
    assert_eq!(s.get("/api/v1/me", token).await.0, StatusCode::UNAUTHORIZED);
    let (status, body) = s
        .revoke(&alice, id, json!({ "password": "alice-pw" }))
        .await;
    assert_error(status, &body, StatusCode::CONFLICT, "already_revoked");
}

async fn me_shows_the_caller_and_the_token(s: &Server) {
    let alice = s.alice().await;
    let (status, me) = s.get("/api/v1/me", &alice).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["email"], "alice@example.com");
    assert_eq!(me["tenant_id"], "tenant_a");
    assert_eq!(me["token"]["name"], "login token");
    assert_eq!(me["token"]["id"].as_str().unwrap().len(), 32);
    let (_, body) = s
        .create(&alice, json!({ "name": "t", "scopes": ["tokens:read"] }))
        .await;
    let (status, body) = s.get("/api/v1/me", body["token"].as_str().unwrap()).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "insufficient_scope");
}

async fn the_tenant_header_is_honoured_on_every_route(s: &Server) {
    let alice = s.alice().await;
    let (_, created) = s.create(&alice, json!({ "name": "t" })).await;
    let id = created["token_info"]["id"].as_str().unwrap().to_owned();
    let requests = |tenant: &'static str| {
        [
            s.http.get(s.url("/api/v1/me")),
            s.http.get(s.url("/api/v1/tokens")),
            s.http
                .post(s.url("/api/v1/tokens"))
                .json(&json!({ "name": "n" })),
            s.http
                .delete(s.url(&format!("/api/v1/tokens/{id}")))
                .json(&json!({ "password": "alice-pw" })),
            s.http.delete(s.url("/auth/token")),
        ]
        .map(|r| r.bearer_auth(&alice).header("x-business-id", tenant))
    };
    for r in requests("tenant_b") {
        let r = r.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["code"], "wrong_tenant");
    }
    let (status, _) = s.get("/api/v1/me", &alice).await;
    assert_eq!(status, StatusCode::OK, "nothing above went through");
    for r in requests("tenant_a") {
        let r = r.send().await.unwrap();
        assert!(r.status().is_success(), "{}", r.status());
    }
}

async fn bad_input_never_yields_a_500(s: &Server) {
    let alice = s.alice().await;
    // Over the 64 KiB limit, yet small enough that the whole request sits in the loopback
    // socket buffers before the server answers 413 and closes the connection.
    let huge = "x".repeat(80 * 1024);
    let non_utf8 = HeaderValue::from_bytes(b"Bearer \xff\xfe\xfd").unwrap();
    let requests = vec![
        s.http.get(s.url("/api/v1/me")).bearer_auth("garbage"),
        s.http.get(s.url("/api/v1/me")).bearer_auth("api_prod_00"),
        s.http
            .get(s.url("/api/v1/me"))
            .bearer_auth("a".repeat(8 * 1024)),
        s.http
            .get(s.url("/api/v1/me"))
            .header("x-api-key", "b".repeat(8 * 1024)),
        s.http
            .get(s.url("/api/v1/me"))
            .header("authorization", non_utf8),
        s.http
            .get(s.url("/api/v1/me"))
            .bearer_auth(&alice)
            .header("x-business-id", HeaderValue::from_bytes(b"\xff").unwrap()),
        s.http
            .get(s.url("/api/v1/me"))
            .bearer_auth(format!("{alice}x")),
        s.http
            .get(s.url("/api/v1/me"))
            .bearer_auth(alice.to_uppercase()),
        s.http
            .post(s.url("/api/v1/tokens"))
            .bearer_auth(&alice)
            .header("content-type", "application/json")
            .body(huge.clone()),
        s.http
            .post(s.url("/auth/token"))
            .header("content-type", "application/json")
            .body(huge),
        s.http
            .post(s.url("/api/v1/tokens"))
            .bearer_auth(&alice)
            .header("content-type", "application/json")
            .body("[1,2"),
        s.http
            .post(s.url("/api/v1/tokens"))
            .bearer_auth(&alice)
            .header("content-type", "application/json")
            .body(vec![0xff, 0xfe]),
        s.http
            .post(s.url("/api/v1/tokens"))
            .bearer_auth(&alice)
            .json(&json!({ "name": ["x"] })),
        s.http
            .post(s.url("/api/v1/tokens"))
            .bearer_auth(&alice)
            .json(&json!({ "name": "x", "expires_in_days": 1e30 })),
        s.http
            .delete(s.url("/api/v1/tokens/%ff%fe"))
            .bearer_auth(&alice)
            .json(&json!({ "password": "alice-pw" })),
        s.http
            .get(s.url("/api/v1/tokens?page=99999999999999999999"))
            .bearer_auth(&alice),
        s.http
            .get(s.url("/api/v1/tokens?page=1&page=0"))
            .bearer_auth(&alice),
        s.http.get(s.url("/nowhere")),
        s.http.put(s.url("/api/v1/me")).bearer_auth(&alice),
    ];
    for (i, r) in requests.into_iter().enumerate() {
        let r = r.send().await.unwrap();
        let status = r.status();
        assert!(status.is_client_error(), "request {i}: {status}");
        assert_eq!(
            r.headers()["content-type"],
            "application/json",
            "request {i}"
        );
        let body: Value = r
            .json()
            .await
            .unwrap_or_else(|e| panic!("request {i}: {e}"));
        assert!(
            body["code"].is_string() && body["message"].is_string(),
            "request {i}: {body}"
        );
    }
    let (status, _) = s.get("/api/v1/me", &alice).await;
    assert_eq!(status, StatusCode::OK, "the server is still fine");
}

async fn a_restart_loses_nothing(s: Server) {
    let alice = s.alice().await;
    let (_, created) = s.create(&alice, json!({ "name": "survivor" })).await;
    let survivor = created["token"].as_str().unwrap().to_owned();
    let (_, doomed) = s.create(&alice, json!({ "name": "doomed" })).await;
    let doomed_id = doomed["token_info"]["id"].as_str().unwrap().to_owned();
    let (status, _) = s
        .revoke(&alice, &doomed_id, json!({ "password": "alice-pw" }))
        .await;
    assert_eq!(status, StatusCode::OK);
    s.get("/api/v1/me", &survivor).await;

    let s = s.restart().await;
    let (status, me) = s.get("/api/v1/me", &survivor).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    let (status, _) = s.get("/api/v1/me", doomed["token"].as_str().unwrap()).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a revocation survives a restart"
    );
    let (_, all) = s.get("/api/v1/tokens?include_revoked=true", &alice).await;
    assert_eq!(all["meta"]["total"], 3);
    let survivor_info = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "survivor")
        .unwrap();
    assert!(
        survivor_info["last_used_at"].is_string(),
        "last use was kept"
    );
}

macro_rules! api_tests {
    (@each $attrs:tt $start:expr; $name:ident $(, $rest:ident)*) => {
        api_tests!(@one $attrs $start; $name);
        api_tests!(@each $attrs $start; $($rest),*);
    };
    (@each $attrs:tt $start:expr;) => {};
    (@one [$(#[$attr:meta])*] $start:expr; $name:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        $(#[$attr])*
        async fn $name() {
            super::$name(&$start.await).await;
        }
    };
    (@attrs [$($attrs:tt)*] #[$attr:meta] $($rest:tt)*) => {
        api_tests!(@attrs [$($attrs)* #[$attr]] $($rest)*);
    };
    (@attrs [$(#[$attr:meta])*] $start:expr) => {
        api_tests!(@each [$(#[$attr])*] $start;
            login_issues_a_bearer_token,
            login_rejects_bad_requests_and_credentials,
            failed_logins_are_rate_limited,
            parallel_logins_cannot_outrun_the_limit,
            failed_logins_never_stop_a_token_holder_from_revoking,
            unknown_emails_are_limited_per_address,
            tokens_never_outlive_their_creator,
            revoking_a_token_revokes_the_tokens_it_created,
            tokens_nest_at_most_four_deep,
            a_removed_users_tokens_get_401_everywhere,
            revoke_all_revokes_every_token_of_the_caller,
            health_and_readiness,
            metrics_count_requests_outcomes_and_rejections,
            delete_auth_token_revokes_only_the_token_in_use,
            create_token_returns_the_token_once_with_its_info,
            create_token_validation_is_422_with_details,
            list_tokens_is_private_paged_and_newest_first,
            a_repeated_query_field_takes_its_last_value,
            revoke_by_id_needs_the_owners_password,
            me_shows_the_caller_and_the_token,
            the_tenant_header_is_honoured_on_every_route,
            bad_input_never_yields_a_500
        );
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        $(#[$attr])*
        async fn a_restart_loses_nothing() {
            super::a_restart_loses_nothing($start.await).await;
        }
    };
    ($($input:tt)+) => {
        api_tests!(@attrs [] $($input)+);
    };
}

mod sqlite {
    api_tests!(super::sqlite_server());
}

mod postgres {
    api_tests!(
        #[cfg_attr(
            not(api_tokens_postgres_tests),
            ignore = "set API_TOKENS_TEST_POSTGRES_URL to run the PostgreSQL suite"
        )]
        super::postgres_server()
    );
}
