//! The extractor in a minimal user-written router, over real HTTP on loopback.

use api_tokens::axum::{Authenticated, RequireScopes};
use api_tokens::{ApiTokens, MemoryStore, NewToken, Principal};
use axum::extract::FromRef;
use axum::middleware::from_extractor_with_state;
use axum::routing::get;
use axum::{Extension, Router};
use reqwest::StatusCode;
use serde_json::Value;

api_tokens::scope_requirement!(Admin = ["admin"]);

#[derive(Clone)]
struct AppState {
    tokens: ApiTokens<MemoryStore>,
    greeting: &'static str,
}

impl FromRef<AppState> for ApiTokens<MemoryStore> {
    fn from_ref(s: &AppState) -> Self {
        s.tokens.clone()
    }
}

async fn hello(
    axum::extract::State(s): axum::extract::State<AppState>,
    auth: Authenticated<MemoryStore>,
) -> String {
    format!("{} {}", s.greeting, auth.owner())
}

async fn admin(auth: RequireScopes<Admin, MemoryStore>) -> String {
    format!("admin {}", auth.owner())
}

async fn behind_middleware(Extension(who): Extension<Principal>) -> String {
    format!("middleware {}", who.owner())
}

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

async fn setup() -> (String, String, String) {
    let tokens = ApiTokens::new(MemoryStore::new(), "dz").unwrap();
    let user = tokens
        .issue(NewToken::new("alice", "plain").tenant("biz_1"))
        .await
        .unwrap();
    let admin_token = tokens
        .issue(NewToken::new("root", "admin").scopes(["admin"]))
        .await
        .unwrap();
    let state = AppState {
        tokens: tokens.clone(),
        greeting: "hello",
    };
    let protected = Router::new()
        .route("/mw", get(behind_middleware))
        .route_layer(from_extractor_with_state::<Authenticated<MemoryStore>, _>(
            tokens,
        ));
    let app = Router::new()
        .route("/hello", get(hello))
        .route("/admin", get(admin))
        .merge(protected)
        .with_state(state);
    (
        serve(app).await,
        user.plaintext.expose_secret().to_owned(),
        admin_token.plaintext.expose_secret().to_owned(),
    )
}

#[tokio::test]
async fn the_extractor_works_in_a_users_router() {
    let (base, user, admin_token) = setup().await;
    let http = reqwest::Client::new();

    let r = http
        .get(format!("{base}/hello"))
        .bearer_auth(&user)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.unwrap(), "hello alice");

    let r = http
        .get(format!("{base}/hello"))
        .header("X-API-Key", &user)
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "hello alice");

    let r = http
        .get(format!("{base}/mw"))
        .header("x-api-key", &user)
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "middleware alice");

    let r = http
        .get(format!("{base}/admin"))
        .bearer_auth(&admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "admin root");
}

#[tokio::test]
async fn rejections_are_json_with_the_right_status() {
    let (base, user, admin_token) = setup().await;
    let http = reqwest::Client::new();
    let mut bodies = Vec::new();
    for request in [
        http.get(format!("{base}/hello")),
        http.get(format!("{base}/hello")).bearer_auth("dz_garbage"),
        http.get(format!("{base}/hello"))
            .header("authorization", format!("Basic {user}")),
        http.get(format!("{base}/hello"))
            .bearer_auth(&user)
            .header("x-api-key", &admin_token),
        http.get(format!("{base}/mw")),
    ] {
        let r = request.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
        assert_eq!(r.headers()["content-type"], "application/json");
        bodies.push(r.text().await.unwrap());
    }
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "one body for every 401: {bodies:?}"
    );

    let r = http
        .get(format!("{base}/admin"))
        .bearer_auth(&user)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "insufficient_scope");

    let r = http
        .get(format!("{base}/hello"))
        .bearer_auth(&user)
        .header("x-business-id", "biz_2")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "wrong_tenant");

    let r = http
        .get(format!("{base}/hello"))
        .bearer_auth(&user)
        .header("x-business-id", "biz_1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_repeated_tenant_header_is_refused_whatever_the_order() {
    let (base, user, _) = setup().await;
    let http = reqwest::Client::new();
    for tenants in [["biz_1", "biz_2"], ["biz_2", "biz_1"], ["biz_1", "biz_1"]] {
        let r = http
            .get(format!("{base}/hello"))
            .bearer_auth(&user)
            .header("x-business-id", tenants[0])
            .header("x-business-id", tenants[1])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{tenants:?}");
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
    }
}

#[test]
fn store_failures_never_show_the_backends_message() {
    use api_tokens::{AuthError, StoreError, StoreErrorKind};
    use axum::response::IntoResponse;
    for kind in [
        StoreErrorKind::Unavailable,
        StoreErrorKind::Corrupt,
        StoreErrorKind::Other,
    ] {
        let secret_detail = std::io::Error::other("relation \"auth.api_tokens\" at 10.0.0.7");
        let err =
            AuthError::Store(StoreError::new(kind, "could not read").with_source(secret_detail));
        let response = err.into_response();
        let body = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(axum::body::to_bytes(response.into_body(), 4096))
            .unwrap();
        let body = String::from_utf8(body.to_vec()).unwrap();
        assert!(
            !body.contains("10.0.0.7") && !body.contains("auth.api_tokens"),
            "{body}"
        );
        assert!(body.contains("token store"), "{body}");
        // Only a 503 invites a retry: a corrupt or read-only store will not heal by itself.
        assert_eq!(
            body.contains("try again"),
            kind == StoreErrorKind::Unavailable,
            "{body}"
        );
    }
}
