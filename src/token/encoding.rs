//! Lowercase hex and the token alphabet: the byte-level work of parsing, on every
//! verification.

use zeroize::Zeroize;

/// Hex characters of a [`TokenId`](crate::TokenId).
pub(crate) const ID_HEX: usize = crate::limits::TOKEN_ID_BYTES * 2;
/// Hex characters of the CRC32 at the end of a token.
pub(crate) const CHECKSUM_HEX: usize = 8;
/// Hex characters of the id shown in a display prefix (32 bits of the public id).
pub(crate) const DISPLAY_ID_HEX: usize = 8;

/// Decode lowercase hex into `out` (`text` is twice as long), straight into `out`: nothing
/// is staged anywhere else, so `out` may be a secret's wiped buffer. Whole 32-digit blocks
/// go through [`decode_block`] (which the compiler turns into a few dozen SSE2
/// instructions), the rest eight digits at a time in one 64-bit register. On failure, the
/// offset of the first byte that is not a lowercase hex digit. Uppercase is refused so
/// that every token has exactly one spelling.
pub(crate) fn decode_hex(text: &[u8], out: &mut [u8]) -> Result<(), usize> {
    debug_assert_eq!(text.len(), out.len() * 2);
    let all = text;
    let mut ok = true;
    let (blocks, text) = text.as_chunks::<32>();
    let (block_outs, out) = out.as_chunks_mut::<16>();
    for (block, out) in blocks.iter().zip(block_outs) {
        ok &= decode_block(block, out);
    }
    let mut chunks = text.chunks_exact(8);
    let mut outs = out.chunks_exact_mut(4);
    for (chunk, out) in (&mut chunks).zip(&mut outs) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let (bytes, valid) = decode_eight(u64::from_le_bytes(word));
        ok &= valid;
        out.copy_from_slice(&bytes.to_le_bytes());
    }
    // The last 2, 4 or 6 digits (secrets of any length), padded with zeros.
    let (rest, out) = (chunks.remainder(), outs.into_remainder());
    if !rest.is_empty() {
        let mut word = [b'0'; 8];
        word[..rest.len()].copy_from_slice(rest);
        let (bytes, valid) = decode_eight(u64::from_le_bytes(word));
        ok &= valid;
        out.copy_from_slice(&bytes.to_le_bytes()[..out.len()]);
    }
    if ok {
        return Ok(());
    }
    Err(first_non_hex(all))
}

/// 32 lowercase hex digits decoded to 16 bytes, and whether all 32 were digits. Written
/// byte by byte with no branch and no table (nothing indexed by a secret, so nothing its
/// timing could tell), in a shape the compiler vectorises: on x86-64's baseline SSE2 it is
/// 56 instructions that keep every digit in registers (a quarter of what [`decode_eight`]
/// takes for the same digits), and the per-digit values never reach the stack, so no copy
/// of a secret is left behind (`tests/residue.rs` checks the optimised build).
#[inline(always)]
pub(crate) fn decode_block(text: &[u8; 32], out: &mut [u8; 16]) -> bool {
    let mut bad = 0u8;
    let mut nibbles = [0u8; 32];
    for (n, &b) in nibbles.iter_mut().zip(text) {
        let digit = b.wrapping_sub(b'0') < 10;
        let letter = b.wrapping_sub(b'a') < 6;
        bad |= u8::from(!(digit | letter));
        // A digit's value is its low nibble, plus 9 for a letter (bit 6 set).
        *n = (b & 0x0f) + ((b >> 6) & 1) * 9;
    }
    for (i, o) in out.iter_mut().enumerate() {
        *o = (nibbles[2 * i] << 4) | nibbles[2 * i + 1];
    }
    bad == 0
}

/// Eight lowercase hex digits as the big-endian number they spell (a token's checksum), or
/// `None` if one is not a lowercase hex digit.
pub(crate) fn decode_u32(text: &[u8; 8]) -> Option<u32> {
    let (bytes, valid) = decode_eight(u64::from_le_bytes(*text));
    valid.then(|| u32::from_be_bytes(bytes.to_le_bytes()))
}

/// The offset of the first byte of `text` that is not a lowercase hex digit (0 if all are).
pub(crate) fn first_non_hex(text: &[u8]) -> usize {
    text.iter()
        .position(|b| !matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        .unwrap_or(0)
}

/// Eight lowercase hex digits (the first in the lowest byte) decoded to four bytes (the
/// first in the lowest byte), and whether all eight were digits. No table (nothing indexed
/// by a secret, so nothing its timing could tell), no branch.
fn decode_eight(x: u64) -> (u32, bool) {
    const ONES: u64 = 0x0101_0101_0101_0101;
    // '0'..'9' are 0x30..0x39 and 'a'..'f' 0x61..0x66: a digit's value is its low nibble,
    // plus 9 if bit 6 is set. Every byte gets a value below 32, so no lane carries.
    let nibbles = (x & (ONES * 0x0f)) + ((x >> 6) & ONES) * 9;
    // Valid iff every value is below 16 and spells back to the very byte it came from.
    let letters = ((nibbles + ONES * 0x76) >> 7) & ONES;
    let spelled = nibbles + ONES * 0x30 + letters * 0x27;
    let ok = (spelled ^ x) | (nibbles & (ONES * 0x10)) == 0;
    // Each even byte takes its value as the high half and the next byte's as the low; then
    // the four even bytes are gathered into the low half.
    let pairs = ((nibbles << 4) | (nibbles >> 8)) & 0x00ff_00ff_00ff_00ff;
    let pairs = (pairs | (pairs >> 8)) & 0x0000_ffff_0000_ffff;
    let bytes = pairs | (pairs >> 16);
    (bytes as u32, ok)
}

/// Whether `b` is in `[A-Za-z0-9_]`, without branches, so a scan over a token vectorises.
pub(crate) fn in_alphabet(b: u8) -> bool {
    (b.wrapping_sub(b'0') < 10) | ((b | 0x20).wrapping_sub(b'a') < 26) | (b == b'_')
}

/// Write `bytes` as lowercase hex into `out` (twice as long), four bytes at a time in one
/// 64-bit register, with no table (nothing indexed by a secret) and no branch on a digit.
/// Each eight digits are written straight into `out`, which may be a secret's wiped buffer:
/// in an optimised build a full group stays in registers between its load and its store
/// (`tests/residue.rs` checks that build); the last, shorter group passes through a stack
/// word, which is wiped at once.
pub(crate) fn write_hex(out: &mut [u8], bytes: &[u8]) {
    debug_assert_eq!(out.len(), bytes.len() * 2);
    let mut chunks = bytes.chunks_exact(4);
    let mut outs = out.chunks_exact_mut(8);
    for (chunk, out) in (&mut chunks).zip(&mut outs) {
        let mut four = [0u8; 4];
        four.copy_from_slice(chunk);
        // Fixed sizes: one load and one store, the digits in a register between them.
        out.copy_from_slice(&encode_four(u32::from_le_bytes(four)).to_le_bytes());
    }
    // The last 1, 2 or 3 bytes (secrets of any length), padded with zeros.
    let (rest, out) = (chunks.remainder(), outs.into_remainder());
    if !rest.is_empty() {
        let mut four = [0u8; 4];
        four[..rest.len()].copy_from_slice(rest);
        let mut word = encode_four(u32::from_le_bytes(four)).to_le_bytes();
        out.copy_from_slice(&word[..out.len()]);
        word.zeroize();
        four.zeroize();
    }
}

/// An ASCII buffer as a `String`, moving the allocation (no copy is left behind). Bytes
/// that are not UTF-8 (never the case for a token this crate builds) are taken one by one.
pub(crate) fn ascii_string(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            let mut bytes = e.into_bytes();
            // A byte becomes at most two in UTF-8: room for all, so nothing reallocates.
            let mut text = String::with_capacity(bytes.len() * 2);
            text.extend(bytes.iter().map(|&b| char::from(b)));
            bytes.zeroize();
            text
        }
    }
}

/// Four bytes (the first in the lowest byte) as eight lowercase hex digits (the first in
/// the lowest byte): [`decode_eight`] run backwards.
fn encode_four(x: u32) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    // Byte i moves to byte 2i; then its high nibble stays there and its low nibble goes to
    // byte 2i + 1, so that every byte holds one digit's value, in reading order.
    let x = u64::from(x);
    let x = (x | (x << 16)) & 0x0000_ffff_0000_ffff;
    let x = (x | (x << 8)) & 0x00ff_00ff_00ff_00ff;
    let nibbles = ((x >> 4) & 0x000f_000f_000f_000f) | ((x & 0x000f_000f_000f_000f) << 8);
    // '0' + n, and 39 more ('a' - '0' - 10) where n >= 10: n + 6 reaches bit 4 exactly then,
    // and no byte exceeds 21 there, so no lane carries into the next.
    let letters = ((nibbles + ONES * 6) >> 4) & ONES;
    nibbles + ONES * u64::from(b'0') + letters * 39
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
    fn every_eight_digit_word_and_every_bad_byte_in_every_place() {
        // Every byte value in every position of an 8-digit word and of the tail.
        for len in [8, 10, 16, 32, 34, 40, 64, 72, 96, 98] {
            for at in 0..len {
                for b in 0..=255u8 {
                    let mut text = vec![b'7'; len];
                    text[at] = b;
                    let mut out = vec![0u8; len / 2];
                    let decoded = decode_hex(&text, &mut out);
                    if b.is_ascii_digit() || (b'a'..=b'f').contains(&b) {
                        assert_eq!(decoded, Ok(()));
                        assert_eq!(out, hex::decode(&text).unwrap(), "{b} at {at} of {len}");
                    } else {
                        assert_eq!(decoded, Err(at), "{b} at {at} of {len}");
                    }
                }
            }
        }
    }

    #[test]
    fn hex_encoding_agrees_with_the_hex_crate_for_every_byte_in_every_place() {
        for len in 0..=9 {
            for at in 0..len.max(1) {
                for b in 0..=255u8 {
                    let mut bytes: Vec<u8> = (0..len as u8).map(|i| i.wrapping_mul(37)).collect();
                    if len > 0 {
                        bytes[at] = b;
                    }
                    let mut text = vec![b'x'; 2 * len + 2];
                    write_hex(&mut text[1..2 * len + 1], &bytes);
                    let expected = format!("x{}x", hex::encode(&bytes));
                    assert_eq!(ascii_string(text), expected, "{b} at {at} of {len}");
                }
            }
        }
    }

    #[test]
    fn bytes_that_are_not_utf8_still_make_a_string() {
        assert_eq!(ascii_string(b"dz_09af".to_vec()), "dz_09af");
        assert_eq!(ascii_string(vec![b'a', 0xff]), "a\u{ff}");
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
