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
    #[inline]
    fn mix(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for IdHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        // Whole words, then the rest padded with zeros: for an id's 16 bytes, inlined,
        // two words and no loop.
        let (words, rest) = bytes.as_chunks::<8>();
        for word in words {
            self.mix(u64::from_le_bytes(*word));
        }
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.mix(u64::from_le_bytes(word));
        }
    }

    // The length before an id's bytes, and an enum's variant: one word, as `write` would
    // mix it, without the loop.
    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.mix(n as u64);
    }

    fn write_isize(&mut self, n: isize) {
        self.mix(n as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_hashes_as_its_two_words_would_in_the_loop() {
        let bytes: [u8; 16] = std::array::from_fn(|i| (i as u8).wrapping_mul(37));
        let mut fast = IdHasher::default();
        fast.write(&bytes);
        let mut looped = IdHasher::default();
        looped.write(&bytes[..8]);
        looped.write(&bytes[8..]);
        assert_eq!(fast.finish(), looped.finish());
        let mut other = IdHasher::default();
        other.write(&[1; 16]);
        assert_ne!(fast.finish(), other.finish());
        // Other lengths take the loop, the last word padded with zeros.
        let mut short = IdHasher::default();
        short.write(&bytes[..3]);
        let mut padded = IdHasher::default();
        padded.write(&[bytes[0], bytes[1], bytes[2], 0, 0, 0, 0, 0]);
        assert_eq!(short.finish(), padded.finish());
    }
}
