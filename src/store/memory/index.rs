//! The memory store's listing indexes: for each issuer, owner and tenant, the tokens in
//! creation order, so that a page costs O(page + log n) and a total O(1), however many
//! tokens an owner has.

use std::collections::BTreeSet;

use foldhash::{HashMap, HashSet};
use std::hash::Hash;
use std::sync::Arc;

use time::OffsetDateTime;

use crate::record::{CompactRecord, Scopes, TokenRecord, unix_micros as micros};
use crate::token::TokenId;

/// Where a token stands in a listing: creation time (microseconds), then id, ascending.
type Position = (i64, TokenId);

/// What the indexes need to know of a record.
struct Facts {
    position: Position,
    revoked: bool,
    expires: Option<i64>,
}

impl Facts {
    fn of(r: &CompactRecord) -> Self {
        Self {
            position: (r.created_at.get().unwrap_or(i64::MIN), r.id),
            revoked: r.revoked_at.get().is_some(),
            expires: r.expires_at.get(),
        }
    }
}

/// The tokens of one issuer, owner and (optionally) tenant.
///
/// `live` holds the tokens neither revoked nor expired as of `swept_to`; `expired` the ones
/// not revoked but expired by then. Listing at `now` first moves tokens between the two so
/// that `swept_to == now` (each token moves once as time goes forward, so this costs
/// O(log n) per token over its life, and time may also go backwards).
#[derive(Default)]
struct ListIndex {
    all: indexset::BTreeSet<Position>,
    live: indexset::BTreeSet<Position>,
    expiring: BTreeSet<(i64, Position)>,
    expired: BTreeSet<(i64, Position)>,
    swept_to: Option<i64>,
}

impl ListIndex {
    fn add(&mut self, f: &Facts) {
        self.all.insert(f.position);
        if f.revoked {
            return;
        }
        match f.expires {
            Some(e) if self.swept_to.is_some_and(|t| e <= t) => {
                self.expired.insert((e, f.position));
            }
            Some(e) => {
                self.expiring.insert((e, f.position));
                self.live.insert(f.position);
            }
            None => {
                self.live.insert(f.position);
            }
        }
    }

    fn remove(&mut self, f: &Facts) {
        self.all.remove(&f.position);
        self.live.remove(&f.position);
        if let Some(e) = f.expires {
            self.expiring.remove(&(e, f.position));
            self.expired.remove(&(e, f.position));
        }
    }

    fn sweep(&mut self, now: i64) {
        while let Some(&(e, p)) = self.expiring.first().filter(|(e, _)| *e <= now) {
            self.expiring.pop_first();
            self.live.remove(&p);
            self.expired.insert((e, p));
        }
        while let Some(&(e, p)) = self.expired.last().filter(|(e, _)| *e > now) {
            self.expired.pop_last();
            self.live.insert(p);
            self.expiring.insert((e, p));
        }
        self.swept_to = Some(now);
    }

    /// The ids on one page, newest first, and the total.
    fn page(&self, active_only: bool, offset: u64, limit: u32) -> (Vec<TokenId>, u64) {
        let set = if active_only { &self.live } else { &self.all };
        let len = set.len();
        let offset = usize::try_from(offset).unwrap_or(usize::MAX);
        let hi = len.saturating_sub(offset);
        let lo = hi.saturating_sub(limit as usize);
        let mut ids: Vec<TokenId> = set.range_idx(lo..hi).map(|(_, id)| *id).collect();
        ids.reverse();
        (ids, len as u64)
    }

    /// The tokens not yet revoked.
    fn unrevoked(&self) -> Vec<TokenId> {
        let expired = self.expired.iter().map(|(_, p)| p);
        self.live.iter().chain(expired).map(|(_, id)| *id).collect()
    }

    fn is_empty(&self) -> bool {
        self.all.is_empty()
    }
}

/// An owner's tokens of one issuer: all of them, and each tenant's.
#[derive(Default)]
struct OwnerLists {
    any_tenant: ListIndex,
    tenants: HashMap<Arc<str>, ListIndex>,
}

/// Every listing index, and the one shared copy of each owner, tenant, prefix and scope set.
#[derive(Default)]
pub(super) struct Index {
    lists: HashMap<Arc<str>, HashMap<Arc<str>, OwnerLists>>,
    /// The tokens each token created (`created_by`), for revoking descendants.
    children: HashMap<TokenId, Vec<TokenId>>,
    /// For each issuer, its tokens not revoked that expire, by expiry: for expiry notices.
    expiring: HashMap<Arc<str>, indexset::BTreeSet<Position>>,
    strings: HashSet<Arc<str>>,
    scope_sets: HashSet<Scopes>,
}

impl Index {
    /// `record` with its owner, tenant, prefix and scopes replaced by the shared copies.
    pub(super) fn intern(&mut self, mut record: TokenRecord) -> TokenRecord {
        record.owner = intern(&mut self.strings, &record.owner);
        record.tenant = record.tenant.map(|t| intern(&mut self.strings, &t));
        record.prefix = intern(&mut self.strings, &record.prefix);
        record.scopes = intern(&mut self.scope_sets, &record.scopes);
        record
    }

    /// Forget shared values that no record uses any more.
    pub(super) fn forget_unused(&mut self) {
        self.strings.retain(|s| Arc::strong_count(s) > 1);
        self.scope_sets.retain(|s| s.ref_count() > 1);
    }

    pub(super) fn add(&mut self, r: &CompactRecord) {
        if let (None, Some(at)) = (r.revoked_at.get(), r.expires_at.get()) {
            self.expiring
                .entry(Arc::clone(&r.prefix))
                .or_default()
                .insert((at, r.id));
        }
        if let Some(creator) = r.created_by() {
            let children = self.children.entry(creator).or_default();
            if !children.contains(&r.id) {
                children.push(r.id);
            }
        }
        let facts = Facts::of(r);
        let owner = self
            .lists
            .entry(Arc::clone(&r.prefix))
            .or_default()
            .entry(Arc::clone(&r.owner))
            .or_default();
        owner.any_tenant.add(&facts);
        if let Some(t) = &r.tenant {
            owner.tenants.entry(Arc::clone(t)).or_default().add(&facts);
        }
    }

    pub(super) fn remove(&mut self, r: &CompactRecord) {
        if let (None, Some(at)) = (r.revoked_at.get(), r.expires_at.get())
            && let Some(set) = self.expiring.get_mut(&*r.prefix)
        {
            set.remove(&(at, r.id));
            if set.is_empty() {
                self.expiring.remove(&*r.prefix);
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
        let facts = Facts::of(r);
        let Some(owners) = self.lists.get_mut(&*r.prefix) else {
            return;
        };
        let Some(owner) = owners.get_mut(&*r.owner) else {
            return;
        };
        owner.any_tenant.remove(&facts);
        if let Some(t) = &r.tenant
            && let Some(list) = owner.tenants.get_mut(&**t)
        {
            list.remove(&facts);
            if list.is_empty() {
                owner.tenants.remove(&**t);
            }
        }
        if owner.any_tenant.is_empty() {
            owners.remove(&*r.owner);
            if owners.is_empty() {
                self.lists.remove(&*r.prefix);
            }
        }
    }

    fn list_mut(
        &mut self,
        prefix: &str,
        owner: &str,
        tenant: Option<&str>,
    ) -> Option<&mut ListIndex> {
        let owner = self.lists.get_mut(prefix)?.get_mut(owner)?;
        match tenant {
            None => Some(&mut owner.any_tenant),
            Some(t) => owner.tenants.get_mut(t),
        }
    }

    /// The ids on one page of a listing at `now`, newest first, and the total.
    pub(super) fn page(
        &mut self,
        key: (&str, &str, Option<&str>),
        now: OffsetDateTime,
        active_only: bool,
        offset: u64,
        limit: u32,
    ) -> (Vec<TokenId>, u64) {
        match self.list_mut(key.0, key.1, key.2) {
            Some(list) => {
                list.sweep(micros(now));
                list.page(active_only, offset, limit)
            }
            None => (Vec::new(), 0),
        }
    }

    /// How many of an owner's tokens of an issuer are active at `now`.
    pub(super) fn active(&mut self, prefix: &str, owner: &str, now: OffsetDateTime) -> usize {
        self.list_mut(prefix, owner, None).map_or(0, |list| {
            list.sweep(micros(now));
            list.live.len()
        })
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
        let Some(set) = self.expiring.get(prefix) else {
            return (Vec::new(), 0);
        };
        let first = TokenId::from_bytes([0; 16]);
        // Positions of the first token expiring after `now`, and after `until`.
        let lo = set.rank(&(micros(now).saturating_add(1), first));
        let hi = set.rank(&(micros(until).saturating_add(1), first));
        let total = hi.saturating_sub(lo);
        let start = lo
            .saturating_add(usize::try_from(offset).unwrap_or(usize::MAX))
            .min(hi);
        let end = start.saturating_add(limit as usize).min(hi);
        let ids = set.range_idx(start..end).map(|(_, id)| *id).collect();
        (ids, total as u64)
    }

    /// The tokens `creator` created (revoked ones too).
    pub(super) fn children(&self, creator: &TokenId) -> Vec<TokenId> {
        self.children.get(creator).cloned().unwrap_or_default()
    }

    /// The ids of an owner's tokens of an issuer (of one tenant, if given) not yet revoked.
    pub(super) fn unrevoked(
        &mut self,
        prefix: &str,
        owner: &str,
        tenant: Option<&str>,
    ) -> Vec<TokenId> {
        self.list_mut(prefix, owner, tenant)
            .map_or_else(Vec::new, |list| list.unrevoked())
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
