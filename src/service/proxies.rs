//! [`TrustedProxies`]: which client address to believe behind a reverse proxy.

use std::net::IpAddr;

use crate::record::IpAllowlist;

/// The proxies in front of a service, and the header they write the client's address into
/// (`X-Forwarded-For`-style: comma-separated, each proxy appending the address it saw).
///
/// The client's address is the TCP peer, unless the peer is one of the proxies: then it is
/// the header's nearest entry (walking from the right) that is not itself one of the
/// proxies. A client that reaches the service directly, or writes the header itself, cannot
/// choose the address it is checked as. A missing or unreadable header leaves the peer.
///
/// ```
/// use api_tokens::{IpAllowlist, TrustedProxies};
///
/// let proxies = TrustedProxies::new("x-forwarded-for", IpAllowlist::parse(["10.0.0.0/8"])?);
/// let peer = "10.0.0.2".parse().unwrap();
/// let client = proxies.client_ip(peer, [&b"203.0.113.9, 198.51.100.7, 10.0.0.5"[..]]);
/// assert_eq!(client, "198.51.100.7".parse::<std::net::IpAddr>().unwrap());
/// // From outside, the header is not believed.
/// let direct = "198.51.100.99".parse().unwrap();
/// assert_eq!(proxies.client_ip(direct, [&b"1.2.3.4"[..]]), direct);
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

    /// The client's address: `peer`, or behind a trusted proxy the nearest untrusted entry
    /// of the forwarding header's `values` (each a header line as sent).
    pub fn client_ip<'a>(
        &self,
        peer: IpAddr,
        values: impl IntoIterator<Item = &'a [u8]>,
    ) -> IpAddr {
        if !self.proxies.allows(peer) {
            return peer;
        }
        let mut hops = Vec::new();
        for value in values {
            let Ok(value) = std::str::from_utf8(value) else {
                return peer;
            };
            for entry in value.split(',') {
                match entry.trim().parse::<IpAddr>() {
                    Ok(address) => hops.push(address),
                    Err(_) => return peer,
                }
            }
        }
        hops.iter()
            .rev()
            .find(|a| !self.proxies.allows(**a))
            .or(hops.first())
            .copied()
            .unwrap_or(peer)
    }
}
