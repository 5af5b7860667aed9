//! Fresh token ids, read from the operating system's CSPRNG 64 at a time.
//!
//! A new token's secret is read on its own and its id comes from a per-thread batch. Linux
//! answers a read of up to 32 bytes straight from a fresh ChaCha20 key and needs a further
//! ChaCha20 block for anything longer: 412 ns for 32 bytes against 537 ns for 48 on the
//! machine of the README's figures, so reading the id with the secret made every read
//! 30 % dearer. An id is not a secret (listings, logs and URLs show it), so keeping the
//! next ones in memory exposes nothing.
//!
//! A process that forks after issuing leaves its child a copy of the batch, and the two can
//! then hand out the same ids. A store refuses the second insert of an id (nothing is
//! written) and issuing retries once with an id read on its own ([`from_os`]), which
//! empties the batch too. A rotation's successor takes its id from [`from_os`] at once.

use std::cell::RefCell;

use super::TokenId;
use crate::limits::TOKEN_ID_BYTES;

/// How many ids one read fetches.
const BATCH: usize = 64;

struct Batch {
    bytes: [u8; BATCH * TOKEN_ID_BYTES],
    /// The index of the next unused id; `BATCH` when none is left.
    next: usize,
}

thread_local! {
    static IDS: RefCell<Batch> = const {
        RefCell::new(Batch { bytes: [0; BATCH * TOKEN_ID_BYTES], next: BATCH })
    };
}

impl Batch {
    fn take(&mut self) -> Result<TokenId, getrandom::Error> {
        if self.next == BATCH {
            // Marked full only once the read succeeded: a failed read hands out nothing.
            getrandom::fill(&mut self.bytes)?;
            self.next = 0;
        }
        let at = self.next * TOKEN_ID_BYTES;
        self.next += 1;
        let mut id = [0; TOKEN_ID_BYTES];
        id.copy_from_slice(&self.bytes[at..at + TOKEN_ID_BYTES]);
        Ok(TokenId::from_bytes(id))
    }
}

/// The next id of this thread's batch (reading a new batch when it is used up).
pub(crate) fn next() -> Result<TokenId, getrandom::Error> {
    IDS.with_borrow_mut(Batch::take)
}

/// An id read from the operating system on its own; this thread's batch is dropped too (a
/// duplicate id means it may be shared with a forked process).
pub(crate) fn from_os() -> Result<TokenId, getrandom::Error> {
    IDS.with_borrow_mut(|b| b.next = BATCH);
    let mut id = [0; TOKEN_ID_BYTES];
    getrandom::fill(&mut id)?;
    Ok(TokenId::from_bytes(id))
}

/// The id [`next`] returns next, without taking it (for tests).
#[cfg(test)]
pub(crate) fn peek() -> TokenId {
    IDS.with_borrow_mut(|b| {
        let id = b.take().expect("the OS CSPRNG");
        b.next -= 1;
        id
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_distinct_across_batches_and_threads() {
        let mine: Vec<TokenId> = (0..3 * BATCH + 5).map(|_| next().unwrap()).collect();
        let theirs: Vec<TokenId> =
            std::thread::spawn(|| (0..BATCH).map(|_| next().unwrap()).collect())
                .join()
                .unwrap();
        let all: HashSet<TokenId> = mine.iter().chain(&theirs).copied().collect();
        assert_eq!(all.len(), mine.len() + theirs.len());
        assert!(!all.contains(&TokenId::from_bytes([0; TOKEN_ID_BYTES])));
    }

    #[test]
    fn peek_shows_the_next_id_and_from_os_drops_the_batch() {
        let ahead = peek();
        assert_eq!(peek(), ahead, "peeking takes nothing");
        assert_eq!(next().unwrap(), ahead);
        let queued = peek();
        let own = from_os().unwrap();
        assert_ne!(own, queued);
        assert_ne!(
            next().unwrap(),
            queued,
            "the batch was dropped: a new one was read"
        );
    }
}
