//! A token API as a plain hyper service behind `api_tokens::tower::AuthLayer`, over SQLite:
//! issue, list, verify (`/me`) and revoke. The layer authenticates every request and puts
//! the `Principal` into its extensions; the handler only routes.
//!
//! ```text
//! cargo run --example tower --features tower,sqlite
//! # BIND=127.0.0.1:8082  DATABASE_URL=sqlite://tower-tokens.db (default: in memory)
//! ```
//!
//! At start it issues a token for the user `demo` and prints it once (the routes and
//! bodies are those of `examples/actix.rs`).

use std::convert::Infallible;

use api_tokens::tower::AuthLayer;
use api_tokens::web::{Rejection, check_grant, parse_token_id};
use api_tokens::{
    ApiTokens, AuthError, Error, Expiry, ListRequest, NewToken, Principal, Scopes, SqliteStore,
};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use serde::Deserialize;
use serde_json::json;
use tower::{ServiceBuilder, service_fn};

type Tokens = ApiTokens<SqliteStore>;

#[derive(Deserialize)]
struct Create {
    name: String,
    scopes: Option<Vec<String>>,
    expires_in_days: Option<i64>,
}

/// A JSON response.
fn json(status: StatusCode, value: serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        "content-type",
        "application/json".parse().expect("a header value"),
    );
    response
}

/// A rejection (from this crate's rules) as the response.
fn reject(rejection: impl Into<Rejection>) -> Response<Full<Bytes>> {
    let rejection = rejection.into();
    let mut response = Response::new(Full::new(Bytes::copy_from_slice(rejection.body())));
    *response.status_mut() =
        StatusCode::from_u16(rejection.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in rejection.headers() {
        response
            .headers_mut()
            .insert(name, value.parse().expect("a header value"));
    }
    response
}

/// The scopes a route needs, or 403.
fn require(who: &Principal, scope: &str) -> Result<(), Rejection> {
    match who.has_scope(scope) {
        true => Ok(()),
        false => Err(AuthError::InsufficientScope {
            missing: vec![scope.to_owned()],
        }
        .into()),
    }
}

async fn route(
    tokens: Tokens,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let who = req
        .extensions()
        .get::<Principal>()
        .cloned()
        .expect("the layer authenticated it");
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let answer = match (method, path.as_str()) {
        (Method::GET, "/me") => Ok(json(
            StatusCode::OK,
            json!({
                "owner": who.owner(),
                "tenant": who.tenant(),
                "token_id": who.token_id().to_string(),
                "scopes": who.scopes().iter().collect::<Vec<_>>(),
            }),
        )),
        (Method::GET, "/tokens") => match require(&who, "tokens:read") {
            Ok(()) => tokens
                .list(&ListRequest::new(who.owner()))
                .await
                .map(|page| json(StatusCode::OK, json!(page)))
                .map_err(Rejection::from),
            Err(r) => Err(r),
        },
        (Method::POST, "/tokens") => create(&tokens, &who, req).await,
        (Method::DELETE, p) if p.starts_with("/tokens/") => {
            match require(&who, "tokens:write").and_then(|()| parse_token_id(&p[8..])) {
                Ok(id) => tokens
                    .revoke(who.owner(), id, Some("revoked by its owner"))
                    .await
                    .map(|()| json(StatusCode::OK, json!({ "revoked": id.to_string() })))
                    .map_err(Rejection::from),
                Err(r) => Err(r),
            }
        }
        _ => Ok(json(StatusCode::NOT_FOUND, json!({ "code": "not_found" }))),
    };
    Ok(answer.unwrap_or_else(reject))
}

/// `POST /tokens`: a token created by the caller's, never wider or longer lived.
async fn create(
    tokens: &Tokens,
    who: &Principal,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Rejection> {
    require(who, "tokens:write")?;
    let bytes = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let body: Create = serde_json::from_slice(&bytes).map_err(|e| {
        Rejection::from(Error::from(api_tokens::FieldError::new(
            "body",
            e.to_string(),
        )))
    })?;
    let scopes = Scopes::parse(body.scopes.unwrap_or_default()).map_err(Error::from)?;
    check_grant(who, &scopes)?;
    let expires = body
        .expires_in_days
        .map_or(Expiry::PolicyDefault, Expiry::InDays);
    let issued = tokens
        .issue(
            NewToken::child_of(who, body.name)
                .scopes(scopes.iter())
                .expires(expires),
        )
        .await?;
    Ok(json(
        StatusCode::CREATED,
        json!({ "token": issued.plaintext.expose_secret(), "token_info": issued.info() }),
    ))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:8082".into());
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "sqlite::memory:".into());
    let store = SqliteStore::connect(&url).await?;
    store.migrate().await?;
    let tokens = ApiTokens::new(store, "dz")?;
    let first = tokens
        .issue(NewToken::new("demo", "bootstrap").scopes(["tokens:read", "tokens:write"]))
        .await?;
    let listener = tokio::net::TcpListener::bind(&bind).await?;
    eprintln!("listening on http://{}", listener.local_addr()?);
    eprintln!(
        "token for demo (shown once): {}",
        first.plaintext.expose_secret()
    );
    loop {
        let (stream, _) = listener.accept().await?;
        let handler = tokens.clone();
        let service = ServiceBuilder::new()
            .layer(AuthLayer::new(tokens.clone()))
            .service(service_fn(move |req| route(handler.clone(), req)));
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
            if let Err(e) = connection.await {
                eprintln!("connection error: {e}");
            }
        });
    }
}
