//! A sorted set that counts by rank, sized for the memory store's listings: most owners
//! hold a few tokens, a few hold very many, and one issuer's expiry set holds them all.
//!
//! `indexset`'s B-tree gives rank, select and insertion in O(log n), but every set of it,
//! even an empty one, allocates a whole node (1 024 slots: 24 KiB for a listing position),
//! which would cost an owner of one token about 50 KiB in the two sets of a listing. So a
//! set stays a sorted vector (one slot, then 4, 8, 16, ...) until it holds [`SMALL`]
//! entries, where a node would be half used, and goes back to one below [`SMALL`] / 4.

use crate::token::TokenId;

/// Where a token stands in a listing or in expiry order: a time (microseconds), then id.
pub(super) type Position = (i64, TokenId);

/// How many entries a set holds as a sorted vector; more go into a B-tree.
const SMALL: usize = 512;

/// A sorted set of positions with rank and select.
pub(super) enum Positions {
    /// Sorted, ascending, no duplicates.
    Small(Vec<Position>),
    /// Boxed: the set is 64 bytes, and most sets are small.
    Large(Box<indexset::BTreeSet<Position>>),
}

impl Default for Positions {
    fn default() -> Self {
        Self::Small(Vec::new())
    }
}

impl Positions {
    /// Add `at`; whether it was not there yet.
    pub(super) fn insert(&mut self, at: Position) -> bool {
        match self {
            Self::Small(v) if v.len() == SMALL => {
                // Into a tree before the vector would grow to twice the room.
                let mut set: indexset::BTreeSet<Position> = std::mem::take(v).into_iter().collect();
                let inserted = set.insert(at);
                *self = Self::Large(Box::new(set));
                inserted
            }
            Self::Small(v) => {
                // The common case, a token newer than every other (its creation, or its
                // expiry under one lifetime), goes at the end without a search through a
                // vector that has likely left the cache since its owner's last token.
                let i = match v.last() {
                    Some(last) if *last >= at => match v.binary_search(&at) {
                        Ok(_) => return false,
                        Err(i) => i,
                    },
                    _ => v.len(),
                };
                if v.capacity() == 0 {
                    // An owner of one token keeps one slot (then 4, 8, 16, ...).
                    v.reserve_exact(1);
                }
                v.insert(i, at);
                true
            }
            Self::Large(set) => set.insert(at),
        }
    }

    /// Remove `at`; whether it was there.
    pub(super) fn remove(&mut self, at: &Position) -> bool {
        match self {
            Self::Small(v) => match v.binary_search(at) {
                Ok(i) => {
                    v.remove(i);
                    if v.len() < v.capacity() / 4 {
                        v.shrink_to(v.len() * 2);
                    }
                    true
                }
                Err(_) => false,
            },
            Self::Large(set) => {
                let removed = set.remove(at);
                if set.len() < SMALL / 4 {
                    *self = Self::Small(set.iter().copied().collect());
                }
                removed
            }
        }
    }

    /// How many entries it holds.
    pub(super) fn len(&self) -> usize {
        match self {
            Self::Small(v) => v.len(),
            Self::Large(set) => set.len(),
        }
    }

    /// Whether it holds nothing.
    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many entries come before `at`.
    pub(super) fn rank(&self, at: &Position) -> usize {
        match self {
            Self::Small(v) => v.partition_point(|p| p < at),
            Self::Large(set) => set.rank(at),
        }
    }

    /// The entry with `i` entries before it.
    pub(super) fn get(&self, i: usize) -> Option<&Position> {
        match self {
            Self::Small(v) => v.get(i),
            Self::Large(set) => set.get_index(i),
        }
    }

    /// The entries from the `lo`-th up to (not including) the `hi`-th, ascending (clamped
    /// to the set).
    pub(super) fn range(&self, lo: usize, hi: usize) -> Vec<Position> {
        let hi = hi.min(self.len());
        let lo = lo.min(hi);
        match self {
            Self::Small(v) => v[lo..hi].to_vec(),
            Self::Large(set) => set.range_idx(lo..hi).copied().collect(),
        }
    }

    /// Every entry, ascending.
    pub(super) fn iter(&self) -> impl Iterator<Item = &Position> {
        let (small, large) = match self {
            Self::Small(v) => (Some(v.iter()), None),
            Self::Large(set) => (None, Some(set.iter())),
        };
        small
            .into_iter()
            .flatten()
            .chain(large.into_iter().flatten())
    }
}

/// The `lo`-th up to (not including) the `hi`-th entry, ascending, of the union of two
/// disjoint sets, in O(log² n + (hi − lo)).
pub(super) fn union_range(a: &Positions, b: &Positions, lo: usize, hi: usize) -> Vec<Position> {
    let hi = hi.min(a.len() + b.len());
    let lo = lo.min(hi);
    let (from_a, from_b) = split(a, b, lo);
    let want = hi - lo;
    let (xs, ys) = (
        a.range(from_a, from_a + want),
        b.range(from_b, from_b + want),
    );
    let (mut xs, mut ys) = (xs.into_iter().peekable(), ys.into_iter().peekable());
    let mut out = Vec::with_capacity(want);
    while out.len() < want {
        let next = match (xs.peek(), ys.peek()) {
            (Some(x), Some(y)) if x < y => xs.next(),
            (Some(_), Some(_)) | (None, Some(_)) => ys.next(),
            (Some(_), None) => xs.next(),
            (None, None) => None,
        };
        match next {
            Some(p) => out.push(p),
            None => break,
        }
    }
    out
}

/// How many of the `k` smallest entries of the union of `a` and `b` (disjoint) come from
/// each: the least `i` such that `a`'s `i`-th entry is above `b`'s `(k − i − 1)`-th.
fn split(a: &Positions, b: &Positions, k: usize) -> (usize, usize) {
    let (mut lo, mut hi) = (k.saturating_sub(b.len()), k.min(a.len()));
    while lo < hi {
        let i = lo + (hi - lo) / 2;
        // Fewer than `k` from `a` (`i < hi <= k`) and at most all of `a` (`i < a.len()`).
        let a_next = a.get(i);
        let b_last = b.get(k - i - 1);
        if matches!((a_next, b_last), (Some(x), Some(y)) if x < y) {
            lo = i + 1;
        } else {
            hi = i;
        }
    }
    (lo, k - lo)
}

/// The ids of `positions`, in order.
pub(super) fn ids(positions: impl IntoIterator<Item = Position>) -> Vec<TokenId> {
    positions.into_iter().map(|(_, id)| id).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn at(t: i64) -> Position {
        (t, TokenId::from_bytes([(t % 251) as u8; 16]))
    }

    #[test]
    fn a_small_set_takes_little_room() {
        let mut set = Positions::default();
        assert!(matches!(&set, Positions::Small(v) if v.capacity() == 0));
        set.insert(at(1));
        assert!(matches!(&set, Positions::Small(v) if v.capacity() == 1));
        assert_eq!(std::mem::size_of::<Positions>(), 24);
    }

    #[test]
    fn a_set_grows_into_a_tree_and_shrinks_back() {
        let mut set = Positions::default();
        for t in 0..2_000 {
            assert!(set.insert(at(t)));
        }
        assert!(matches!(set, Positions::Large(_)));
        assert!(!set.insert(at(7)), "no duplicates");
        for t in 0..1_990 {
            assert!(set.remove(&at(t)));
        }
        assert!(matches!(&set, Positions::Small(v) if v.capacity() < 64));
        assert_eq!(
            set.range(0, 100),
            (1_990..2_000).map(at).collect::<Vec<_>>()
        );
    }

    proptest! {
        /// Against a `BTreeSet`: membership, rank, select, ranges, and ranges of the union
        /// with a second set, through growth into a tree and back.
        #[test]
        fn it_agrees_with_a_sorted_set(
            ops in prop::collection::vec((0i64..3_000, any::<bool>(), any::<bool>()), 1..2_500),
            lo in 0usize..3_000,
            len in 0usize..200,
        ) {
            let (mut a, mut b) = (Positions::default(), Positions::default());
            let (mut model_a, mut model_b) = (BTreeSet::new(), BTreeSet::new());
            for (t, into_a, insert) in ops {
                let p = at(t);
                // Disjoint, as a listing's live and ended sets are.
                if insert && !model_a.contains(&p) && !model_b.contains(&p) {
                    if into_a {
                        prop_assert!(a.insert(p));
                        model_a.insert(p);
                    } else {
                        prop_assert!(b.insert(p));
                        model_b.insert(p);
                    }
                } else if !insert {
                    prop_assert_eq!(a.remove(&p), model_a.remove(&p));
                    prop_assert_eq!(b.remove(&p), model_b.remove(&p));
                }
            }
            prop_assert_eq!(a.len(), model_a.len());
            let sorted: Vec<Position> = model_a.iter().copied().collect();
            prop_assert_eq!(a.iter().copied().collect::<Vec<_>>(), sorted.clone());
            prop_assert_eq!(a.rank(&at(lo as i64)), model_a.range(..at(lo as i64)).count());
            prop_assert_eq!(a.get(lo), sorted.get(lo));
            let hi = (lo + len).min(sorted.len());
            prop_assert_eq!(a.range(lo, lo + len), sorted[lo.min(hi)..hi].to_vec());
            let union: Vec<Position> = model_a.union(&model_b).copied().collect();
            let hi = (lo + len).min(union.len());
            prop_assert_eq!(union_range(&a, &b, lo, lo + len), union[lo.min(hi)..hi].to_vec());
        }
    }
}
