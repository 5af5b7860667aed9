//! The example token service's application, one concern per file: the configuration, the
//! shared state, the users who can log in and the threads that check their passwords, the
//! login limits, GitHub's secret-scanning keys, who is calling, JSON errors and views, logs and metrics, the routes of the
//! token API by resource, and the connection loop with its deadlines and caps.
//!
//! Kept apart from `main.rs` (startup and shutdown) so the integration tests can start
//! exactly this application in-process.

mod audit;
mod caller;
mod config;
mod github_keys;
mod json;
mod limiter;
mod observe;
mod passwords;
mod routes;
mod serve;
mod state;
mod users;
mod views;

pub use audit::AuditLog;
pub use config::Config;
#[allow(unused_imports)] // served directly by the fuzz target
pub use routes::router;
pub use serve::{serve, serve_health};
pub use state::{AppState, CacheMetrics, token_service};
pub use users::Users;
