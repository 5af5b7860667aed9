//! Strings packed one after another, each after its length: how a [`Principal`] keeps what
//! it copied of a record, and how the memory store keeps, once per group of shared fields,
//! the owner, tenant and scopes already in that form, so that making a principal copies
//! them with one `memcpy`.
//!
//! [`Principal`]: crate::Principal

use super::Scopes;

/// The length written for a missing string (no tenant, no metadata).
const MISSING: u32 = u32::MAX;

/// Bytes `part` takes when packed.
pub(crate) fn packed_len(part: Option<&str>) -> usize {
    4 + part.map_or(0, str::len)
}

/// Write `part` after its length ([`MISSING`] for none) at `at` of `text`, which has room
/// for it ([`packed_len`]); returns where the next goes.
pub(crate) fn put(text: &mut [u8], at: usize, part: Option<&str>) -> usize {
    let bytes = part.map_or(&[][..], str::as_bytes);
    // A record's strings are bounded by the crate's limits, far below 4 GiB.
    let n = bytes.len().min(MISSING as usize - 1);
    let len = part.map_or(MISSING, |_| n as u32);
    text[at..at + 4].copy_from_slice(&len.to_le_bytes());
    text[at + 4..at + 4 + n].copy_from_slice(&bytes[..n]);
    at + 4 + n
}

/// The shared fields in the order they are packed: owner, tenant, then each scope.
pub(crate) fn shared_parts<'a>(
    owner: &'a str,
    tenant: Option<&'a str>,
    scopes: &'a Scopes,
) -> impl Iterator<Item = Option<&'a str>> + 'a {
    [Some(owner), tenant]
        .into_iter()
        .chain(scopes.iter().map(Some))
}

/// Write each of `parts` from `at` of `text`, which has room for them; returns where the
/// next goes.
pub(crate) fn put_all<'a>(
    text: &mut [u8],
    at: usize,
    parts: impl Iterator<Item = Option<&'a str>>,
) -> usize {
    parts.fold(at, |at, part| put(text, at, part))
}

/// Owner, tenant, then each scope, packed.
pub(crate) fn pack_shared(owner: &str, tenant: Option<&str>, scopes: &Scopes) -> Box<[u8]> {
    let parts = || shared_parts(owner, tenant, scopes);
    let mut text = vec![0; parts().map(packed_len).sum()];
    put_all(&mut text, 0, parts());
    text.into_boxed_slice()
}

/// The strings of packed text, in order (`None` for a missing one).
#[derive(Clone)]
pub(crate) struct Parts<'a>(pub(crate) &'a [u8]);

impl<'a> Iterator for Parts<'a> {
    type Item = Option<&'a str>;

    fn next(&mut self) -> Option<Self::Item> {
        let (len, rest) = self.0.split_first_chunk::<4>()?;
        let len = u32::from_le_bytes(*len);
        if len == MISSING {
            self.0 = rest;
            return Some(None);
        }
        let (part, rest) = rest.split_at_checked(len as usize)?;
        self.0 = rest;
        // Copied from `&str`s whole, so every part is valid UTF-8.
        Some(Some(std::str::from_utf8(part).unwrap_or_default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_strings_read_back_in_order_with_the_missing_ones() {
        let scopes = Scopes::parse(["b:write", "a:read"]).unwrap();
        for (owner, tenant) in [("user_1", Some("biz_1")), ("", None), ("u", Some(""))] {
            let packed = pack_shared(owner, tenant, &scopes);
            let parts: Vec<_> = Parts(&packed).collect();
            assert_eq!(
                parts,
                [Some(owner), tenant, Some("a:read"), Some("b:write")],
                "{owner:?} {tenant:?}"
            );
        }
        assert_eq!(
            Parts(&[1, 0, 0]).next(),
            None,
            "a cut length ends the parts"
        );
        assert_eq!(
            Parts(&[5, 0, 0, 0, b'a']).next(),
            None,
            "so does a cut string"
        );
    }
}
