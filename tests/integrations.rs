//! One table of requests, run over real HTTP against the axum, actix-web and tower
//! integrations: every row must get the same status, `WWW-Authenticate`, `Retry-After` and
//! body from all three (and every 401 the same body), so the rules that live once in
//! `api_tokens::web` reach every framework intact. The tower layer also answers gRPC calls.
//! Each server learns the client's address from its connection (axum and tower through a
//! `PeerAddr` extension, as their documentation says; actix-web by itself), and the tokens
//! believe `X-Forwarded-For` from 127.0.0.1 only: rows sent from 127.0.0.2 are an untrusted
//! client setting that header itself.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use api_tokens::store::{Change, ListFilter, ListPage, RevokeAll};
use api_tokens::{
    ApiTokens, DynTokenStore, Expiry, IpAllowlist, ManualClock, MemoryStore, NewToken, StoreError,
    StoreErrorKind, TokenId, TokenRecord, TokenStore, TrustedProxies,
};
use time::OffsetDateTime;

api_tokens::scope_requirement!(TokensWrite = ["tokens:write"]);

/// A memory store whose reads of one token fail as an unreachable database's would.
struct BrokenFor {
    inner: MemoryStore,
    broken: std::sync::Mutex<Option<TokenId>>,
}

impl BrokenFor {
    fn down(&self, id: &TokenId) -> bool {
        *self.broken.lock().unwrap() == Some(*id)
    }
}

fn unavailable() -> StoreError {
    StoreError::new(StoreErrorKind::Unavailable, "the test database is down")
}

impl TokenStore for BrokenFor {
    async fn insert(&self, r: &TokenRecord) -> Result<(), StoreError> {
        self.inner.insert(r).await
    }
    async fn get(&self, id: &TokenId) -> Result<Option<Arc<TokenRecord>>, StoreError> {
        if self.down(id) {
            return Err(unavailable());
        }
        self.inner.get(id).await
    }
    fn read_now<R>(
        &self,
        id: &TokenId,
        read: impl FnOnce(Option<&TokenRecord>) -> R,
    ) -> Option<Result<R, StoreError>> {
        if self.down(id) {
            return Some(Err(unavailable()));
        }
        self.inner.read_now(id, read)
    }
    async fn list(&self, f: &ListFilter<'_>) -> Result<ListPage, StoreError> {
        self.inner.list(f).await
    }
    async fn record_last_use(&self, id: &TokenId, at: OffsetDateTime) -> Result<bool, StoreError> {
        self.inner.record_last_use(id, at).await
    }
    async fn update(&self, id: &TokenId, c: &mut Change<'_>) -> Result<bool, StoreError> {
        self.inner.update(id, c).await
    }
    async fn rotate(
        &self,
        id: &TokenId,
        c: &mut Change<'_>,
        s: &TokenRecord,
    ) -> Result<bool, StoreError> {
        self.inner.rotate(id, c, s).await
    }
    async fn revoke_all(&self, all: &RevokeAll<'_>) -> Result<u64, StoreError> {
        self.inner.revoke_all(all).await
    }
    async fn purge(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        self.inner.purge(before).await
    }
}

/// The tokens the table presents.
struct Fixture {
    tokens: ApiTokens<DynTokenStore>,
    reader: String,
    writer: String,
    revoked: String,
    expired: String,
    broken: String,
    unknown: String,
    /// Allowed from 127.0.0.0/8 only.
    loopback: String,
    /// Allowed from 10.0.0.0/8 only.
    office: String,
}

async fn fixture() -> Fixture {
    let clock = ManualClock::new(OffsetDateTime::now_utc());
    let store = Arc::new(BrokenFor {
        inner: MemoryStore::new(),
        broken: std::sync::Mutex::new(None),
    });
    let proxies = TrustedProxies::new(
        "x-forwarded-for",
        IpAllowlist::parse(["127.0.0.1"]).unwrap(),
    );
    let tokens = ApiTokens::builder(DynTokenStore::new(Arc::clone(&store)), "dz")
        .clock(clock.clone())
        .trusted_proxies(proxies)
        .build()
        .unwrap();
    let issue = |new: NewToken| {
        let tokens = tokens.clone();
        async move {
            let issued = tokens.issue(new).await.unwrap();
            (
                issued.plaintext.expose_secret().to_owned(),
                issued.record.id,
            )
        }
    };
    let (reader, _) = issue(
        NewToken::new("alice", "r")
            .tenant("biz_1")
            .scopes(["tokens:read"]),
    )
    .await;
    let (writer, _) = issue(NewToken::new("alice", "w").scopes(["tokens:write"])).await;
    let (loopback, _) = issue(NewToken::new("alice", "l").allowed_ips(["127.0.0.0/8"])).await;
    let (office, _) = issue(NewToken::new("alice", "o").allowed_ips(["10.0.0.0/8"])).await;
    let (revoked, revoked_id) = issue(NewToken::new("alice", "x")).await;
    tokens
        .revoke("alice", revoked_id, Some("leaked"))
        .await
        .unwrap();
    let (expired, _) =
        issue(NewToken::new("alice", "e").expires(Expiry::After(time::Duration::minutes(1)))).await;
    let (broken, broken_id) = issue(NewToken::new("alice", "b")).await;
    *store.broken.lock().unwrap() = Some(broken_id);
    clock.advance(time::Duration::minutes(2));
    let other = ApiTokens::new(MemoryStore::new(), "dz").unwrap();
    let unknown = other.issue(NewToken::new("x", "x")).await.unwrap();
    Fixture {
        tokens,
        reader,
        writer,
        revoked,
        expired,
        broken,
        unknown: unknown.plaintext.expose_secret().to_owned(),
        loopback,
        office,
    }
}

/// One row: what is sent, and what must come back.
struct Row {
    name: &'static str,
    path: &'static str,
    headers: Vec<(&'static str, String)>,
    status: u16,
    code: Option<&'static str>,
    /// The client's address (127.0.0.1, the trusted proxy, unless a row says otherwise).
    from: IpAddr,
}

fn rows(f: &Fixture) -> Vec<Row> {
    let bearer = |t: &str| format!("Bearer {t}");
    let row = |name, path, headers: Vec<(&'static str, String)>, status, code| Row {
        name,
        path,
        headers,
        status,
        code,
        from: IpAddr::from([127, 0, 0, 1]),
    };
    let forwarded = |token: &str, address: &str| {
        vec![
            ("authorization", bearer(token)),
            ("x-forwarded-for", address.to_owned()),
        ]
    };
    let untrusted = |row: Row| Row {
        from: IpAddr::from([127, 0, 0, 2]),
        ..row
    };
    vec![
        row(
            "allowlisted peer",
            "/me",
            vec![("authorization", bearer(&f.loopback))],
            200,
            None,
        ),
        row(
            "peer outside the allowlist",
            "/me",
            vec![("authorization", bearer(&f.office))],
            403,
            Some("ip_not_allowed"),
        ),
        row(
            "allowlisted client forwarded by the trusted proxy",
            "/me",
            forwarded(&f.office, "10.1.2.3"),
            200,
            None,
        ),
        row(
            "client outside the allowlist forwarded by the trusted proxy",
            "/me",
            forwarded(&f.loopback, "10.1.2.3"),
            403,
            Some("ip_not_allowed"),
        ),
        untrusted(row(
            "a forwarding header from an untrusted peer is ignored",
            "/me",
            forwarded(&f.office, "10.1.2.3"),
            403,
            Some("ip_not_allowed"),
        )),
        untrusted(row(
            "an untrusted peer in the allowlist, whatever it forwards",
            "/me",
            forwarded(&f.loopback, "10.1.2.3"),
            200,
            None,
        )),
        row(
            "valid",
            "/me",
            vec![("authorization", bearer(&f.reader))],
            200,
            None,
        ),
        row(
            "valid by x-api-key",
            "/me",
            vec![("x-api-key", f.reader.clone())],
            200,
            None,
        ),
        row(
            "valid in its tenant",
            "/me",
            vec![
                ("authorization", bearer(&f.reader)),
                ("x-business-id", "biz_1".into()),
            ],
            200,
            None,
        ),
        row(
            "scope held",
            "/write",
            vec![("authorization", bearer(&f.writer))],
            200,
            None,
        ),
        row("missing", "/me", vec![], 401, Some("invalid_token")),
        row(
            "malformed header",
            "/me",
            vec![("authorization", "Basic dXNlcjpwYXNz".into())],
            401,
            Some("invalid_token"),
        ),
        row(
            "malformed token",
            "/me",
            vec![("authorization", bearer("dz_garbage"))],
            401,
            Some("invalid_token"),
        ),
        row(
            "unknown",
            "/me",
            vec![("authorization", bearer(&f.unknown))],
            401,
            Some("invalid_token"),
        ),
        row(
            "revoked",
            "/me",
            vec![("authorization", bearer(&f.revoked))],
            401,
            Some("invalid_token"),
        ),
        row(
            "expired",
            "/me",
            vec![("authorization", bearer(&f.expired))],
            401,
            Some("invalid_token"),
        ),
        row(
            "wrong scope",
            "/write",
            vec![("authorization", bearer(&f.reader))],
            403,
            Some("insufficient_scope"),
        ),
        row(
            "wrong tenant",
            "/me",
            vec![
                ("authorization", bearer(&f.reader)),
                ("x-business-id", "biz_2".into()),
            ],
            403,
            Some("wrong_tenant"),
        ),
        row(
            "repeated authorization",
            "/me",
            vec![
                ("authorization", bearer(&f.reader)),
                ("authorization", bearer(&f.reader)),
            ],
            401,
            Some("invalid_token"),
        ),
        row(
            "repeated tenant",
            "/me",
            vec![
                ("authorization", bearer(&f.reader)),
                ("x-business-id", "biz_1".into()),
                ("x-business-id", "biz_1".into()),
            ],
            401,
            Some("invalid_token"),
        ),
        row(
            "two different tokens",
            "/me",
            vec![
                ("authorization", bearer(&f.reader)),
                ("x-api-key", f.writer.clone()),
            ],
            401,
            Some("invalid_token"),
        ),
        row(
            "store down",
            "/me",
            vec![("authorization", bearer(&f.broken))],
            503,
            Some("store_unavailable"),
        ),
    ]
}

mod axum_server {
    use std::net::SocketAddr;

    use api_tokens::axum::{Authenticated, RequireScopes};
    use api_tokens::web::PeerAddr;
    use api_tokens::{ApiTokens, DynTokenStore};
    use axum::extract::{ConnectInfo, Request};
    use axum::middleware::{Next, from_fn};
    use axum::{Router, routing::get};

    /// The connection's peer as a `PeerAddr`, for IP allowlists.
    async fn peer(
        ConnectInfo(addr): ConnectInfo<SocketAddr>,
        mut req: Request,
        next: Next,
    ) -> axum::response::Response {
        req.extensions_mut().insert(PeerAddr(addr.ip()));
        next.run(req).await
    }

    async fn me(auth: Authenticated<DynTokenStore>) -> String {
        auth.owner().to_owned()
    }

    async fn write(auth: RequireScopes<super::TokensWrite, DynTokenStore>) -> String {
        auth.owner().to_owned()
    }

    pub async fn start(tokens: ApiTokens<DynTokenStore>) -> String {
        let app = Router::new()
            .route("/me", get(me))
            .route("/write", get(write))
            .layer(from_fn(peer))
            .with_state(tokens);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}")
    }
}

mod actix_server {
    use actix_web::{App, HttpServer, web};
    use api_tokens::actix::{Authenticated, RequireScopes};
    use api_tokens::{ApiTokens, DynTokenStore};

    async fn me(auth: Authenticated<DynTokenStore>) -> String {
        auth.owner().to_owned()
    }

    async fn write(auth: RequireScopes<super::TokensWrite, DynTokenStore>) -> String {
        auth.owner().to_owned()
    }

    /// An actix-web server on its own thread (its own system), on a free port.
    pub fn start(tokens: ApiTokens<DynTokenStore>) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let data = web::Data::new(tokens);
                HttpServer::new(move || {
                    App::new()
                        .app_data(data.clone())
                        .route("/me", web::get().to(me))
                        .route("/write", web::get().to(write))
                })
                .workers(1)
                .listen(listener)
                .unwrap()
                .run()
                .await
                .unwrap();
            });
        });
        format!("http://{addr}")
    }
}

mod tower_server {
    use std::convert::Infallible;
    use std::net::SocketAddr;

    use api_tokens::tower::AuthLayer;
    use api_tokens::web::PeerAddr;
    use api_tokens::{ApiTokens, DynTokenStore, Principal};
    use hyper::body::Incoming;
    use hyper_util::rt::TokioIo;
    use hyper_util::service::TowerToHyperService;
    use tower::{ServiceBuilder, service_fn};

    async fn handler(req: http::Request<Incoming>) -> Result<http::Response<String>, Infallible> {
        let who = req.extensions().get::<Principal>().expect("authenticated");
        Ok(http::Response::new(who.owner().to_owned()))
    }

    /// A plain hyper server with the layer: `/write` (any path on the second listener)
    /// requires `tokens:write`.
    pub async fn start(tokens: ApiTokens<DynTokenStore>) -> (String, String) {
        let me = serve(AuthLayer::new(tokens.clone())).await;
        let write = serve(AuthLayer::new(tokens).require_scopes(["tokens:write"])).await;
        (format!("http://{me}"), format!("http://{write}"))
    }

    async fn serve(layer: AuthLayer<DynTokenStore>) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (stream, peer) = listener.accept().await.unwrap();
                let service = ServiceBuilder::new()
                    .map_request(move |mut req: http::Request<Incoming>| {
                        req.extensions_mut().insert(PeerAddr(peer.ip()));
                        req
                    })
                    .layer(layer.clone())
                    .service(service_fn(handler));
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
                        .await;
                });
            }
        });
        addr
    }
}

/// What came back for one request.
#[derive(Debug, PartialEq)]
struct Answer {
    status: u16,
    www_authenticate: Option<String>,
    retry_after: Option<String>,
    body: String,
}

async fn send(url: &str, row: &Row) -> Answer {
    let client = reqwest::Client::builder()
        .local_address(row.from)
        .build()
        .unwrap();
    let mut request = client.get(url);
    for (name, value) in &row.headers {
        request = request.header(*name, value);
    }
    let r = request.send().await.unwrap();
    let header = |name: &str| {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let (www_authenticate, retry_after) = (header("www-authenticate"), header("retry-after"));
    Answer {
        status: r.status().as_u16(),
        www_authenticate,
        retry_after,
        body: r.text().await.unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_integration_answers_the_table_alike() {
    let f = fixture().await;
    let axum = axum_server::start(f.tokens.clone()).await;
    let actix = actix_server::start(f.tokens.clone());
    let (tower_me, tower_write) = tower_server::start(f.tokens.clone()).await;
    tokio::time::sleep(Duration::from_millis(200)).await; // actix binds on its thread
    let mut unauthorized_bodies = std::collections::HashSet::new();
    for row in rows(&f) {
        let tower_base = if row.path == "/write" {
            &tower_write
        } else {
            &tower_me
        };
        let answers = [
            ("axum", send(&format!("{axum}{}", row.path), &row).await),
            ("actix", send(&format!("{actix}{}", row.path), &row).await),
            (
                "tower",
                send(&format!("{tower_base}{}", row.path), &row).await,
            ),
        ];
        for (framework, answer) in &answers {
            let what = format!("{} on {framework}: {answer:?}", row.name);
            assert_eq!(answer.status, row.status, "{what}");
            assert_eq!(
                answer.www_authenticate.as_deref(),
                (row.status == 401).then_some("Bearer"),
                "{what}"
            );
            assert_eq!(
                answer.retry_after.as_deref(),
                (row.status == 503).then_some("1"),
                "{what}"
            );
            match row.code {
                Some(code) => {
                    let body: serde_json::Value = serde_json::from_str(&answer.body)
                        .unwrap_or_else(|e| panic!("{what}: not JSON ({e})"));
                    assert_eq!(body["code"], code, "{what}");
                    assert!(!answer.body.contains("revoked at"), "{what}");
                    assert!(!answer.body.contains("expired at"), "{what}");
                    assert!(!answer.body.contains("test database"), "{what}");
                }
                None => assert_eq!(answer.body, "alice", "{what}"),
            }
            if row.status == 401 {
                unauthorized_bodies.insert(answer.body.clone());
            }
        }
        assert_eq!(
            answers[0].1, answers[1].1,
            "{}: axum and actix differ",
            row.name
        );
        assert_eq!(
            answers[0].1, answers[2].1,
            "{}: axum and tower differ",
            row.name
        );
    }
    assert_eq!(
        unauthorized_bodies.len(),
        1,
        "every 401 has one body: {unauthorized_bodies:?}"
    );
}

/// Through the tower layer, a gRPC call is answered the gRPC way: HTTP 200, trailers-only,
/// `grpc-status` 16 for no valid token, 7 for a missing scope, 14 for a store that is down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tower_layer_answers_grpc_calls_with_grpc_statuses() {
    let f = fixture().await;
    let (me, write) = tower_server::start(f.tokens.clone()).await;
    let client = reqwest::Client::new();
    let cases = [
        (&me, None, "16"),
        (&me, Some(f.revoked.clone()), "16"),
        (&write, Some(f.reader.clone()), "7"),
        (&me, Some(f.broken.clone()), "14"),
    ];
    for (base, token, status) in cases {
        let mut request = client
            .post(format!("{base}/pkg.Service/Method"))
            .header("content-type", "application/grpc");
        if let Some(token) = &token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let r = request.send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        assert_eq!(r.headers()["content-type"], "application/grpc");
        assert_eq!(r.headers()["grpc-status"], status, "{token:?}");
        assert!(r.headers().contains_key("grpc-message"));
        assert!(r.text().await.unwrap().is_empty(), "trailers only");
    }
}
