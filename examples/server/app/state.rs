//! What every handler can reach.

use std::sync::Arc;

use api_tokens::ApiTokens;
use axum::extract::FromRef;

use super::limiter::Limiter;
use super::users::Users;

/// The application state: the token service, the users and the login limiter.
pub struct AppState<St> {
    /// The token service.
    pub tokens: ApiTokens<St>,
    /// Who can log in.
    pub users: Arc<Users>,
    /// Failed password attempts.
    pub limiter: Arc<Limiter>,
}

impl<St> Clone for AppState<St> {
    fn clone(&self) -> Self {
        Self {
            tokens: self.tokens.clone(),
            users: Arc::clone(&self.users),
            limiter: Arc::clone(&self.limiter),
        }
    }
}

/// Lets the crate's extractors find the token service in this state.
impl<St> FromRef<AppState<St>> for ApiTokens<St> {
    fn from_ref(state: &AppState<St>) -> Self {
        state.tokens.clone()
    }
}
