//! IP address management, free of I/O: subnet CIDRs, gateways, allocation
//! pools and their validation, the choice of the next free address, and MAC
//! addresses. Callers load the addresses in use from the database and store
//! what these functions choose; uniqueness under concurrency is the
//! database's job.
//!
//! Addresses are handled as `u128` (an IPv4 address widened), so one set of
//! range arithmetic serves both IP versions.

mod allocate;
mod error;
mod mac;
mod pools;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

pub use allocate::{check_requested_address, next_free_address};
pub use error::IpamError;
pub use mac::{generate_mac, MAC_PREFIX};
pub use pools::{check_subnet_overlap, default_pools, validate_gateway, validate_pools};

/// An inclusive range of addresses of one IP version, as an allocation pool
/// (`{"start": …, "end": …}`) is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpRange {
    pub start: IpAddr,
    pub end: IpAddr,
}

impl IpRange {
    /// Parses a pool's `start` and `end`. Addresses that do not parse are
    /// `InvalidInput`; a reversed range or mixed versions `InvalidAllocationPool`.
    pub fn parse(start: &str, end: &str) -> Result<Self, IpamError> {
        let start_ip = parse_address(start)?;
        let end_ip = parse_address(end)?;
        let range = IpRange {
            start: start_ip,
            end: end_ip,
        };
        let same_version = start_ip.is_ipv4() == end_ip.is_ipv4();
        if !same_version || to_u128(start_ip) > to_u128(end_ip) {
            return Err(IpamError::InvalidPool {
                pool: range.to_string(),
            });
        }
        Ok(range)
    }

    pub fn contains(&self, address: IpAddr) -> bool {
        address.is_ipv4() == self.start.is_ipv4()
            && to_u128(self.start) <= to_u128(address)
            && to_u128(address) <= to_u128(self.end)
    }

    pub fn overlaps(&self, other: &IpRange) -> bool {
        self.start.is_ipv4() == other.start.is_ipv4()
            && to_u128(self.start) <= to_u128(other.end)
            && to_u128(other.start) <= to_u128(self.end)
    }
}

/// Written as Neutron (netaddr's `IPRange`) writes a pool in messages:
/// `10.0.0.2-10.0.0.254`.
impl fmt::Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

/// Parses a subnet CIDR for `ip_version` (4 or 6). The address must be the
/// network address: `10.0.0.1/24` is rejected with `10.0.0.0/24` suggested,
/// as Neutron does.
pub fn parse_cidr(text: &str, ip_version: u8) -> Result<IpNet, IpamError> {
    let net: IpNet = text.parse().map_err(|_| IpamError::InvalidCidr {
        cidr: text.to_owned(),
    })?;
    if net.addr() != net.network() {
        return Err(IpamError::HostBitsSet {
            cidr: text.to_owned(),
            recommended: net.trunc().to_string(),
        });
    }
    if ip_version_of(&net) != ip_version {
        return Err(IpamError::CidrVersionMismatch {
            cidr: text.to_owned(),
            ip_version,
        });
    }
    Ok(net)
}

/// Parses one address, as written in a pool, a gateway or a fixed IP.
pub fn parse_address(text: &str) -> Result<IpAddr, IpamError> {
    text.parse().map_err(|_| IpamError::InvalidAddress {
        value: text.to_owned(),
    })
}

pub fn ip_version_of(net: &IpNet) -> u8 {
    match net {
        IpNet::V4(_) => 4,
        IpNet::V6(_) => 6,
    }
}

/// Returns the addresses of `net` that hosts may use: all but the network
/// address, and for IPv4 also the broadcast address. `None` when nothing is
/// left (an IPv4 /31 or /32, an IPv6 /128).
pub fn host_range(net: &IpNet) -> Option<IpRange> {
    let first = to_u128(net.network()) + 1;
    let last = to_u128(net.broadcast()) - u128::from(net.addr().is_ipv4());
    if first > last {
        return None;
    }
    let start = from_u128(first, net.addr().is_ipv4());
    let end = from_u128(last, net.addr().is_ipv4());
    Some(IpRange { start, end })
}

/// Returns the gateway Neutron picks when none is given: the first host
/// address, or none when the subnet has no host addresses.
pub fn default_gateway(net: &IpNet) -> Option<IpAddr> {
    host_range(net).map(|range| range.start)
}

pub(crate) fn to_u128(address: IpAddr) -> u128 {
    match address {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// Converts back what `to_u128` produced. For IPv4, `value` must fit in 32 bits, which
/// holds for every value derived from an IPv4 range in this module.
pub(crate) fn from_u128(value: u128, ipv4: bool) -> IpAddr {
    if ipv4 {
        IpAddr::V4(Ipv4Addr::from(u32::try_from(value).unwrap_or(u32::MAX)))
    } else {
        IpAddr::V6(Ipv6Addr::from(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn cidr_parses_both_versions() {
        assert_eq!(
            parse_cidr("10.0.0.0/24", 4).unwrap().to_string(),
            "10.0.0.0/24"
        );
        assert_eq!(parse_cidr("fd00::/64", 6).unwrap().to_string(), "fd00::/64");
    }

    #[test]
    fn cidr_with_host_bits_suggests_network() {
        let error = parse_cidr("10.0.0.1/24", 4).unwrap_err();
        assert_eq!(
            error,
            IpamError::HostBitsSet {
                cidr: "10.0.0.1/24".into(),
                recommended: "10.0.0.0/24".into()
            }
        );
    }

    #[test]
    fn cidr_garbage_and_bad_prefix_are_rejected() {
        for text in ["10.0.0.0/33", "10.0.0/24", "nonsense", "10.0.0.0", ""] {
            assert!(
                matches!(parse_cidr(text, 4), Err(IpamError::InvalidCidr { .. })),
                "{text}"
            );
        }
    }

    #[test]
    fn cidr_version_must_match() {
        assert!(matches!(
            parse_cidr("10.0.0.0/24", 6),
            Err(IpamError::CidrVersionMismatch { .. })
        ));
        assert!(matches!(
            parse_cidr("fd00::/64", 4),
            Err(IpamError::CidrVersionMismatch { .. })
        ));
    }

    #[test]
    fn host_range_excludes_network_and_broadcast() {
        let range = host_range(&parse_cidr("10.0.0.0/24", 4).unwrap()).unwrap();
        assert_eq!(range.start, ip("10.0.0.1"));
        assert_eq!(range.end, ip("10.0.0.254"));
    }

    #[test]
    fn host_range_of_ipv6_keeps_last_address() {
        let range = host_range(&parse_cidr("fd00::/120", 6).unwrap()).unwrap();
        assert_eq!(range.start, ip("fd00::1"));
        assert_eq!(range.end, ip("fd00::ff"));
    }

    #[test]
    fn tiny_subnets_have_no_hosts() {
        assert_eq!(host_range(&parse_cidr("10.0.0.0/31", 4).unwrap()), None);
        assert_eq!(host_range(&parse_cidr("10.0.0.4/32", 4).unwrap()), None);
        assert_eq!(
            default_gateway(&parse_cidr("fd00::1/128", 6).unwrap()),
            None
        );
        assert!(host_range(&parse_cidr("10.0.0.0/30", 4).unwrap()).is_some());
    }

    #[test]
    fn default_gateway_is_first_host() {
        assert_eq!(
            default_gateway(&parse_cidr("192.168.1.0/24", 4).unwrap()),
            Some(ip("192.168.1.1"))
        );
        assert_eq!(
            default_gateway(&parse_cidr("fd00:1::/64", 6).unwrap()),
            Some(ip("fd00:1::1"))
        );
    }

    #[test]
    fn range_parse_rejects_reversed_and_mixed() {
        assert!(matches!(
            IpRange::parse("10.0.0.9", "10.0.0.2"),
            Err(IpamError::InvalidPool { .. })
        ));
        assert!(matches!(
            IpRange::parse("10.0.0.2", "fd00::9"),
            Err(IpamError::InvalidPool { .. })
        ));
        assert!(matches!(
            IpRange::parse("10.0.0.x", "10.0.0.9"),
            Err(IpamError::InvalidAddress { .. })
        ));
        let range = IpRange::parse("10.0.0.2", "10.0.0.9").unwrap();
        assert_eq!(range.to_string(), "10.0.0.2-10.0.0.9");
    }

    #[test]
    fn range_overlap_and_containment() {
        let a = IpRange::parse("10.0.0.2", "10.0.0.9").unwrap();
        let b = IpRange::parse("10.0.0.9", "10.0.0.20").unwrap();
        let c = IpRange::parse("10.0.0.10", "10.0.0.20").unwrap();
        assert!(a.overlaps(&b));
        assert!(!a.overlaps(&c));
        assert!(a.contains(ip("10.0.0.9")));
        assert!(!a.contains(ip("10.0.0.10")));
        assert!(!a.contains(ip("::a")));
    }
}
