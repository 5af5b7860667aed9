//! [`TrustedProxies`]: which client address to believe behind a reverse proxy.

use std::net::{IpAddr, SocketAddr};

use crate::record::IpAllowlist;

/// The proxies in front of a service, and the header they write the client's address into
/// (`X-Forwarded-For`-style: comma-separated, each proxy appending the address it saw).
///
/// The client's address is the TCP peer, unless the peer is one of the proxies: then it is
/// the header's nearest entry (walking from the right) that is not itself one of the
/// proxies. A client that reaches the service directly, or writes the header itself, cannot
/// choose the address it is checked as. Behind a proxy, an entry that is not an address
/// (`unknown`, garbage a client wrote) met before any client address makes the address
/// **unknown** (`None`), never the proxy's: a token with an IP allowlist then does not
/// verify. Entries may carry a port (`192.0.2.7:4711`, `[2001:db8::7]:4711`). A proxy that
/// sends no header is the client itself.
///
/// ```
/// use api_tokens::{IpAllowlist, TrustedProxies};
/// use std::net::{IpAddr, SocketAddr};
///
/// let proxies = TrustedProxies::new("x-forwarded-for", IpAllowlist::parse(["10.0.0.0/8"])?);
/// let peer: IpAddr = "10.0.0.2".parse().unwrap();
/// let client = proxies.client_ip(peer, [&b"203.0.113.9, 198.51.100.7, 10.0.0.5"[..]]);
/// assert_eq!(client, Some("198.51.100.7".parse().unwrap()));
/// // From outside, the header is not believed.
/// let direct: IpAddr = "198.51.100.99".parse().unwrap();
/// assert_eq!(proxies.client_ip(direct, [&b"1.2.3.4"[..]]), Some(direct));
/// // Garbage nearer than any client address: unknown, not the proxy.
/// assert_eq!(proxies.client_ip(peer, [&b"garbage, 10.0.0.5"[..]]), None);
/// # Ok::<(), api_tokens::ValidationErrors>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedProxies {
    header: String,
    proxies: IpAllowlist,
}

impl TrustedProxies {
    /// Believe `header` (any case) from peers in `proxies`.
    pub fn new(header: impl Into<String>, proxies: IpAllowlist) -> Self {
        Self {
            header: header.into().to_ascii_lowercase(),
            proxies,
        }
    }

    /// The forwarding header's name, in lower case.
    pub fn header(&self) -> &str {
        &self.header
    }

    /// Whether `address` is one of the proxies.
    pub fn is_proxy(&self, address: IpAddr) -> bool {
        self.proxies.allows(address)
    }

    /// The client's address: `peer`, or behind a trusted proxy the nearest untrusted entry
    /// of the forwarding header's `values` (each a header line as sent, in order); `None`
    /// when that cannot be told.
    pub fn client_ip<'a>(
        &self,
        peer: IpAddr,
        values: impl IntoIterator<Item = &'a [u8]>,
    ) -> Option<IpAddr> {
        if !self.proxies.allows(peer) {
            return Some(peer);
        }
        let lines: Vec<&[u8]> = values.into_iter().collect();
        self.walk(peer, &lines, false)
    }

    /// Walk `lines` from the right; `partial` when lines further left were not kept (then a
    /// header of proxies only names no client).
    pub(crate) fn walk(&self, peer: IpAddr, lines: &[&[u8]], partial: bool) -> Option<IpAddr> {
        let mut furthest = None;
        for line in lines.iter().rev() {
            let line = std::str::from_utf8(line).ok()?;
            for entry in line.rsplit(',') {
                let address = parse_entry(entry.trim())?;
                if !self.proxies.allows(address) {
                    return Some(address);
                }
                furthest = Some(address);
            }
        }
        match furthest {
            // No header: the proxy itself is the client.
            None if lines.is_empty() => Some(peer),
            // Proxies all the way: the furthest one is the client.
            Some(address) if !partial => Some(address),
            _ => None,
        }
    }
}

/// An address, with or without a port.
fn parse_entry(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies() -> TrustedProxies {
        TrustedProxies::new(
            "X-Forwarded-For",
            IpAllowlist::parse(["10.0.0.0/8"]).expect("ranges"),
        )
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("an address")
    }

    #[test]
    fn the_nearest_untrusted_entry_is_the_client() {
        let p = proxies();
        let proxy = ip("10.0.0.2");
        let client = |lines: &[&str]| p.client_ip(proxy, lines.iter().map(|l| l.as_bytes()));
        assert_eq!(
            client(&["203.0.113.9, 198.51.100.7"]),
            Some(ip("198.51.100.7"))
        );
        assert_eq!(
            client(&["203.0.113.9", "198.51.100.7, 10.0.0.9"]),
            Some(ip("198.51.100.7"))
        );
        assert_eq!(client(&["198.51.100.7:4711"]), Some(ip("198.51.100.7")));
        assert_eq!(client(&["[2001:db8::7]:4711"]), Some(ip("2001:db8::7")));
        assert_eq!(
            client(&[]),
            Some(proxy),
            "no header: the proxy is the client"
        );
        assert_eq!(
            client(&["10.0.0.7, 10.0.0.9"]),
            Some(ip("10.0.0.7")),
            "proxies only"
        );
    }

    #[test]
    fn an_unreadable_entry_before_any_client_makes_the_address_unknown() {
        let p = proxies();
        let proxy = ip("10.0.0.2");
        for lines in [
            &["garbage"][..],
            &["198.51.100.7, unknown"],
            &["198.51.100.7", "10.0.0.9, for=192.0.2.1"],
            &["198.51.100.7,"],
        ] {
            let got = p.client_ip(proxy, lines.iter().map(|l| l.as_bytes()));
            assert_eq!(got, None, "{lines:?}");
        }
        // Garbage further left than the client is never reached.
        let got = p.client_ip(proxy, [&b"garbage, 198.51.100.7"[..]]);
        assert_eq!(got, Some(ip("198.51.100.7")));
        assert_eq!(p.client_ip(proxy, [&b"\xff"[..]]), None);
    }

    #[test]
    fn a_partial_header_of_proxies_names_no_client() {
        let p = proxies();
        let lines: Vec<&[u8]> = vec![b"10.0.0.5", b"10.0.0.6"];
        assert_eq!(p.walk(ip("10.0.0.2"), &lines, true), None);
        assert_eq!(p.walk(ip("10.0.0.2"), &lines, false), Some(ip("10.0.0.5")));
    }
}
