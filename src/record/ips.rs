//! [`IpAllowlist`]: the client addresses a token may be used from.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{FieldError, ValidationErrors};
use crate::limits::MAX_ALLOWED_IPS;

/// The client addresses a token may be used from: CIDR ranges (`10.0.0.0/8`,
/// `2001:db8::/32`) or single addresses. Verification checks it when the caller passes the
/// client's address ([`Requirements::client_ip`](crate::Requirements::client_ip)), and
/// refuses a token that has one when no address is passed (fail closed).
///
/// ```
/// use api_tokens::IpAllowlist;
///
/// let allowed = IpAllowlist::parse(["10.0.0.0/8", "192.0.2.7"])?;
/// assert!(allowed.allows("10.1.2.3".parse().unwrap()));
/// assert!(allowed.allows("192.0.2.7".parse().unwrap()));
/// assert!(!allowed.allows("192.0.2.8".parse().unwrap()));
/// assert!(IpAllowlist::parse(["10.0.0.0/33"]).is_err());
/// # Ok::<(), api_tokens::ValidationErrors>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IpAllowlist(Arc<[IpNet]>);

impl IpAllowlist {
    /// Parse ranges; every bad one is named (`allowed_ips[i]`). The ranges keep the order
    /// given; host bits are cleared (`10.1.2.3/8` is `10.0.0.0/8`), a single address is the
    /// range of that one address (`192.0.2.7/32`), IPv4-mapped IPv6 addresses compare as
    /// IPv4, and repeats are dropped. At least one, at most [`MAX_ALLOWED_IPS`].
    pub fn parse<I, T>(ranges: I) -> Result<Self, ValidationErrors>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        let mut errors = Vec::new();
        let mut out: Vec<IpNet> = Vec::new();
        for (i, range) in ranges.into_iter().enumerate() {
            let range = range.as_ref().trim();
            let parsed = range
                .parse::<IpNet>()
                .or_else(|_| range.parse::<IpAddr>().map(IpNet::from))
                .map(|net| net.trunc());
            match parsed {
                // Repeats are looked for only while the list can still be kept (an
                // over-long list is refused below, and a quadratic scan of it is not run).
                Ok(net) if out.len() > MAX_ALLOWED_IPS || !out.contains(&net) => out.push(net),
                Ok(_) => {}
                Err(_) => errors.push(FieldError::new(
                    format!("allowed_ips[{i}]"),
                    "is not an IP address or CIDR range",
                )),
            }
        }
        if out.is_empty() && errors.is_empty() {
            errors.push(FieldError::new(
                "allowed_ips",
                "must list at least one range (omit it to allow every address)",
            ));
        }
        if out.len() > MAX_ALLOWED_IPS {
            errors.push(FieldError::new(
                "allowed_ips",
                format!("has more than {MAX_ALLOWED_IPS} ranges"),
            ));
        }
        if errors.is_empty() {
            Ok(Self(out.into()))
        } else {
            Err(ValidationErrors(errors))
        }
    }

    /// Whether `address` is in one of the ranges.
    pub fn allows(&self, address: IpAddr) -> bool {
        let address = canonical(address);
        self.0.iter().any(|net| net.contains(&address))
    }

    /// Whether every address of `other` is allowed by this list too.
    pub fn covers(&self, other: &IpAllowlist) -> bool {
        other
            .0
            .iter()
            .all(|inner| self.0.iter().any(|outer| outer.contains(inner)))
    }

    /// The ranges, in the order given.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &IpNet> + '_ {
        self.0.iter()
    }

    /// The ranges as stored: space-separated.
    pub fn to_text(&self) -> String {
        self.0
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it stands for.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    }
}

impl fmt::Debug for IpAllowlist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.iter()).finish()
    }
}

impl Serialize for IpAllowlist {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(ToString::to_string))
    }
}

impl<'de> Deserialize<'de> for IpAllowlist {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let ranges = Vec::<String>::deserialize(deserializer)?;
        Self::parse(ranges).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(list: &IpAllowlist) -> Vec<String> {
        list.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn ranges_keep_the_order_given_without_repeats() {
        let list = IpAllowlist::parse(["2001:db8::/32", "192.0.2.7", "10.1.2.3/8", "10.0.0.0/8"])
            .expect("valid ranges");
        assert_eq!(
            shown(&list),
            ["2001:db8::/32", "192.0.2.7/32", "10.0.0.0/8"],
            "order kept, a single address as its /32, host bits cleared, the repeat dropped"
        );
        assert_eq!(list.to_text(), "2001:db8::/32 192.0.2.7/32 10.0.0.0/8");
        let text: IpAllowlist =
            serde_json::from_str(r#"["2001:db8::/32","192.0.2.7/32","10.0.0.0/8"]"#)
                .expect("its own output parses");
        assert_eq!(text, list);
    }

    #[test]
    fn a_list_too_long_is_refused_even_with_repeats_after_the_limit() {
        let many: Vec<String> = (0..=MAX_ALLOWED_IPS)
            .map(|i| format!("10.0.{i}.0/24"))
            .collect();
        assert!(IpAllowlist::parse(&many).is_err());
        let mut repeated: Vec<String> = many[..MAX_ALLOWED_IPS].to_vec();
        repeated.extend(std::iter::repeat_n("10.0.0.0/24".to_owned(), 10_000));
        let kept = IpAllowlist::parse(&repeated).expect("repeats of a kept range are dropped");
        assert_eq!(kept.iter().len(), MAX_ALLOWED_IPS);
        let empty: [&str; 0] = [];
        assert!(IpAllowlist::parse(empty).is_err());
    }
}
