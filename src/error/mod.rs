//! The crate's error types, at the bottom of the crate: they import nothing above the clock.
//!
//! | type             | raised by                                                      |
//! |------------------|----------------------------------------------------------------|
//! | [`ParseError`]   | [`TokenFormat::parse`](crate::TokenFormat::parse)              |
//! | [`AuthError`]    | verification: every way a presented token fails                |
//! | [`Error`]        | issue, get, revoke, rotate, list, purge                        |
//! | [`ConfigError`]  | building an [`ApiTokens`](crate::ApiTokens) or a store         |
//! | [`StoreError`]   | a [`TokenStore`](crate::TokenStore), carried by the two above  |
//!
//! Every error knows the HTTP status a web layer should answer and a stable code. No
//! message ever contains a token or a secret.

mod auth;
mod config;
mod operation;
mod parse;
mod store;

pub use auth::AuthError;
#[cfg_attr(not(feature = "web"), allow(unused_imports))]
pub(crate) use auth::retry_secs;
pub use config::ConfigError;
pub use operation::{Error, FieldError, RandomError, ValidationErrors};
pub use parse::ParseError;
pub use store::{StoreError, StoreErrorKind};
