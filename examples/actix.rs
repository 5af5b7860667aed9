//! A token API on actix-web 4 over SQLite: issue (a token creates tokens no wider or longer
//! lived than itself), list, verify (`/me`) and revoke.
//!
//! ```text
//! cargo run --example actix --features actix,sqlite
//! # BIND=127.0.0.1:8081  DATABASE_URL=sqlite://actix-tokens.db (default: in memory)
//! ```
//!
//! At start it issues a token for the user `demo` and prints it once; use it to call:
//!
//! ```text
//! curl -s localhost:8081/me -H "Authorization: Bearer $TOKEN"
//! curl -s localhost:8081/tokens -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \
//!   -d '{"name":"ci","scopes":["tokens:read"],"expires_in_days":30}'
//! curl -s localhost:8081/tokens -H "Authorization: Bearer $TOKEN"
//! curl -s -X DELETE localhost:8081/tokens/<id> -H "Authorization: Bearer $TOKEN"
//! ```

use actix_web::{App, HttpResponse, HttpServer, web};
use api_tokens::actix::{Authenticated, RequireScopes};
use api_tokens::web::{ErrorBody, parse_token_id};
use api_tokens::{ApiTokens, Error, Expiry, ListRequest, NewToken, SqliteStore};
use serde::Deserialize;
use serde_json::json;

api_tokens::scope_requirement!(TokensRead = ["tokens:read"]);
api_tokens::scope_requirement!(TokensWrite = ["tokens:write"]);

type Tokens = web::Data<ApiTokens<SqliteStore>>;

/// `GET /me`: who the token acts for.
async fn me(auth: Authenticated<SqliteStore>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "owner": auth.owner(),
        "tenant": auth.tenant(),
        "token_id": auth.token_id().to_string(),
        "scopes": auth.scopes().iter().collect::<Vec<_>>(),
    }))
}

#[derive(Deserialize)]
struct Create {
    name: String,
    scopes: Option<Vec<String>>,
    expires_in_days: Option<i64>,
}

/// `POST /tokens`: a token created by the caller's, never wider or longer lived (403 or a
/// shortened expiry), and revoked with it.
async fn create(
    auth: RequireScopes<TokensWrite, SqliteStore>,
    tokens: Tokens,
    body: web::Json<Create>,
) -> Result<HttpResponse, Error> {
    let body = body.into_inner();
    let expires = body
        .expires_in_days
        .map_or(Expiry::PolicyDefault, Expiry::InDays);
    let new = NewToken::child_of(&auth, body.name)
        .scopes(body.scopes.unwrap_or_default())
        .expires(expires);
    let issued = tokens.issue(new).await?;
    Ok(HttpResponse::Created().json(json!({
        "token": issued.plaintext.expose_secret(),
        "token_info": issued.info(),
    })))
}

/// `GET /tokens`: the caller's active tokens, newest first.
async fn list(
    auth: RequireScopes<TokensRead, SqliteStore>,
    tokens: Tokens,
) -> Result<HttpResponse, Error> {
    let page = tokens.list(&ListRequest::new(auth.owner())).await?;
    Ok(HttpResponse::Ok().json(page))
}

/// `DELETE /tokens/{id}`: revoke one of the caller's tokens (another's, or no id, is 404).
async fn revoke(
    auth: RequireScopes<TokensWrite, SqliteStore>,
    tokens: Tokens,
    id: web::Path<String>,
) -> Result<HttpResponse, actix_web::Error> {
    let id = parse_token_id(&id)?;
    tokens
        .revoke(auth.owner(), id, Some("revoked by its owner"))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A body that is not the JSON a route expects: 400, as JSON too.
fn bad_json(e: actix_web::error::JsonPayloadError, _: &actix_web::HttpRequest) -> actix_web::Error {
    let body = ErrorBody::new("bad_request", e.to_string()).to_json();
    actix_web::error::InternalError::from_response(
        e,
        HttpResponse::BadRequest()
            .content_type("application/json")
            .body(body),
    )
    .into()
}

fn main() -> std::io::Result<()> {
    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:8081".into());
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "sqlite::memory:".into());
    actix_web::rt::System::new().block_on(async move {
        let store = SqliteStore::connect(&url)
            .await
            .map_err(std::io::Error::other)?;
        store.migrate().await.map_err(std::io::Error::other)?;
        let tokens = ApiTokens::new(store, "dz").map_err(std::io::Error::other)?;
        let first = tokens
            .issue(NewToken::new("demo", "bootstrap").scopes(["tokens:read", "tokens:write"]))
            .await
            .map_err(std::io::Error::other)?;
        let server = HttpServer::new({
            let data = web::Data::new(tokens);
            move || {
                App::new()
                    .app_data(data.clone())
                    .app_data(web::JsonConfig::default().error_handler(bad_json))
                    .route("/me", web::get().to(me))
                    .route("/tokens", web::post().to(create))
                    .route("/tokens", web::get().to(list))
                    .route("/tokens/{id}", web::delete().to(revoke))
            }
        })
        .bind(&bind)?;
        for address in server.addrs() {
            eprintln!("listening on http://{address}");
        }
        eprintln!(
            "token for demo (shown once): {}",
            first.plaintext.expose_secret()
        );
        server.run().await
    })
}
