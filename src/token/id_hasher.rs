//! The hasher of the crate's in-memory tables keyed by token id (the memory store's records,
//! the in-process rate limiter's counts).

use std::hash::Hasher;

/// Token ids are uniformly random and chosen by the issuer, so a multiply-fold of their bytes
/// spreads them as well as SipHash at a fraction of the cost. Ids presented by clients only
/// look records up; they never choose where a record is stored. (The rate limiter's owner
/// keys are keyed hashes already.)
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl IdHasher {
    fn mix(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
    }

    // The length before an id's bytes, and an enum's variant: one word, as `write` would
    // mix it, without the loop.
    fn write_usize(&mut self, n: usize) {
        self.mix(n as u64);
    }

    fn write_isize(&mut self, n: isize) {
        self.mix(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}
