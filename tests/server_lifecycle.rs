//! The example server's lifecycle routes over real HTTP, on SQLite and PostgreSQL: rotate
//! with a grace period, edit (narrowing only), suspend and resume, the admin's expiring
//! list, GitHub's secret-scanning endpoint with its signature, and the token fields
//! `metadata`, `allowed_ips`, `expires_at`, `expires_in_days: null`, `jti`, `suspended_at`.

mod common;
#[macro_use]
mod server_harness;

use api_tokens::{ApiTokens, ManualClock, NewToken};
use base64::Engine;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::{EncodePublicKey, LineEnding};
use reqwest::StatusCode;
use serde_json::{Value, json};
use server_harness::*;
use time::{Duration, OffsetDateTime};

const ADMIN_USERS: &str = "alice@example.com:alice-pw:tenant_a,\
                           bob@example.com:bob-pw:tenant_b,\
                           root@example.com:root-pw:tenant_ops:admin";

impl Server {
    async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        send(
            self.http
                .post(self.url(path))
                .bearer_auth(token)
                .json(&body),
        )
        .await
    }

    async fn patch(&self, id: &str, token: &str, body: Value) -> (StatusCode, Value) {
        send(
            self.http
                .patch(self.url(&format!("/api/v1/tokens/{id}")))
                .bearer_auth(token)
                .json(&body),
        )
        .await
    }

    /// A token created by `creator`, and its id.
    async fn child(&self, creator: &str, body: Value) -> (String, String) {
        let (status, created) = self.create(creator, body).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        (
            created["token"].as_str().unwrap().to_owned(),
            created["token_info"]["id"].as_str().unwrap().to_owned(),
        )
    }

    /// The caller's token `id` as the listing shows it (revoked ones included).
    async fn info(&self, token: &str, id: &str) -> Value {
        let (status, all) = self
            .get("/api/v1/tokens?include_revoked=true&per_page=100", token)
            .await;
        assert_eq!(status, StatusCode::OK, "{all}");
        all["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("token {id} is not listed: {all}"))
    }
}

/// The id of a login token, from `/api/v1/me`.
async fn id_of(s: &Server, token: &str) -> String {
    let (status, me) = s.get("/api/v1/me", token).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    me["token"]["id"].as_str().unwrap().to_owned()
}

// ---------------------------------------------------------------------------------------
// Scenarios, each run once per database.

/// Rotation answers 201 with the new token once; the old one lives for the grace period
/// (its expiry moved to now + grace), a second rotation is 409, out-of-range grace is 422,
/// and a zero grace revokes the old token at once.
async fn rotation_keeps_the_old_token_for_the_grace_period(s: &Server) {
    let alice = s.alice().await;
    let (old, old_id) = s
        .child(
            &alice,
            json!({ "name": "deploy", "scopes": ["profile:read"], "metadata": {"env": "ci"} }),
        )
        .await;
    for bad in [
        json!({ "grace_seconds": -1 }),
        json!({ "grace_seconds": 86_401 }),
    ] {
        let (status, body) = s
            .post(&format!("/api/v1/tokens/{old_id}/rotate"), &alice, bad)
            .await;
        assert_error(
            status,
            &body,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        );
        assert!(body.to_string().contains("grace_seconds"), "{body}");
    }
    let before = OffsetDateTime::now_utc();
    let (status, rotated) = s
        .post(
            &format!("/api/v1/tokens/{old_id}/rotate"),
            &alice,
            json!({ "grace_seconds": 3600 }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{rotated}");
    let new = rotated["token"].as_str().unwrap();
    let info = &rotated["token_info"];
    assert_ne!(info["id"].as_str().unwrap(), old_id);
    assert_eq!(info["jti"], info["id"]);
    assert_eq!(
        (&info["name"], &info["scopes"], &info["metadata"]),
        (
            &json!("deploy"),
            &json!(["profile:read"]),
            &json!({"env": "ci"})
        ),
        "like for like"
    );
    assert_eq!(s.get("/api/v1/me", new).await.0, StatusCode::OK);
    assert_eq!(
        s.get("/api/v1/me", &old).await.0,
        StatusCode::OK,
        "in its grace"
    );
    let old_until = parse_time(&s.info(&alice, &old_id).await["expires_at"]);
    let grace_end = before + Duration::hours(1);
    assert!(
        (old_until - grace_end).abs() < Duration::seconds(30),
        "{old_until} vs {grace_end}"
    );
    assert_eq!(s.info(&alice, &old_id).await["replaced_by"], info["id"]);
    let (status, body) = s
        .post(
            &format!("/api/v1/tokens/{old_id}/rotate"),
            &alice,
            json!({}),
        )
        .await;
    assert_error(status, &body, StatusCode::CONFLICT, "already_rotated");

    let new_id = info["id"].as_str().unwrap();
    let (status, again) = s
        .post(
            &format!("/api/v1/tokens/{new_id}/rotate"),
            &alice,
            json!({ "grace_seconds": 0 }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{again}");
    assert_eq!(s.get("/api/v1/me", new).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(s.info(&alice, new_id).await["revocation_reason"], "rotated");
    let (status, body) = s
        .post("/api/v1/tokens/not-an-id/rotate", &alice, json!({}))
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");

    // No body at all: no grace, as `{}` (and the route's own answers, as with one).
    let (status, again) = send(
        s.http
            .post(s.url(&format!("/api/v1/tokens/{new_id}/rotate")))
            .bearer_auth(&alice),
    )
    .await;
    assert_error(status, &again, StatusCode::CONFLICT, "not_active");
    let (last, last_id) = s.child(&alice, json!({ "name": "bodiless" })).await;
    let (status, rotated) = send(
        s.http
            .post(s.url(&format!("/api/v1/tokens/{last_id}/rotate")))
            .bearer_auth(&alice),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{rotated}");
    assert_eq!(
        s.get("/api/v1/me", &last).await.0,
        StatusCode::UNAUTHORIZED,
        "no grace"
    );
    // A body that is there must still be JSON.
    let (status, body) = send(
        s.http
            .post(s.url(&format!("/api/v1/tokens/{last_id}/rotate")))
            .bearer_auth(&alice)
            .body("grace_seconds=10"),
    )
    .await;
    assert_error(
        status,
        &body,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
}

/// A token other than a login reaches only itself and what it created: it cannot rotate,
/// edit or suspend its login or a sibling (403 `out_of_reach`), but can manage its own.
async fn a_created_token_manages_only_itself_and_its_children(s: &Server) {
    let alice = s.alice().await;
    let login_id = id_of(s, &alice).await;
    let writer = json!({ "name": "w", "scopes": ["tokens:read", "tokens:write", "profile:read"] });
    let (script, script_id) = s.child(&alice, writer.clone()).await;
    let (_, sibling_id) = s.child(&alice, writer.clone()).await;
    let (_, grandchild_id) = s.child(&script, json!({ "name": "g" })).await;
    for target in [&login_id, &sibling_id] {
        for (status, body) in [
            s.post(
                &format!("/api/v1/tokens/{target}/rotate"),
                &script,
                json!({}),
            )
            .await,
            s.post(
                &format!("/api/v1/tokens/{target}/suspend"),
                &script,
                json!({}),
            )
            .await,
            s.patch(target, &script, json!({ "name": "mine" })).await,
        ] {
            assert_error(status, &body, StatusCode::FORBIDDEN, "out_of_reach");
        }
    }
    assert_eq!(
        s.get("/api/v1/me", &alice).await.0,
        StatusCode::OK,
        "untouched"
    );
    let (status, body) = s
        .post(
            &format!("/api/v1/tokens/{grandchild_id}/suspend"),
            &script,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "its own child: {body}");
    let (status, body) = s
        .post(
            &format!("/api/v1/tokens/{script_id}/rotate"),
            &script,
            json!({}),
        )
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "out_of_reach");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("cannot rotate itself"),
        "{body}"
    );
    let (status, body) = s
        .post(
            &format!("/api/v1/tokens/{grandchild_id}/rotate"),
            &script,
            json!({}),
        )
        .await;
    assert_error(status, &body, StatusCode::CONFLICT, "not_active");
    let (status, _) = s
        .post(
            &format!("/api/v1/tokens/{grandchild_id}/resume"),
            &script,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = s
        .post(
            &format!("/api/v1/tokens/{grandchild_id}/rotate"),
            &script,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "its own child: {body}");
    let (status, body) = s
        .patch(&script_id, &script, json!({ "name": "renamed" }))
        .await;
    assert_eq!(
        (status, &body["name"]),
        (StatusCode::OK, &json!("renamed")),
        "{body}"
    );
    let (status, body) = s
        .patch(&sibling_id, &alice, json!({ "name": "by login" }))
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a login reaches every token: {body}"
    );
}

/// An edit renames, describes, narrows and shortens, and verification sees it at once;
/// widening scopes, a later or removed expiry, and bad fields are 422 and change nothing.
async fn edits_narrow_and_never_widen(s: &Server) {
    let alice = s.alice().await;
    let (token, id) = s
        .child(
            &alice,
            json!({ "name": "ci", "scopes": ["profile:read", "tokens:read"], "expires_in_days": 30 }),
        )
        .await;
    let sooner = OffsetDateTime::now_utc() + Duration::days(10);
    let sooner_text = sooner
        .replace_nanosecond(0)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let (status, info) = s
        .patch(
            &id,
            &alice,
            json!({
                "name": "ci (profile)",
                "description": "reads the profile",
                "scopes": ["profile:read"],
                "expires_at": sooner_text,
                "metadata": { "team": "web" },
            }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{info}");
    assert_eq!(info["name"], "ci (profile)");
    assert_eq!(info["description"], "reads the profile");
    assert_eq!(info["scopes"], json!(["profile:read"]));
    assert_eq!(
        parse_time(&info["expires_at"]),
        sooner.replace_nanosecond(0).unwrap()
    );
    assert_eq!(info["metadata"], json!({ "team": "web" }));
    let (status, body) = s.get("/api/v1/tokens", &token).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "insufficient_scope");

    let later = (OffsetDateTime::now_utc() + Duration::days(20))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    for (body, field) in [
        (
            json!({ "scopes": ["profile:read", "tokens:read"] }),
            "scopes",
        ),
        (json!({ "expires_at": later }), "expires_at"),
        (json!({ "expires_at": null }), "expires_at"),
        (json!({ "expires_at": "next tuesday" }), "expires_at"),
        (json!({ "name": "" }), "name"),
        (json!({ "metadata": [1, 2] }), "metadata"),
        // A field PATCH cannot change is refused, never ignored (with the rest undone).
        (
            json!({ "name": "renamed", "allowed_ips": ["10.0.0.0/8"] }),
            "allowed_ips",
        ),
        (json!({ "remaining": 5 }), "remaining"),
    ] {
        let (status, answer) = s.patch(&id, &alice, body.clone()).await;
        assert_error(
            status,
            &answer,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        );
        assert!(answer.to_string().contains(field), "{body}: {answer}");
    }
    let kept = s.info(&alice, &id).await;
    assert_eq!(
        (&kept["name"], &kept["scopes"]),
        (&json!("ci (profile)"), &json!(["profile:read"]))
    );
    let (status, body) = s
        .patch(
            &id,
            &alice,
            json!({ "description": null, "metadata": null }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (&body["description"], &body["metadata"]),
        (&Value::Null, &Value::Null)
    );
    let (_, bob) = s.login("bob@example.com", "bob-pw").await;
    let bob = bob["access_token"].as_str().unwrap();
    let (status, body) = s.patch(&id, bob, json!({ "name": "mine" })).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
}

/// A suspended token gets exactly the 401 of a revoked one, and works again once resumed;
/// a revoked token can be neither suspended nor resumed (409).
async fn suspension_is_reversible_and_revocation_is_final(s: &Server) {
    let alice = s.alice().await;
    let (token, id) = s.child(&alice, json!({ "name": "ci" })).await;
    let (revoked, revoked_id) = s.child(&alice, json!({ "name": "gone" })).await;
    s.revoke(&alice, &revoked_id, json!({ "password": "alice-pw" }))
        .await;
    let (status, info) = s
        .post(&format!("/api/v1/tokens/{id}/suspend"), &alice, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{info}");
    assert!(info["suspended_at"].is_string(), "{info}");
    assert_eq!(info["revoked_at"], Value::Null);
    let suspended = s.get("/api/v1/me", &token).await;
    let gone = s.get("/api/v1/me", &revoked).await;
    assert_eq!(suspended.0, StatusCode::UNAUTHORIZED);
    assert_eq!(suspended, gone, "the same outward 401 as a revoked token");
    assert!(s.info(&alice, &id).await["suspended_at"].is_string());
    let (status, info) = s
        .post(&format!("/api/v1/tokens/{id}/resume"), &alice, json!({}))
        .await;
    assert_eq!(
        (status, &info["suspended_at"]),
        (StatusCode::OK, &Value::Null),
        "{info}"
    );
    assert_eq!(s.get("/api/v1/me", &token).await.0, StatusCode::OK);
    for action in ["suspend", "resume"] {
        let (status, body) = s
            .post(
                &format!("/api/v1/tokens/{revoked_id}/{action}"),
                &alice,
                json!({}),
            )
            .await;
        assert_error(status, &body, StatusCode::CONFLICT, "already_revoked");
    }
}

/// The admin's list: active tokens of every user expiring in the window, soonest first,
/// paged, each with its owner; refused without `admin:tokens`; bad paging is 422.
async fn admins_list_the_tokens_about_to_expire(s: &Server) {
    let s = s.with_users(ADMIN_USERS).await;
    let alice = s.alice().await;
    let (_, bob) = s.login("bob@example.com", "bob-pw").await;
    let bob = bob["access_token"].as_str().unwrap().to_owned();
    let (_, root) = s.login("root@example.com", "root-pw").await;
    let root = root["access_token"].as_str().unwrap().to_owned();
    let (_, in3) = s
        .child(&alice, json!({ "name": "in 3", "expires_in_days": 3 }))
        .await;
    let (_, in1) = s
        .child(&bob, json!({ "name": "in 1", "expires_in_days": 1 }))
        .await;
    let (_, in5) = s
        .child(&alice, json!({ "name": "in 5", "expires_in_days": 5 }))
        .await;
    let (_, revoked) = s
        .child(&bob, json!({ "name": "x", "expires_in_days": 2 }))
        .await;
    s.revoke(&bob, &revoked, json!({ "password": "bob-pw" }))
        .await;
    s.child(&alice, json!({ "name": "in 30", "expires_in_days": 30 }))
        .await;

    let (status, page) = s
        .get("/api/v1/admin/tokens/expiring?within_days=7", &root)
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let ids: Vec<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [&in1, &in3, &in5], "soonest first, across users");
    assert_eq!(page["meta"]["total"], 3);
    assert_eq!(page["data"][0]["tenant"], "tenant_b");
    assert!(page["data"][0]["owner"].is_string());
    let (_, second) = s
        .get(
            "/api/v1/admin/tokens/expiring?within_days=7&per_page=2&page=2",
            &root,
        )
        .await;
    assert_eq!(second["data"][0]["id"], in5.as_str(), "{second}");
    let (status, body) = s.get("/api/v1/admin/tokens/expiring", &alice).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "insufficient_scope");
    for query in [
        "within_days=0",
        "within_days=400",
        "within_days=x",
        "per_page=101",
        "page=0",
    ] {
        let (status, body) = s
            .get(&format!("/api/v1/admin/tokens/expiring?{query}"), &root)
            .await;
        assert_error(
            status,
            &body,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        );
    }
}

/// Metadata, IP allowlists, an explicit expiry date, and `expires_in_days: null` (refused
/// unless never-expiring tokens are allowed; then the token really never expires).
async fn created_tokens_carry_metadata_addresses_and_expiry(s: &Server) {
    let alice = s.alice().await;
    let at = (OffsetDateTime::now_utc() + Duration::days(9))
        .replace_nanosecond(0)
        .unwrap();
    let at_text = at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let (status, created) = s
        .create(
            &alice,
            json!({
                "name": "office",
                "metadata": { "plan": "pro", "limits": { "seats": 5 } },
                "allowed_ips": ["2001:db8::/32", "10.9.0.0/16"],
                "expires_at": at_text,
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let info = &created["token_info"];
    assert_eq!(
        info["metadata"],
        json!({ "plan": "pro", "limits": { "seats": 5 } })
    );
    assert_eq!(
        info["allowed_ips"],
        json!(["2001:db8::/32", "10.9.0.0/16"]),
        "in the order sent"
    );
    assert_eq!(parse_time(&info["expires_at"]), at);
    assert_eq!(info["jti"], info["id"]);
    assert_eq!(info["suspended_at"], Value::Null);
    let token = created["token"].as_str().unwrap();
    let from = |address: &str| {
        s.http
            .get(s.url("/api/v1/me"))
            .bearer_auth(token)
            .header("x-test-client-ip", address)
    };
    assert_eq!(send(from("10.9.200.1")).await.0, StatusCode::OK);
    assert_eq!(send(from("2001:db8::7")).await.0, StatusCode::OK);
    for outside in ["10.8.0.1", "garbage", "10.9.200.1, unknown"] {
        let (status, body) = send(from(outside)).await;
        assert_error(status, &body, StatusCode::FORBIDDEN, "ip_not_allowed");
    }
    let (status, body) = s.get("/api/v1/me", token).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "ip_not_allowed");
    let listed = s.info(&alice, info["id"].as_str().unwrap()).await;
    assert_eq!(listed["metadata"], info["metadata"]);

    for (body, field) in [
        (
            json!({ "name": "x", "allowed_ips": ["10.0.0.0/33"] }),
            "allowed_ips[0]",
        ),
        (json!({ "name": "x", "metadata": "text" }), "metadata"),
        (
            json!({ "name": "x", "metadata": { "x": "y".repeat(5000) } }),
            "metadata",
        ),
        (json!({ "name": "x", "expires_at": "soon" }), "expires_at"),
        (
            json!({ "name": "x", "expires_at": at_text, "expires_in_days": 3 }),
            "expires_at",
        ),
        (
            json!({ "name": "x", "expires_in_days": null }),
            "expires_in_days",
        ),
        (json!({ "name": "x", "expires_at": null }), "expires_at"),
        (
            json!({ "name": "x", "expires_at": at_text, "expires_in_days": null }),
            "expires_at",
        ),
    ] {
        let (status, answer) = s.create(&alice, body.clone()).await;
        assert_error(
            status,
            &answer,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        );
        assert!(answer.to_string().contains(field), "{body}: {answer}");
    }

    // A `null` beside a value is a field left unset.
    let (status, created) = s
        .create(
            &alice,
            json!({ "name": "three days", "expires_in_days": 3, "expires_at": null }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let until = parse_time(&created["token_info"]["expires_at"]) - OffsetDateTime::now_utc();
    assert!(
        (until - Duration::days(3)).abs() < Duration::minutes(5),
        "{until}"
    );

    let open = s.with(&[("ALLOW_NEVER_EXPIRING", "true")]).await;
    let alice = open.alice().await;
    let (status, created) = open
        .create(
            &alice,
            json!({ "name": "forever", "expires_in_days": null }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(
        created["token_info"]["expires_at"],
        Value::Null,
        "never expires"
    );
    let (status, created) = open
        .create(&alice, json!({ "name": "forever too", "expires_at": null }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(
        created["token_info"]["expires_at"],
        Value::Null,
        "null: never"
    );
    let (status, created) = open.create(&alice, json!({ "name": "default" })).await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(
        created["token_info"]["expires_at"].is_string(),
        "absent: the default"
    );
}

/// GitHub's secret-scanning message, signed with the configured key: live tokens are
/// revoked (reason `leaked`) and every match is labelled by its SHA-256; a bad, unknown or
/// missing signature is 401 and revokes nothing; an unconfigured server answers 404.
async fn secret_scanning_revokes_leaked_tokens(s: &Server) {
    let key = SigningKey::from_slice(&[7u8; 32]).unwrap();
    let pem = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    let other = SigningKey::from_slice(&[9u8; 32]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.json");
    std::fs::write(
        &keys,
        json!({ "public_keys": [{ "key_identifier": "k1", "key": pem, "is_current": true }] })
            .to_string(),
    )
    .unwrap();
    let unconfigured = s.post("/api/v1/secret-scanning", "", json!([])).await;
    assert_error(
        unconfigured.0,
        &unconfigured.1,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let s = s
        .with(&[("SECRET_SCANNING_KEYS", keys.to_str().unwrap())])
        .await;
    let alice = s.alice().await;
    let (live, live_id) = s.child(&alice, json!({ "name": "pushed to github" })).await;
    let (old, old_id) = s.child(&alice, json!({ "name": "old" })).await;
    s.revoke(&alice, &old_id, json!({ "password": "alice-pw" }))
        .await;
    let body = json!([
        { "token": live, "type": "api_prod_token", "url": "https://github.com/x/y/blob/main/a", "source": "content" },
        { "token": old, "type": "api_prod_token", "url": "", "source": "commit" },
        { "token": "api_prod_lookslikeitbutisnot", "type": "api_prod_token", "url": "", "source": "content" },
    ])
    .to_string();
    let sign = |key: &SigningKey, body: &str| {
        let signature: Signature = key.sign(body.as_bytes());
        base64::engine::general_purpose::STANDARD.encode(signature.to_der().as_bytes())
    };
    let message = |id: Option<&str>, signature: Option<String>, body: &str| {
        let mut request = s
            .http
            .post(s.url("/api/v1/secret-scanning"))
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(id) = id {
            request = request.header("Github-Public-Key-Identifier", id);
        }
        if let Some(signature) = signature {
            request = request.header("Github-Public-Key-Signature", signature);
        }
        request
    };
    let tampered = body.replace("content", "contenT");
    for request in [
        message(Some("k1"), Some(sign(&other, &body)), &body),
        message(Some("k2"), Some(sign(&key, &body)), &body),
        message(Some("k1"), Some(sign(&key, &body)), &tampered),
        message(Some("k1"), Some("not base64!".into()), &body),
        message(None, None, &body),
    ] {
        let (status, answer) = send(request).await;
        assert_error(
            status,
            &answer,
            StatusCode::UNAUTHORIZED,
            "invalid_signature",
        );
    }
    assert_eq!(
        s.get("/api/v1/me", &live).await.0,
        StatusCode::OK,
        "nothing revoked yet"
    );

    let (status, labels) = send(message(Some("k1"), Some(sign(&key, &body)), &body)).await;
    assert_eq!(status, StatusCode::OK, "{labels}");
    let sha = |t: &str| hex::encode(api_tokens::TokenHash::of_secret(t.as_bytes()).as_bytes());
    assert_eq!(
        labels,
        json!([
            { "token_raw": live, "token_hash": sha(&live), "token_type": "api_prod_token", "label": "true_positive" },
            { "token_raw": old, "token_hash": sha(&old), "token_type": "api_prod_token", "label": "true_positive" },
            { "token_raw": "api_prod_lookslikeitbutisnot", "token_hash": sha("api_prod_lookslikeitbutisnot"), "token_type": "api_prod_token", "label": "false_positive" },
        ])
    );
    assert_eq!(s.get("/api/v1/me", &live).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        s.info(&alice, &live_id).await["revocation_reason"],
        "leaked"
    );
    assert_eq!(
        s.info(&alice, &old_id).await["revocation_reason"],
        Value::Null,
        "an earlier revocation keeps its reason"
    );
    let (status, _) = send(message(Some("k1"), Some(sign(&key, "{}")), "{}")).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "signed but not GitHub's format"
    );
}

/// With `TOKEN_IDLE_DAYS=1`, a token unused for longer than a day stops verifying: 401
/// like any bad token, and `idle` in the caller's audit trail. One used twelve hours ago,
/// and a new one, still work.
async fn idle_tokens_stop_verifying(s: &Server) {
    let s = s.with(&[("TOKEN_IDLE_DAYS", "1")]).await;
    let alice = s.alice().await;
    let (status, me) = s.get("/api/v1/me", &alice).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    let owner = me["id"].as_str().unwrap().to_owned();
    let tenant = me["tenant_id"].as_str().unwrap().to_owned();
    // Alice's tokens made three days ago, straight in the server's store.
    let now = OffsetDateTime::now_utc();
    let clock = ManualClock::new(now - Duration::days(3));
    let past = ApiTokens::builder(s.store().await, &config(&s.settings).token_prefix)
        .clock(clock.clone())
        .build()
        .unwrap();
    let mut made = Vec::new();
    for name in ["unused", "used"] {
        let new = NewToken::new(owner.clone(), name)
            .tenant(tenant.clone())
            .scopes(["profile:read"]);
        let issued = past.issue(new).await.expect("issue");
        made.push((
            issued.plaintext.expose_secret().to_owned(),
            issued.record.id.to_string(),
        ));
    }
    let [(unused, unused_id), (used, _)] = &made[..] else {
        unreachable!()
    };
    clock.set(now - Duration::hours(12));
    past.verify(used).await.expect("used twelve hours ago");

    let (status, body) = s.get("/api/v1/me", unused).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "invalid_token");
    assert_eq!(s.get("/api/v1/me", used).await.0, StatusCode::OK);
    assert_eq!(s.get("/api/v1/me", &alice).await.0, StatusCode::OK);
    let started = std::time::Instant::now();
    loop {
        let (status, trail) = s.get("/api/v1/audit?per_page=100", &alice).await;
        assert_eq!(status, StatusCode::OK, "{trail}");
        let idle = trail["data"].as_array().unwrap().iter().any(|e| {
            e["event"] == "verify_failed" && e["token_id"] == *unused_id && e["code"] == "idle"
        });
        if idle {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "no idle failure in the audit trail: {trail}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// `TOKEN_DESCRIPTION_CHARS=3-255`: a description of 2 or 256 characters is a 422 naming
/// `description`; 3 and 255 are fine, and so is none.
async fn descriptions_follow_the_configured_lengths(s: &Server) {
    let s = s.with(&[("TOKEN_DESCRIPTION_CHARS", "3-255")]).await;
    let alice = s.alice().await;
    for (description, fits) in [
        (Some("ab".to_owned()), false),
        (Some("abc".to_owned()), true),
        (Some("é".repeat(255)), true),
        (Some("x".repeat(256)), false),
        (None, true),
    ] {
        let mut body = json!({ "name": "ci" });
        if let Some(d) = &description {
            body["description"] = json!(d);
        }
        let (status, created) = s.create(&alice, body).await;
        let chars = description.as_ref().map(|d| d.chars().count());
        if fits {
            assert_eq!(status, StatusCode::CREATED, "{chars:?}: {created}");
            assert_eq!(created["token_info"]["description"], json!(description));
        } else {
            assert_error(
                status,
                &created,
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
            );
            let details = created["details"].as_array().unwrap();
            assert!(
                details.iter().any(|d| d["field"] == "description"),
                "{chars:?}: {created}"
            );
        }
    }
}

db_scenarios!(
    idle_tokens_stop_verifying,
    descriptions_follow_the_configured_lengths,
    rotation_keeps_the_old_token_for_the_grace_period,
    a_created_token_manages_only_itself_and_its_children,
    edits_narrow_and_never_widen,
    suspension_is_reversible_and_revocation_is_final,
    admins_list_the_tokens_about_to_expire,
    created_tokens_carry_metadata_addresses_and_expiry,
    secret_scanning_revokes_leaked_tokens,
);
