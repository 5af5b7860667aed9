//! What the memory store keeps per token: the record and its rate count, in one table
//! entry, and how a record is replaced without losing a count.

use std::hash::BuildHasherDefault;

use papaya::{Compute, Guard, HashMapRef, Operation};

use super::IdHasher;
use crate::record::{Backoff, CompactRecord, MovedCount, RateCell, RateLimit};
use crate::token::TokenId;

/// A record (compact: 144 bytes) and the count of its rate limit. The count comes first,
/// on the cache line of the entry's key and the record's hash, which verification reads
/// anyway.
#[repr(C)]
pub(super) struct Stored {
    pub(super) rate: RateCell,
    pub(super) record: CompactRecord,
}

/// The table, pinned.
pub(super) type Pinned<'m, G> = HashMapRef<'m, TokenId, Stored, BuildHasherDefault<IdHasher>, G>;

/// The current record of an id in the pinned table (what the indexes look up).
pub(super) fn finder<'g, G: Guard>(
    records: &'g Pinned<'_, G>,
) -> impl Fn(&TokenId) -> Option<&'g CompactRecord> + 'g {
    move |id| records.get(id).map(|s| &s.record)
}

/// How far a rotated token's count is followed down its successors: further than any
/// rotation makes it (each successor is a new token, so a chain has no loop), but not for
/// ever through hand-made records that name each other.
const MAX_HOPS: usize = 1_024;

/// The cell a check of `stored` counts on: a token with a rate limit counts on its own, a
/// rotated one on its latest successor's (which inherited the count). A chain that ends in
/// a record no longer there (the store keeps those a live limited token's chain runs
/// through, see `purge`) or runs on too long ends on the last record reached. None if the
/// token has no limit.
pub(super) fn cell_of<'g, G: Guard>(
    records: &'g Pinned<'_, G>,
    stored: &'g Stored,
) -> Option<&'g RateCell> {
    stored.record.rate_limit?;
    let mut at = stored;
    for _ in 0..MAX_HOPS {
        match at.record.successor().and_then(|next| records.get(&next)) {
            None => break,
            Some(next) => at = next,
        }
    }
    Some(&at.rate)
}

/// The rate a record's count is kept for (not which bucket: the cell says that).
pub(super) fn rate_of(limit: Option<RateLimit>) -> Option<(u32, u32)> {
    limit.map(|l| (l.limit(), l.per_seconds()))
}

/// A frozen cell that is thawed with a fresh count if dropped before
/// [`disarm`](Self::disarm) (a rotation that panicked halfway).
pub(super) struct ThawOnDrop<'g>(pub(super) Option<&'g RateCell>);

impl<'g> ThawOnDrop<'g> {
    /// The cell, no longer thawed on drop.
    pub(super) fn disarm(mut self) -> Option<&'g RateCell> {
        self.0.take()
    }
}

impl Drop for ThawOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(cell) = self.0 {
            cell.thaw(MovedCount::FRESH);
        }
    }
}

/// What [`replace`] did.
pub(super) enum Replaced<'g, T> {
    /// Written: the version replaced, the new one, and the count the old one held.
    Updated {
        old: &'g CompactRecord,
        new: &'g CompactRecord,
        moved: MovedCount,
    },
    /// `change` declined, with what it said.
    Declined(T),
    /// No record with that id.
    Missing,
}

/// Where the new version's count comes from.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Count {
    /// The old version's (unless the rate limit changed: a new limit starts afresh).
    Kept,
    /// None: the count moves elsewhere (a rotated token's successor).
    Handed,
}

/// Replace the record `id` by what `change` makes of its latest version, in one
/// compare-and-swap, moving its rate count to the new version: the old version's cell is
/// frozen just before the swap, so a check racing it either counted before the freeze (and
/// is moved) or finds the cell frozen and reads the record again. A replacement that finds
/// the cell frozen by another waits until that one's version is published (the freeze is
/// the last thing before its swap, and no other write replaces a frozen entry: a purge may
/// only remove it, and this one then finds the record missing), then decides again on it.
pub(super) fn replace<'g, T, G: Guard>(
    records: &'g Pinned<'_, G>,
    id: &TokenId,
    count: Count,
    mut change: impl FnMut(&CompactRecord) -> Result<CompactRecord, T>,
) -> Replaced<'g, T> {
    // The entry this replacement froze and what it took, in case `compute` asks again about
    // the same entry (papaya keeps a closure's answer for an entry it retries on, so this is
    // a guard, not a path it takes), so that the count is never taken twice. Entries are
    // not freed while the table is pinned, so an address names one entry.
    let mut frozen: Option<(*const Stored, MovedCount)> = None;
    let mut waited = Backoff::default();
    loop {
        let outcome = records.compute(*id, |current| {
            let Some((_, current)) = current else {
                return Operation::Abort(Outcome::Missing);
            };
            let next = match change(&current.record) {
                Ok(next) => next,
                Err(said) => {
                    // Asked again about an entry this replacement froze, and deciding
                    // otherwise: its count goes back, or it would stay frozen.
                    if let Some((at, moved)) = frozen.take()
                        && std::ptr::eq(at, current)
                    {
                        current.rate.thaw(moved);
                    }
                    return Operation::Abort(Outcome::Declined(said));
                }
            };
            let moved = match frozen {
                Some((at, moved)) if std::ptr::eq(at, current) => moved,
                _ => match current.rate.freeze() {
                    Some(moved) => {
                        frozen = Some((current, moved));
                        moved
                    }
                    None => return Operation::Abort(Outcome::Busy),
                },
            };
            let kept = if count == Count::Kept
                && rate_of(current.record.rate_limit) == rate_of(next.rate_limit)
            {
                moved
            } else {
                MovedCount::FRESH
            };
            Operation::Insert(Stored {
                rate: RateCell::with(kept),
                record: next,
            })
        });
        match outcome {
            Compute::Updated {
                old: (_, old),
                new: (_, new),
            } => {
                let moved = frozen.map_or(MovedCount::FRESH, |(_, moved)| moved);
                return Replaced::Updated {
                    old: &old.record,
                    new: &new.record,
                    moved,
                };
            }
            Compute::Aborted(Outcome::Busy) => waited.wait(),
            Compute::Aborted(Outcome::Declined(said)) => return Replaced::Declined(said),
            // `compute` only inserts over an existing entry and never removes.
            Compute::Aborted(Outcome::Missing) | Compute::Inserted(..) | Compute::Removed(..) => {
                return Replaced::Missing;
            }
        }
    }
}

enum Outcome<T> {
    Missing,
    Declined(T),
    /// Another replacement froze the entry and is about to publish its version.
    Busy,
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use time::OffsetDateTime;

    use crate::hash::TokenHash;
    use crate::record::{RateCell, RateLimit, Scopes, TokenRecord};
    use crate::store::Change;
    use crate::{MemoryStore, TokenId, TokenStore};

    fn at(seconds: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_767_225_600 + seconds).unwrap()
    }

    fn limited(n: u8, limit: u32) -> TokenRecord {
        TokenRecord {
            id: TokenId::from_bytes([n; 16]),
            owner: "u1".into(),
            tenant: None,
            name: "cell".into(),
            description: None,
            scopes: Scopes::default(),
            hash: TokenHash::of_secret(&[n; 32]),
            prefix: "dz".into(),
            created_at: at(0),
            expires_at: None,
            last_used_at: None,
            revoked_at: None,
            revocation_reason: None,
            successor: None,
            created_by: None,
            suspended_at: None,
            metadata: None,
            allowed_ips: None,
            usage: None,
            rate_limit: Some(RateLimit::new(limit, 60).unwrap()),
        }
    }

    /// Count one on the cell `id` counts on, reading again while it is frozen; whether it
    /// had a cell.
    fn bump(store: &MemoryStore, id: &TokenId) -> bool {
        let mut moved = crate::record::Backoff::default();
        loop {
            let counted = store
                .read_counted_now(id, |_, cell: Option<&RateCell>| {
                    cell.map(|c| c.update(|n| Ok::<_, ()>((n + 1, ()))))
                })
                .unwrap()
                .unwrap();
            match counted {
                None => return false,
                Some(Ok(_)) => return true,
                Some(Err(_)) => moved.wait(),
            }
        }
    }

    fn count(store: &MemoryStore, id: &TokenId) -> Option<u64> {
        store
            .read_counted_now(id, |_, cell| {
                cell.map(|c| {
                    c.update(Err::<(u64, ()), _>)
                        .expect("not frozen")
                        .unwrap_err()
                })
            })
            .unwrap()
            .unwrap()
    }

    /// Rotate `old` to `next` as the service would (naming the successor); whether it was.
    fn rotate(store: &MemoryStore, old: &TokenRecord, next: &TokenRecord) -> bool {
        let mut retire = |r: &mut TokenRecord| {
            r.successor = Some(next.id);
            true
        };
        ready(store.rotate(&old.id, &mut Change::new(&mut retire), next)).unwrap()
    }

    fn ready<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn a_refused_duplicate_leaves_nothing_interned() {
        let store = MemoryStore::new();
        let first = limited(1, 10);
        ready(store.insert(&first)).unwrap();
        let before = store.writes().interned();
        // The same id, with an owner, tenant and scopes no stored record has.
        let mut second = limited(1, 10);
        second.owner = "mallory".into();
        second.tenant = Some("elsewhere".into());
        second.scopes = Scopes::parse(["x:y"]).unwrap();
        assert!(ready(store.insert(&second)).is_err());
        assert_eq!(
            store.writes().interned(),
            before,
            "the refused record's fields"
        );
        // A duplicate whose fields a stored record shares keeps them.
        assert!(ready(store.insert(&limited(1, 10))).is_err());
        assert_eq!(store.writes().interned(), before);
        assert_eq!(
            ready(store.get(&first.id)).unwrap().unwrap().owner,
            first.owner
        );
    }

    #[test]
    fn a_token_without_a_limit_has_no_cell() {
        let store = MemoryStore::new();
        let mut r = limited(1, 5);
        r.rate_limit = None;
        ready(store.insert(&r)).unwrap();
        assert!(!bump(&store, &r.id));
        assert_eq!(count(&store, &TokenId::from_bytes([9; 16])), None);
    }

    #[test]
    fn every_replacement_keeps_the_count() {
        let store = MemoryStore::new();
        let r = limited(1, 5);
        ready(store.insert(&r)).unwrap();
        for _ in 0..3 {
            assert!(bump(&store, &r.id));
        }
        assert!(ready(store.record_last_use(&r.id, at(1))).unwrap());
        assert_eq!(count(&store, &r.id), Some(3));
        let mut rename = |r: &mut TokenRecord| {
            r.name = "renamed".into();
            true
        };
        assert!(ready(store.update(&r.id, &mut Change::new(&mut rename))).unwrap());
        assert_eq!(count(&store, &r.id), Some(3));
        // A declined change writes nothing and leaves the cell counting.
        let mut decline = |_: &mut TokenRecord| false;
        ready(store.update(&r.id, &mut Change::new(&mut decline))).unwrap();
        assert!(bump(&store, &r.id));
        assert_eq!(count(&store, &r.id), Some(4));
    }

    #[test]
    fn a_changed_limit_starts_afresh() {
        let store = MemoryStore::new();
        let r = limited(1, 5);
        ready(store.insert(&r)).unwrap();
        assert!(bump(&store, &r.id));
        let mut narrow = |r: &mut TokenRecord| {
            r.rate_limit = Some(RateLimit::new(2, 60).unwrap());
            true
        };
        assert!(ready(store.update(&r.id, &mut Change::new(&mut narrow))).unwrap());
        assert_eq!(count(&store, &r.id), Some(0));
    }

    #[test]
    fn a_rotated_token_counts_on_its_successor_which_inherits_its_count() {
        let store = MemoryStore::new();
        let (old, next) = (limited(1, 5), limited(2, 5));
        ready(store.insert(&old)).unwrap();
        assert!(bump(&store, &old.id) && bump(&store, &old.id));
        assert!(rotate(&store, &old, &next));
        assert_eq!(count(&store, &next.id), Some(2));
        assert!(
            bump(&store, &old.id),
            "the old token counts on its successor's cell"
        );
        assert!(bump(&store, &next.id));
        assert_eq!(count(&store, &old.id), Some(4));
        assert_eq!(count(&store, &next.id), Some(4));
    }

    #[test]
    fn a_successor_with_another_limit_starts_afresh() {
        let store = MemoryStore::new();
        let (old, next) = (limited(1, 5), limited(2, 9));
        ready(store.insert(&old)).unwrap();
        assert!(bump(&store, &old.id));
        assert!(rotate(&store, &old, &next));
        assert_eq!(count(&store, &next.id), Some(0));
    }

    #[test]
    fn a_declined_rotation_leaves_no_successor_and_the_count_where_it_was() {
        let store = MemoryStore::new();
        let (old, next) = (limited(1, 5), limited(2, 5));
        ready(store.insert(&old)).unwrap();
        assert!(bump(&store, &old.id));
        let mut decline = |_: &mut TokenRecord| false;
        assert!(ready(store.rotate(&old.id, &mut Change::new(&mut decline), &next)).unwrap());
        assert!(ready(store.get(&next.id)).unwrap().is_none());
        assert!(bump(&store, &old.id), "not left frozen");
        assert_eq!(count(&store, &old.id), Some(2));
        // Nor when the record is missing.
        let mut retire = |_: &mut TokenRecord| true;
        let missing = TokenId::from_bytes([3; 16]);
        assert!(!ready(store.rotate(&missing, &mut Change::new(&mut retire), &next)).unwrap());
        assert!(ready(store.get(&next.id)).unwrap().is_none());
    }

    /// Threads counting on a token's cell while others replace its record (last uses and
    /// renames, each a copy with a frozen old cell): no count is lost or made twice.
    #[test]
    fn counts_racing_replacements_are_never_lost() {
        let store = Arc::new(MemoryStore::new());
        let r = limited(1, 5);
        ready(store.insert(&r)).unwrap();
        let counted = Arc::new(AtomicU64::new(0));
        let counters: Vec<_> = (0..3)
            .map(|_| {
                let (store, counted) = (Arc::clone(&store), Arc::clone(&counted));
                std::thread::spawn(move || {
                    for _ in 0..5_000 {
                        if bump(&store, &r.id) {
                            counted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        let writers: Vec<_> = (0..2)
            .map(|w| {
                let store = Arc::clone(&store);
                std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .build()
                        .unwrap();
                    for i in 0..2_000 {
                        if w == 0 {
                            rt.block_on(store.record_last_use(&r.id, at(i))).unwrap();
                        } else {
                            let mut rename = |r: &mut TokenRecord| {
                                r.name = format!("name {i}").into();
                                true
                            };
                            rt.block_on(store.update(&r.id, &mut Change::new(&mut rename)))
                                .unwrap();
                        }
                    }
                })
            })
            .collect();
        for t in counters.into_iter().chain(writers) {
            t.join().unwrap();
        }
        assert_eq!(counted.load(Ordering::Relaxed), 15_000);
        assert_eq!(count(&store, &r.id), Some(15_000));
    }
}
