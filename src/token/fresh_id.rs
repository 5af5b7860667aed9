//! Fresh token ids: a random pad from a per-thread batch, read from the operating system's
//! CSPRNG 64 at a time, XORed with the first half of the token's secret hash.
//!
//! A new token's secret is read on its own, because Linux answers a read of up to 32 bytes
//! straight from a fresh ChaCha20 key and needs a further ChaCha20 block for anything
//! longer: an id and a secret read together, 48 bytes, took 488 ns against 361 ns for 32 on
//! an AMD EPYC VM (`issue/getrandom_48` and `issue/getrandom_32` in `benches/verify.rs`),
//! and that read was a third of issuing's time. The id's randomness comes from the batch
//! instead.
//!
//! Why the hash goes into the id: a process that forks leaves its child a copy of the
//! batch, and ids made of the pads alone would then repeat between the two (in stores,
//! rate-limit buckets and audit trails that key on the id). Each token's secret is read
//! fresh, so its hash differs, and so does `pad ⊕ hash`. The pad is uniformly random and
//! used once per process, so the id is uniformly random and tells nothing of the hash (a
//! one-time pad); two ids made from one pad in a parent and its child tell the XOR of two
//! hash prefixes, which helps nobody who cannot guess a 128-bit or longer secret. No
//! secret is ever held in the batch.

use std::cell::RefCell;

use super::TokenId;
use crate::hash::TokenHash;
use crate::limits::TOKEN_ID_BYTES;

/// How many pads one read fetches.
const BATCH: usize = 64;

struct Batch {
    bytes: [u8; BATCH * TOKEN_ID_BYTES],
    /// The index of the next unused pad; `BATCH` when none is left.
    next: usize,
}

thread_local! {
    static PADS: RefCell<Batch> = const {
        RefCell::new(Batch { bytes: [0; BATCH * TOKEN_ID_BYTES], next: BATCH })
    };
}

impl Batch {
    fn take(&mut self) -> Result<[u8; TOKEN_ID_BYTES], getrandom::Error> {
        if self.next == BATCH {
            // Marked full only once the read succeeded: a failed read hands out nothing.
            getrandom::fill(&mut self.bytes)?;
            self.next = 0;
        }
        let at = self.next * TOKEN_ID_BYTES;
        self.next += 1;
        let mut pad = [0; TOKEN_ID_BYTES];
        pad.copy_from_slice(&self.bytes[at..at + TOKEN_ID_BYTES]);
        Ok(pad)
    }
}

/// The id of a new token whose secret hashes to `hash`: the next pad of this thread's
/// batch (reading a new batch when it is used up) XOR the hash's first 16 bytes.
pub(crate) fn for_hash(hash: &TokenHash) -> Result<TokenId, getrandom::Error> {
    let pad = PADS.with_borrow_mut(Batch::take)?;
    Ok(combine(pad, hash))
}

fn combine(mut pad: [u8; TOKEN_ID_BYTES], hash: &TokenHash) -> TokenId {
    for (p, h) in pad.iter_mut().zip(hash.as_bytes()) {
        *p ^= h;
    }
    TokenId::from_bytes(pad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_distinct_across_batches_and_threads_even_for_one_hash() {
        // The same hash every time: the pads alone keep the ids apart.
        let hash = TokenHash::of_secret(b"one secret");
        let mine: Vec<TokenId> = (0..3 * BATCH + 5)
            .map(|_| for_hash(&hash).unwrap())
            .collect();
        let theirs: Vec<TokenId> =
            std::thread::spawn(move || (0..BATCH).map(|_| for_hash(&hash).unwrap()).collect())
                .join()
                .unwrap();
        let all: HashSet<TokenId> = mine.iter().chain(&theirs).copied().collect();
        assert_eq!(all.len(), mine.len() + theirs.len());
    }

    #[test]
    fn a_pad_shared_with_a_forked_process_still_makes_distinct_ids() {
        // What a parent and its child do with the same copied pad: their secrets, read
        // fresh, differ, and so do their ids.
        let mut parent = Batch {
            bytes: [0; BATCH * TOKEN_ID_BYTES],
            next: BATCH,
        };
        let pad = parent.take().unwrap();
        let mut child = Batch {
            bytes: parent.bytes,
            next: parent.next - 1,
        };
        assert_eq!(
            child.take().unwrap(),
            pad,
            "the child holds the parent's pad"
        );
        let (a, b) = (
            TokenHash::of_secret(b"parent's"),
            TokenHash::of_secret(b"child's"),
        );
        assert_ne!(combine(pad, &a), combine(pad, &b));
        // Neither the pad nor the hash shows in the id.
        let id = combine(pad, &a);
        assert_ne!(id.as_bytes(), &pad);
        assert_ne!(id.as_bytes()[..], a.as_bytes()[..TOKEN_ID_BYTES]);
        assert_eq!(combine(*id.as_bytes(), &a).as_bytes(), &pad, "an XOR");
    }
}
