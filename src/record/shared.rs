//! [`Shared`]: the fields many of the memory store's records have in common, kept once per
//! combination, with owner, tenant and scopes also packed for verification.

use std::sync::Arc;

use super::{Scopes, pack_shared};

/// The fields of a record that many tokens have in common: an owner's tokens of one issuer
/// mostly differ only in name and times. The memory store keeps one copy of each
/// combination (eight bytes a token instead of 64).
#[derive(Clone, Debug)]
pub(crate) struct Shared {
    pub(crate) owner: Arc<str>,
    pub(crate) tenant: Option<Arc<str>>,
    pub(crate) scopes: Scopes,
    pub(crate) prefix: Arc<str>,
    /// Owner, tenant and scopes packed as a [`Principal`](crate::Principal) holds them, so
    /// that verification copies them in one piece; empty in a key that only looks up the
    /// shared copy (never in a record: an owner always takes four bytes at least).
    packed: Box<[u8]>,
}

impl Shared {
    /// The fields, packed for verification.
    pub(crate) fn new(
        owner: Arc<str>,
        tenant: Option<Arc<str>>,
        scopes: Scopes,
        prefix: Arc<str>,
    ) -> Self {
        let packed = pack_shared(&owner, tenant.as_deref(), &scopes);
        Self {
            owner,
            tenant,
            scopes,
            prefix,
            packed,
        }
    }

    /// The fields, not packed: a key to find the shared copy by.
    pub(super) fn key(
        owner: Arc<str>,
        tenant: Option<Arc<str>>,
        scopes: Scopes,
        prefix: Arc<str>,
    ) -> Self {
        Self {
            owner,
            tenant,
            scopes,
            prefix,
            packed: Box::default(),
        }
    }

    /// These fields packed for verification, unless this is only a key.
    pub(super) fn packed(&self) -> Option<&[u8]> {
        // The fields are never changed after `new` (a changed record is made compact
        // again, with the shared copy of its new fields): the packed copy is theirs.
        Some(&*self.packed).filter(|p| !p.is_empty())
    }
}

/// Equal when the fields are (the packed copy follows from them).
impl PartialEq for Shared {
    fn eq(&self, other: &Self) -> bool {
        (&self.owner, &self.tenant, &self.scopes, &self.prefix)
            == (&other.owner, &other.tenant, &other.scopes, &other.prefix)
    }
}

impl Eq for Shared {}

impl std::hash::Hash for Shared {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (&self.owner, &self.tenant, &self.scopes, &self.prefix).hash(state);
    }
}
