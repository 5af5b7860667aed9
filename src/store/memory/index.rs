//! The memory store's listing indexes: for each issuer, owner and tenant, the tokens in
//! creation order, so that a page costs O(page + log n) (O(page + log² n) with ended
//! tokens included) and a total O(1), however many tokens an owner has.

use foldhash::{HashMap, HashSet};
use std::hash::Hash;
use std::sync::Arc;

use time::OffsetDateTime;

use super::positions::{Position, Positions, ids, union_range};
use crate::record::{CompactRecord, Scopes, Shared, TokenRecord, unix_micros as micros};
use crate::token::TokenId;

/// Where `r` stands in its listings.
fn position(r: &CompactRecord) -> Position {
    (r.created_at.get().unwrap_or(i64::MIN), r.id)
}

/// The tokens of one issuer, owner and (optionally) tenant, in creation order, in two
/// disjoint sets: the live ones (neither revoked nor expired as of the issuer's
/// [`Expiring::swept_to`]) and the ended ones. A listing of all of them pages through
/// both at once, so each token is kept once.
#[derive(Default)]
struct ListIndex {
    live: Positions,
    ended: Positions,
}

impl ListIndex {
    fn add(&mut self, at: Position, live: bool) {
        if live {
            self.live.insert(at);
        } else {
            self.ended.insert(at);
        }
    }

    fn remove(&mut self, at: &Position) {
        if !self.live.remove(at) {
            self.ended.remove(at);
        }
    }

    /// Move the token at `at` (if it is here) into the live set or out of it.
    fn set_live(&mut self, at: Position, live: bool) {
        let (from, to) = if live {
            (&mut self.ended, &mut self.live)
        } else {
            (&mut self.live, &mut self.ended)
        };
        if from.remove(&at) {
            to.insert(at);
        }
    }

    /// The ids on one page, newest first, and the total.
    fn page(&self, active_only: bool, offset: u64, limit: u32) -> (Vec<TokenId>, u64) {
        let len = if active_only {
            self.live.len()
        } else {
            self.live.len() + self.ended.len()
        };
        let offset = usize::try_from(offset).unwrap_or(usize::MAX);
        let hi = len.saturating_sub(offset);
        let lo = hi.saturating_sub(limit as usize);
        let mut ids = ids(if active_only {
            self.live.range(lo, hi)
        } else {
            union_range(&self.live, &self.ended, lo, hi)
        });
        ids.reverse();
        (ids, len as u64)
    }

    fn is_empty(&self) -> bool {
        self.live.is_empty() && self.ended.is_empty()
    }

    /// Every token, the live ones first.
    fn iter(&self) -> impl Iterator<Item = &Position> {
        self.live.iter().chain(self.ended.iter())
    }
}

/// An issuer's tokens not revoked that expire, by expiry then id (for expiry notices, and
/// to move tokens out of the listings' live sets as time passes), and the time the live
/// sets are up to.
///
/// Listing at `now` first moves the tokens that expired since `swept_to` out of their
/// owners' live sets (or back, if time went backwards), so that `swept_to == now`: each
/// token moves once as time goes forward, O(log n) over its life, whichever owner lists.
#[derive(Default)]
struct Expiring {
    by_expiry: Positions,
    swept_to: Option<i64>,
}

impl Expiring {
    /// How many tokens expire at or before `t`.
    fn up_to(&self, t: i64) -> usize {
        self.by_expiry
            .rank(&(t.saturating_add(1), TokenId::from_bytes([0; 16])))
    }

    /// Whether a token expiring at `at` is live as of `swept_to`.
    fn live(&self, at: Option<i64>) -> bool {
        at.is_none_or(|e| self.swept_to.is_none_or(|t| e > t))
    }
}

/// An owner's tokens of one issuer: all of them, and each tenant's.
#[derive(Default)]
struct OwnerLists {
    any_tenant: ListIndex,
    /// Boxed: most owners have no tenant.
    tenants: Option<Box<HashMap<Arc<str>, ListIndex>>>,
}

/// Every listing index, and the one shared copy of each owner, tenant, prefix and scope
/// set, and of each combination of them ([`Shared`]).
#[derive(Default)]
pub(super) struct Index {
    lists: HashMap<Arc<str>, HashMap<Arc<str>, OwnerLists>>,
    /// The tokens each token created (`created_by`), for revoking descendants.
    children: HashMap<TokenId, Vec<TokenId>>,
    /// For each issuer, its tokens not revoked that expire.
    expiring: HashMap<Arc<str>, Expiring>,
    strings: HashSet<Arc<str>>,
    scope_sets: HashSet<Scopes>,
    shared: HashSet<Arc<Shared>>,
}

impl Index {
    /// `record` made compact, holding the shared copy of its owner, tenant, prefix and
    /// scopes.
    pub(super) fn compact(&mut self, record: &TokenRecord) -> CompactRecord {
        CompactRecord::new(record, |fields| self.share(fields))
    }

    /// The shared copy of `fields`.
    fn share(&mut self, fields: Shared) -> Arc<Shared> {
        if let Some(found) = self.shared.get(&fields) {
            return Arc::clone(found);
        }
        let fields = Arc::new(Shared::new(
            intern(&mut self.strings, &fields.owner),
            fields.tenant.map(|t| intern(&mut self.strings, &t)),
            intern(&mut self.scope_sets, &fields.scopes),
            intern(&mut self.strings, &fields.prefix),
        ));
        self.shared.insert(Arc::clone(&fields));
        fields
    }

    /// How many shared copies, strings and scope sets are interned (for tests).
    #[cfg(test)]
    pub(super) fn interned(&self) -> (usize, usize, usize) {
        (self.shared.len(), self.strings.len(), self.scope_sets.len())
    }

    /// Forget shared values that no record uses any more.
    pub(super) fn forget_unused(&mut self) {
        self.shared.retain(|s| Arc::strong_count(s) > 1);
        self.strings.retain(|s| Arc::strong_count(s) > 1);
        self.scope_sets.retain(|s| s.ref_count() > 1);
    }

    pub(super) fn add(&mut self, r: &CompactRecord) {
        let revoked = r.revoked_micros().get().is_some();
        let expires = r.expires_at.get();
        let expiring = self
            .expiring
            .entry(Arc::clone(&r.shared.prefix))
            .or_default();
        let live = !revoked && expiring.live(expires);
        if let (false, Some(at)) = (revoked, expires) {
            expiring.by_expiry.insert((at, r.id));
        } else if expiring.by_expiry.is_empty() {
            self.expiring.remove(&*r.shared.prefix);
        }
        if let Some(creator) = r.created_by() {
            let children = self.children.entry(creator).or_default();
            if !children.contains(&r.id) {
                children.push(r.id);
            }
        }
        let at = position(r);
        let owner = self
            .lists
            .entry(Arc::clone(&r.shared.prefix))
            .or_default()
            .entry(Arc::clone(&r.shared.owner))
            .or_default();
        owner.any_tenant.add(at, live);
        if let Some(t) = &r.shared.tenant {
            owner
                .tenants
                .get_or_insert_default()
                .entry(Arc::clone(t))
                .or_default()
                .add(at, live);
        }
    }

    pub(super) fn remove(&mut self, r: &CompactRecord) {
        if let (None, Some(at)) = (r.revoked_micros().get(), r.expires_at.get())
            && let Some(expiring) = self.expiring.get_mut(&*r.shared.prefix)
        {
            expiring.by_expiry.remove(&(at, r.id));
            // No token left to move: as if never swept (every live set is right for that).
            if expiring.by_expiry.is_empty() {
                self.expiring.remove(&*r.shared.prefix);
            }
        }
        if let Some(creator) = r.created_by()
            && let Some(children) = self.children.get_mut(&creator)
        {
            children.retain(|id| *id != r.id);
            if children.is_empty() {
                self.children.remove(&creator);
            }
        }
        let at = position(r);
        let Some(owners) = self.lists.get_mut(&*r.shared.prefix) else {
            return;
        };
        let Some(owner) = owners.get_mut(&*r.shared.owner) else {
            return;
        };
        owner.any_tenant.remove(&at);
        if let Some(t) = &r.shared.tenant
            && let Some(tenants) = owner.tenants.as_mut()
            && let Some(list) = tenants.get_mut(&**t)
        {
            list.remove(&at);
            if list.is_empty() {
                tenants.remove(&**t);
                if tenants.is_empty() {
                    owner.tenants = None;
                }
            }
        }
        if owner.any_tenant.is_empty() {
            owners.remove(&*r.shared.owner);
            if owners.is_empty() {
                self.lists.remove(&*r.shared.prefix);
            }
        }
    }

    /// Bring the live sets of an issuer's listings to `now`: the tokens that expired since
    /// they were last brought up to date leave them (or, if time went backwards, the ones
    /// that are not expired any more come back). `record` finds a token's current record
    /// (the table, which every change to an indexed field updates under the same lock).
    fn sweep<'r>(
        &mut self,
        prefix: &str,
        now: i64,
        record: impl Fn(&TokenId) -> Option<&'r CompactRecord>,
    ) {
        let Some(expiring) = self.expiring.get_mut(prefix) else {
            return;
        };
        let (lo, hi, live) = match expiring.swept_to {
            Some(t) if t == now => return,
            Some(t) if t > now => (expiring.up_to(now), expiring.up_to(t), true),
            from => (
                from.map_or(0, |t| expiring.up_to(t)),
                expiring.up_to(now),
                false,
            ),
        };
        let moved = ids(expiring.by_expiry.range(lo, hi));
        expiring.swept_to = Some(now);
        let Some(owners) = self.lists.get_mut(prefix) else {
            return;
        };
        for id in moved {
            let Some(r) = record(&id) else { continue };
            let Some(owner) = owners.get_mut(&*r.shared.owner) else {
                continue;
            };
            let at = position(r);
            owner.any_tenant.set_live(at, live);
            if let Some(t) = &r.shared.tenant
                && let Some(list) = owner.tenants.as_mut().and_then(|ts| ts.get_mut(&**t))
            {
                list.set_live(at, live);
            }
        }
    }

    fn list(&self, prefix: &str, owner: &str, tenant: Option<&str>) -> Option<&ListIndex> {
        let owner = self.lists.get(prefix)?.get(owner)?;
        match tenant {
            None => Some(&owner.any_tenant),
            Some(t) => owner.tenants.as_ref()?.get(t),
        }
    }

    /// The ids on one page of a listing at `now` (`page`: active only, offset, limit),
    /// newest first, and the total.
    pub(super) fn page<'r>(
        &mut self,
        key: (&str, &str, Option<&str>),
        now: OffsetDateTime,
        page: (bool, u64, u32),
        record: impl Fn(&TokenId) -> Option<&'r CompactRecord>,
    ) -> (Vec<TokenId>, u64) {
        let (active_only, offset, limit) = page;
        if active_only {
            self.sweep(key.0, micros(now), record);
        }
        match self.list(key.0, key.1, key.2) {
            Some(list) => list.page(active_only, offset, limit),
            None => (Vec::new(), 0),
        }
    }

    /// How many of an owner's tokens of an issuer are active at `now`.
    pub(super) fn active<'r>(
        &mut self,
        prefix: &str,
        owner: &str,
        now: OffsetDateTime,
        record: impl Fn(&TokenId) -> Option<&'r CompactRecord>,
    ) -> usize {
        self.sweep(prefix, micros(now), record);
        self.list(prefix, owner, None)
            .map_or(0, |list| list.live.len())
    }

    /// The ids of one page of an issuer's tokens not revoked that expire after `now` and no
    /// later than `until`, soonest first, and how many there are: O(page + log n).
    pub(super) fn expiring(
        &self,
        prefix: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
        offset: u64,
        limit: u32,
    ) -> (Vec<TokenId>, u64) {
        let Some(expiring) = self.expiring.get(prefix) else {
            return (Vec::new(), 0);
        };
        // Positions of the first token expiring after `now`, and after `until`.
        let lo = expiring.up_to(micros(now));
        let hi = expiring.up_to(micros(until));
        let total = hi.saturating_sub(lo);
        let start = lo
            .saturating_add(usize::try_from(offset).unwrap_or(usize::MAX))
            .min(hi);
        let end = start.saturating_add(limit as usize).min(hi);
        (ids(expiring.by_expiry.range(start, end)), total as u64)
    }

    /// The tokens `creator` created (revoked ones too).
    pub(super) fn children(&self, creator: &TokenId) -> Vec<TokenId> {
        self.children.get(creator).cloned().unwrap_or_default()
    }

    /// The ids of an owner's tokens of an issuer (of one tenant, if given) not yet revoked.
    pub(super) fn unrevoked<'r>(
        &self,
        key: (&str, &str, Option<&str>),
        record: impl Fn(&TokenId) -> Option<&'r CompactRecord>,
    ) -> Vec<TokenId> {
        self.list(key.0, key.1, key.2)
            .map_or_else(Vec::new, |list| {
                list.iter()
                    .map(|(_, id)| *id)
                    .filter(|id| record(id).is_some_and(|r| r.revoked_micros().get().is_none()))
                    .collect()
            })
    }
}

/// The copy of `value` in `set`, added if it is not there yet.
fn intern<T: Clone + Eq + Hash>(set: &mut HashSet<T>, value: &T) -> T {
    match set.get(value) {
        Some(found) => found.clone(),
        None => {
            set.insert(value.clone());
            value.clone()
        }
    }
}
