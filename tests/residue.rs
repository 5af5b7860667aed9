//! No copy of a secret outlives the crate's work: after issuing and after verifying, the
//! process's writable memory holds no copy of the token's raw (decoded) secret.
//!
//! The test reads its own memory through `/proc/self/mem` (Linux). The secret it looks for
//! is kept XOR-masked, so the search itself never puts it in memory. A control first plants
//! a copy on the heap and checks that the scan finds it (so a scan that reads nothing
//! cannot pass). Besides the secret's own byte order, the scan looks for it with each
//! 4-byte word reversed, the form SHA-256 keeps in its working state on little-endian
//! machines, and for each half of it as hex digit values (one nibble a byte), the form hex
//! decoding computes.
#![cfg(target_os = "linux")]

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;

use api_tokens::{ApiTokens, MemoryStore, NewToken};

const MASK: u8 = 0xa5;

/// The writable mappings of this process: `(start, end)`.
fn writable_regions() -> Vec<(u64, u64)> {
    let maps = std::fs::read_to_string("/proc/self/maps").expect("/proc/self/maps");
    maps.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let range = fields.next()?;
            let perms = fields.next()?;
            if !perms.starts_with("rw") || line.contains("[vvar") {
                return None;
            }
            let (a, b) = range.split_once('-')?;
            Some((
                u64::from_str_radix(a, 16).ok()?,
                u64::from_str_radix(b, 16).ok()?,
            ))
        })
        .collect()
}

/// How many times the 32 bytes whose masked form is `masked` occur in writable memory.
#[inline(never)]
fn occurrences(masked: &[u8; 32]) -> usize {
    let mut mem = File::open("/proc/self/mem").expect("/proc/self/mem");
    let mut chunk = vec![0u8; 1 << 20];
    let mut found = 0;
    // The first 8 bytes, unmasked, live only in a register for the scan.
    let head = u64::from_ne_bytes(masked[..8].try_into().unwrap()) ^ u64::from_ne_bytes([MASK; 8]);
    for (start, end) in writable_regions() {
        let mut at = start;
        while at < end {
            let len = ((end - at) as usize).min(chunk.len());
            if mem.seek(SeekFrom::Start(at)).is_err() || mem.read_exact(&mut chunk[..len]).is_err()
            {
                break;
            }
            for i in 0..len.saturating_sub(31) {
                let word = u64::from_ne_bytes(chunk[i..i + 8].try_into().unwrap());
                if std::hint::black_box(word) == head
                    && (8..32).all(|j| chunk[i + j] ^ std::hint::black_box(MASK) == masked[j])
                {
                    found += 1;
                }
            }
            // Overlap chunks so a copy across a boundary is seen.
            at += len.saturating_sub(31).max(1) as u64;
        }
    }
    found
}

fn hex_value(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        _ => c - b'a' + 10,
    }
}

/// The `N`-byte secret of a `dz_` token (after its 32 hex digits of id), masked.
fn masked_secret<const N: usize>(token: &str) -> [u8; N] {
    let secret_hex = &token.as_bytes()[3 + 32..3 + 32 + 2 * N];
    std::array::from_fn(|i| {
        ((hex_value(secret_hex[2 * i]) << 4) | hex_value(secret_hex[2 * i + 1])) ^ MASK
    })
}

/// The 32 bytes of `masked` with each 4-byte word reversed (SHA-256's big-endian words as a
/// little-endian machine holds them), still masked.
fn word_swapped(masked: &[u8; 32]) -> [u8; 32] {
    let mut out = *masked;
    for word in out.chunks_mut(4) {
        word.reverse();
    }
    out
}

/// Each half of the secret as its 32 hex digits' values (one per byte, high nibble first),
/// still masked: the form hex decoding works on (it must stay in registers).
fn nibble_halves(masked: &[u8; 32]) -> [[u8; 32]; 2] {
    std::array::from_fn(|half| {
        std::array::from_fn(|i| {
            let byte = masked[half * 16 + i / 2] ^ MASK;
            let nibble = if i % 2 == 0 { byte >> 4 } else { byte & 0x0f };
            nibble ^ MASK
        })
    })
}

/// Copies of the secret in either byte order, or of either half of it as digit values.
fn copies(masked: &[u8; 32]) -> usize {
    let [low, high] = nibble_halves(masked);
    occurrences(masked)
        + occurrences(&word_swapped(masked))
        + occurrences(&low)
        + occurrences(&high)
}

#[test]
fn the_scan_finds_a_planted_copy() {
    let mut masked = [0u8; 32];
    for (i, b) in masked.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(37).wrapping_add(11) ^ 0x3c;
    }
    assert_eq!(copies(&masked), 0, "nothing planted yet");
    // Unmask onto the heap, one byte at a time, as a leaked copy would sit there.
    let planted: Vec<u8> = masked
        .iter()
        .map(|b| b ^ std::hint::black_box(MASK))
        .collect();
    assert!(
        occurrences(&masked) >= 1,
        "the scan did not find a planted copy"
    );
    let swapped: Vec<u8> = word_swapped(&masked)
        .iter()
        .map(|b| b ^ std::hint::black_box(MASK))
        .collect();
    assert!(
        copies(&masked) >= 2,
        "the scan did not find a word-swapped copy"
    );
    let [low, _] = nibble_halves(&masked);
    let digits: Vec<u8> = low.iter().map(|b| b ^ std::hint::black_box(MASK)).collect();
    assert!(
        copies(&masked) >= 3,
        "the scan did not find a copy of the secret's digit values"
    );
    drop(std::hint::black_box(digits));
    drop(std::hint::black_box(planted));
    drop(std::hint::black_box(swapped));
}

#[tokio::test(flavor = "current_thread")]
async fn no_copy_of_the_secret_outlives_issue_or_verify() {
    let tokens = ApiTokens::new(Arc::new(MemoryStore::new()), "dz").unwrap();
    let (presented, masked) = {
        let issued = tokens
            .issue(NewToken::new("alice", "residue"))
            .await
            .unwrap();
        let text = issued.plaintext.expose_secret();
        (text.to_owned(), masked_secret::<32>(text))
    }; // the plaintext is dropped (and wiped) here
    assert_eq!(
        copies(&masked),
        0,
        "issuing left a copy of the raw secret in memory"
    );
    for _ in 0..3 {
        tokens.verify(&presented).await.expect("verifies");
    }
    tokens
        .revoke_presented(&presented, None)
        .await
        .expect("revokes itself");
    assert_eq!(
        copies(&masked),
        0,
        "verifying left a copy of the raw secret in memory"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn no_copy_of_a_longer_secret_outlives_verify() {
    // 40 bytes: 80 hex digits, two blocks of 32 and then two words of eight, so the
    // decoder's word path handles part of the secret too.
    let tokens = ApiTokens::builder(Arc::new(MemoryStore::new()), "dz")
        .secret_bytes(40)
        .build()
        .unwrap();
    let (presented, windows) = {
        let issued = tokens
            .issue(NewToken::new("alice", "residue-40"))
            .await
            .unwrap();
        let text = issued.plaintext.expose_secret();
        let masked = masked_secret::<40>(text);
        let window = |at: usize| -> [u8; 32] { masked[at..at + 32].try_into().unwrap() };
        (text.to_owned(), [window(0), window(8)])
    };
    for window in &windows {
        assert_eq!(
            occurrences(window),
            0,
            "issuing left a copy of the raw secret"
        );
    }
    for _ in 0..3 {
        tokens.verify(&presented).await.expect("verifies");
    }
    for window in &windows {
        assert_eq!(
            occurrences(window),
            0,
            "verifying left a copy of the raw secret in memory"
        );
    }
}
