//! The users who can log in, from `DEMO_USERS`, with Argon2 password hashes.

use std::collections::HashMap;
use std::sync::Arc;

use zeroize::Zeroizing;

use super::passwords::{Busy, Passwords};

/// A user who can log in. Its `Debug` leaves out the password hash.
#[derive(Clone)]
pub struct User {
    /// Stable id, derived from the email so it survives restarts.
    pub id: String,
    /// Login email, as configured.
    pub email: String,
    /// The tenant the user's tokens belong to.
    pub tenant: String,
    /// An administrator (`:admin` after the tenant in `DEMO_USERS`): its login token also
    /// carries `admin:tokens`.
    pub admin: bool,
    password_hash: Arc<str>,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("tenant", &self.tenant)
            .field("admin", &self.admin)
            .finish_non_exhaustive()
    }
}

/// The users of this service, from `DEMO_USERS`.
pub struct Users {
    by_email: HashMap<String, User>,
    by_id: HashMap<String, User>,
    /// Checked against when an email is unknown, so timing does not reveal which exist.
    dummy_hash: Arc<str>,
}

impl Users {
    /// Parse `email:password:tenant` entries (`email:password:tenant:admin` for an
    /// administrator) separated by commas, hashing each password.
    pub fn from_spec(spec: &str) -> Result<Self, String> {
        let mut by_email = HashMap::new();
        let mut by_id = HashMap::new();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let mut parts = entry.splitn(4, ':');
            let shape = |_| {
                format!(
                    "a DEMO_USERS entry is not `email:password:tenant` or \
                     `email:password:tenant:admin` (for the user starting {:?})",
                    entry.chars().take(3).collect::<String>()
                )
            };
            let (Some(email), Some(password), Some(tenant)) =
                (parts.next(), parts.next(), parts.next())
            else {
                return Err(shape(()));
            };
            let admin = match parts.next() {
                None => false,
                Some("admin") => true,
                Some(_) => return Err(shape(())),
            };
            if email.is_empty() || password.is_empty() || tenant.is_empty() {
                return Err("a DEMO_USERS entry has an empty email, password or tenant".into());
            }
            let digest = api_tokens::TokenHash::of_secret(email.to_lowercase().as_bytes());
            let id = format!("user_{}", hex::encode(&digest.as_bytes()[..8]));
            let user = User {
                id: id.clone(),
                email: email.to_owned(),
                tenant: tenant.to_owned(),
                admin,
                password_hash: password_auth::generate_hash(password).into(),
            };
            if by_email
                .insert(email.to_lowercase(), user.clone())
                .is_some()
            {
                return Err(format!("DEMO_USERS lists {email} twice"));
            }
            by_id.insert(id, user);
        }
        if by_email.is_empty() {
            return Err("DEMO_USERS lists no user".into());
        }
        Ok(Self {
            by_email,
            by_id,
            dummy_hash: password_auth::generate_hash("not a password anyone has").into(),
        })
    }

    pub fn by_id(&self, id: &str) -> Option<&User> {
        self.by_id.get(id)
    }

    /// The user with this email and password, checked on the password threads; an unknown
    /// email costs the same hash, so timing does not tell which emails exist.
    pub async fn check(
        &self,
        passwords: &Passwords,
        email: &str,
        password: Zeroizing<String>,
    ) -> Result<Option<User>, Busy> {
        let user = self.by_email.get(&email.to_lowercase()).cloned();
        let hash = user.as_ref().map_or_else(
            || Arc::clone(&self.dummy_hash),
            |u| Arc::clone(&u.password_hash),
        );
        let matched = passwords.verify(password, hash).await?;
        Ok(user.filter(|_| matched))
    }
}
