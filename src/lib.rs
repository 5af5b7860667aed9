//! # api-tokens
//!
//! The whole life of an API token for a Rust service: **issue, verify, revoke, expire**, and
//! list, rotate and track last use, over pluggable async storage.
//!
//! - The plaintext is shown once ([`PlaintextToken`]); stores keep only the SHA-256 of the
//!   secret ([`TokenHash`]), compared in constant time.
//! - Tokens look like `dz_<id><secret><crc32>`: one alphabet (`[A-Za-z0-9_]`), an issuer
//!   prefix, a public id for O(1) lookup, a 256-bit secret, and a checksum that rejects typos
//!   before storage is touched ([`TokenFormat`]).
//! - Every token has an owner, optionally a tenant, a name, a description, scopes, and
//!   `created_at` / `expires_at` / `last_used_at` / `revoked_at` / `revocation_reason`
//!   ([`TokenRecord`]).
//! - Failures are typed and carry the HTTP status to answer ([`AuthError::status`],
//!   [`Error::status`]).
//!
//! ## Quick start
//!
//! ```
//! use api_tokens::{ApiTokens, AuthError, Expiry, MemoryStore, NewToken, presented_token};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let tokens = ApiTokens::new(MemoryStore::new(), "dz")?;
//!
//! // Issue: show `plaintext` to the user once.
//! let issued = tokens
//!     .issue(NewToken::new("user_42", "deploy-script").scopes(["tokens:read"]).expires(Expiry::InDays(30)))
//!     .await?;
//! let plaintext = issued.plaintext.expose_secret().to_owned();
//!
//! // Verify what a request presents in `Authorization: Bearer …` or `X-API-Key: …`.
//! let header = format!("Bearer {plaintext}");
//! let who = tokens.verify(presented_token(Some(header.as_bytes()), None)?).await?;
//! assert_eq!(who.owner(), "user_42");
//!
//! // Revoke: the very next verification fails.
//! tokens.revoke("user_42", who.token_id(), Some("leaked")).await?;
//! let err = tokens.verify(&plaintext).await.unwrap_err();
//! assert!(matches!(err, AuthError::Revoked { .. }));
//! assert_eq!(err.status(), 401);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! ## Crate features
//!
//! | feature   | default | what it adds |
//! |-----------|---------|--------------|
//! | `testkit` | no      | [`testkit`]: the conformance suite every [`TokenStore`] must pass |
//! | `sqlite`  | no      | `SqliteStore`, on sqlx 0.9 with SQLite bundled; re-exports `sqlx` |
//! | `postgres`| no      | `PostgresStore`, on sqlx 0.9; re-exports `sqlx` |
//! | `axum`    | no      | [`axum`](crate::axum): the `Authenticated` extractor and JSON error responses |
//!
//! The in-memory store ([`MemoryStore`]) is always available and needs no runtime.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

/// The `sqlx` this crate was built with, so you can name the exact version of its pools.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "sqlite", feature = "postgres"))))]
pub use sqlx;

// Layers, bottom to top; a module imports only from the layers below it.
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod axum;
mod clock;
mod error;
mod hash;
mod header;
pub mod limits;
mod record;
mod service;
pub mod store;
#[cfg(feature = "testkit")]
#[cfg_attr(docsrs, doc(cfg(feature = "testkit")))]
pub mod testkit;
mod token;
mod validate;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{
    AuthError, ConfigError, Error, FieldError, ParseError, RandomError, StoreError, StoreErrorKind,
    ValidationErrors,
};
pub use hash::TokenHash;
pub use header::presented_token;
pub use record::{Scopes, TokenInfo, TokenRecord};
pub use service::{
    ApiTokens, ApiTokensBuilder, Expiry, Issued, ListRequest, NewToken, Page, PageMeta, Principal,
    Requirements, TokenPolicy,
};
pub use store::dynamic::DynTokenStore;
pub use store::memory::MemoryStore;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use store::postgres::PostgresStore;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use store::sqlite::SqliteStore;
pub use store::token_store::TokenStore;
pub use token::{PlaintextToken, Token, TokenFormat, TokenId};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
