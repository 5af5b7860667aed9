//! Lowercase hex and the token alphabet: the byte-level work of parsing, on every
//! verification.

/// Hex characters of a [`TokenId`](crate::TokenId).
pub(crate) const ID_HEX: usize = crate::limits::TOKEN_ID_BYTES * 2;
/// Hex characters of the CRC32 at the end of a token.
pub(crate) const CHECKSUM_HEX: usize = 8;
/// Hex characters of the id shown in a display prefix (32 bits of the public id).
pub(crate) const DISPLAY_ID_HEX: usize = 8;

/// Decode lowercase hex into `out` (`text` is twice as long). On failure, the offset of the
/// first byte that is not a lowercase hex digit. Uppercase is refused so that every token has
/// exactly one spelling.
///
/// `const-hex` decodes with SIMD, and the uppercase test is one branch-free pass.
pub(crate) fn decode_hex(text: &[u8], out: &mut [u8]) -> Result<(), usize> {
    let has_upper = text.iter().fold(false, |up, b| up | b.is_ascii_uppercase());
    if !has_upper && hex::decode_to_slice(text, out).is_ok() {
        return Ok(());
    }
    Err(text
        .iter()
        .position(|&b| !matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        .unwrap_or(0))
}

/// The value of each lowercase hex digit; `0xff` for every other byte.
static HEX_VALUE: [u8; 256] = {
    let mut table = [0xff; 256];
    let mut c = 0;
    while c < 10 {
        table[b'0' as usize + c] = c as u8;
        c += 1;
    }
    let mut c = 0;
    while c < 6 {
        table[b'a' as usize + c] = 10 + c as u8;
        c += 1;
    }
    table
};

/// Decode a secret's lowercase hex into `out`, one byte at a time, each byte written
/// straight into `out` (the caller's wiped buffer): nothing of the secret is staged
/// anywhere else, whatever the optimiser does. On failure, the offset of the first byte
/// that is not a lowercase hex digit.
pub(crate) fn decode_secret_hex(text: &[u8], out: &mut [u8]) -> Result<(), usize> {
    let mut bad = 0u8;
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        let (hi, lo) = (
            HEX_VALUE[usize::from(pair[0])],
            HEX_VALUE[usize::from(pair[1])],
        );
        bad |= hi | lo;
        *byte = (hi << 4) | (lo & 0x0f);
    }
    if bad & 0x80 == 0 {
        return Ok(());
    }
    Err(text
        .iter()
        .position(|&b| HEX_VALUE[usize::from(b)] == 0xff)
        .unwrap_or(0))
}

/// Whether `b` is in `[A-Za-z0-9_]`, without branches, so a scan over a token vectorises.
pub(crate) fn in_alphabet(b: u8) -> bool {
    (b.wrapping_sub(b'0') < 10) | ((b | 0x20).wrapping_sub(b'a') < 26) | (b == b'_')
}

/// Append `bytes` as lowercase hex, one byte at a time (for secrets: nothing is staged in a
/// buffer of its own).
pub(crate) fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
}

/// Append ASCII bytes to a string.
pub(crate) fn push_ascii(out: &mut String, ascii: &[u8]) {
    out.extend(ascii.iter().map(|&b| char::from(b)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_decoding_agrees_with_the_hex_crate_on_lowercase_and_refuses_the_rest() {
        for byte in 0..=255u8 {
            let text = hex::encode([byte]);
            let mut out = [0u8; 1];
            decode_hex(text.as_bytes(), &mut out).unwrap();
            assert_eq!(out[0], byte);
        }
        for bad in 0..=255u8 {
            if bad.is_ascii_digit() || (b'a'..=b'f').contains(&bad) {
                continue;
            }
            let mut out = [0u8; 2];
            assert_eq!(
                decode_hex(&[b'0', b'1', b'2', bad], &mut out),
                Err(3),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_secret_decoder_agrees_with_the_other() {
        for byte in 0..=255u8 {
            let text = hex::encode([byte, byte ^ 0x5a]);
            let (mut a, mut b) = ([0u8; 2], [0u8; 2]);
            decode_hex(text.as_bytes(), &mut a).unwrap();
            decode_secret_hex(text.as_bytes(), &mut b).unwrap();
            assert_eq!(a, b);
        }
        for bad in 0..=255u8 {
            if bad.is_ascii_digit() || (b'a'..=b'f').contains(&bad) {
                continue;
            }
            let mut out = [0u8; 2];
            assert_eq!(
                decode_secret_hex(&[b'0', b'1', b'2', bad], &mut out),
                Err(3),
                "{bad}"
            );
            assert_eq!(
                decode_secret_hex(&[bad, b'1', b'2', b'3'], &mut out),
                Err(0),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_alphabet_test_matches_its_definition() {
        for b in 0..=255u8 {
            assert_eq!(
                in_alphabet(b),
                b.is_ascii_alphanumeric() || b == b'_',
                "{b}"
            );
        }
    }
}
