//! The example token service's application, one concern per file: the shared state, the
//! users who can log in, the login limiter, JSON errors and views, and the routes of the
//! token API by resource.
//!
//! Kept apart from `main.rs` (configuration, startup, shutdown) so the integration tests can
//! start exactly this router in-process.

mod json;
mod limiter;
mod routes;
mod state;
mod users;
mod views;

pub use limiter::MAX_FAILED_LOGINS;
pub use routes::router;
pub use state::AppState;
pub use users::Users;
