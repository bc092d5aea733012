//! Choosing fixed IPs: the lowest free address of a subnet's pools, or a
//! specific address a client asked for.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;

use super::{from_u128, to_u128, IpRange, IpamError};

/// Returns the lowest address in `pools` that is not in `used`. Pools are
/// tried in address order, so the choice is deterministic.
pub fn next_free_address(
    subnet_id: &str,
    pools: &[IpRange],
    used: &BTreeSet<IpAddr>,
) -> Result<IpAddr, IpamError> {
    let mut ordered: Vec<&IpRange> = pools.iter().collect();
    ordered.sort_by_key(|pool| to_u128(pool.start));
    for pool in ordered {
        if let Some(address) = first_gap(pool, used) {
            return Ok(address);
        }
    }
    Err(IpamError::PoolsExhausted {
        subnet_id: subnet_id.to_owned(),
    })
}

// Walks the used addresses inside `pool` in order; the first one above the
// cursor leaves a gap at the cursor. Costs O(used in pool), not O(pool size).
fn first_gap(pool: &IpRange, used: &BTreeSet<IpAddr>) -> Option<IpAddr> {
    let ipv4 = pool.start.is_ipv4();
    let end = to_u128(pool.end);
    let mut candidate = to_u128(pool.start);
    for taken in used.range(pool.start..=pool.end) {
        let taken = to_u128(*taken);
        if taken > candidate {
            break;
        }
        if taken == end {
            return None;
        }
        candidate = taken + 1;
    }
    Some(from_u128(candidate, ipv4))
}

/// Checks that `address`, requested for a port, may be given out on subnet
/// `net`: it must be a host address of the subnet (inside or outside the
/// pools, as Neutron allows) and not in `used`.
pub fn check_requested_address(
    subnet_id: &str,
    net: &IpNet,
    address: IpAddr,
    used: &BTreeSet<IpAddr>,
) -> Result<(), IpamError> {
    let reserved_v4 = address.is_ipv4() && (address == net.network() || address == net.broadcast());
    let reserved_v6 = !address.is_ipv4() && address == net.network();
    if !net.contains(&address) || reserved_v4 || reserved_v6 {
        return Err(IpamError::AddressNotInSubnet {
            address: address.to_string(),
        });
    }
    if used.contains(&address) {
        return Err(IpamError::AddressAlreadyAllocated {
            address: address.to_string(),
            subnet_id: subnet_id.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::parse_cidr;
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn used(addresses: &[&str]) -> BTreeSet<IpAddr> {
        addresses.iter().map(|a| ip(a)).collect()
    }

    fn range(start: &str, end: &str) -> IpRange {
        IpRange::parse(start, end).unwrap()
    }

    #[test]
    fn first_address_of_empty_pool() {
        let pools = [range("10.0.0.2", "10.0.0.254")];
        assert_eq!(
            next_free_address("s", &pools, &used(&[])),
            Ok(ip("10.0.0.2"))
        );
    }

    #[test]
    fn lowest_gap_is_chosen() {
        let pools = [range("10.0.0.2", "10.0.0.254")];
        let taken = used(&["10.0.0.2", "10.0.0.3", "10.0.0.5", "10.0.0.1", "10.0.1.9"]);
        assert_eq!(next_free_address("s", &pools, &taken), Ok(ip("10.0.0.4")));
    }

    #[test]
    fn pools_are_tried_in_address_order() {
        let pools = [
            range("10.0.0.100", "10.0.0.110"),
            range("10.0.0.10", "10.0.0.11"),
        ];
        assert_eq!(
            next_free_address("s", &pools, &used(&["10.0.0.10"])),
            Ok(ip("10.0.0.11"))
        );
        let full_first = used(&["10.0.0.10", "10.0.0.11"]);
        assert_eq!(
            next_free_address("s", &pools, &full_first),
            Ok(ip("10.0.0.100"))
        );
    }

    #[test]
    fn exhausted_pools_fail_with_subnet_named() {
        let pools = [range("10.0.0.2", "10.0.0.3")];
        let error =
            next_free_address("sub-1", &pools, &used(&["10.0.0.2", "10.0.0.3"])).unwrap_err();
        assert_eq!(error.neutron_type(), "IpAddressGenerationFailure");
        assert!(error.to_string().contains("sub-1"), "{error}");
        let error = next_free_address("sub-1", &[], &used(&[])).unwrap_err();
        assert_eq!(
            error,
            IpamError::PoolsExhausted {
                subnet_id: "sub-1".into()
            }
        );
    }

    #[test]
    fn last_address_of_pool_is_allocatable() {
        let pools = [range("10.0.0.2", "10.0.0.4")];
        assert_eq!(
            next_free_address("s", &pools, &used(&["10.0.0.2", "10.0.0.3"])),
            Ok(ip("10.0.0.4"))
        );
    }

    #[test]
    fn ipv6_allocation() {
        let pools = [range("fd00::2", "fd00::ffff")];
        assert_eq!(
            next_free_address("s", &pools, &used(&["fd00::2"])),
            Ok(ip("fd00::3"))
        );
    }

    #[test]
    fn requested_address_checks() {
        let net = parse_cidr("10.0.0.0/24", 4).unwrap();
        let taken = used(&["10.0.0.7"]);
        assert_eq!(
            check_requested_address("s", &net, ip("10.0.0.8"), &taken),
            Ok(())
        );
        // Outside the pools but inside the CIDR is allowed (a router's gateway port).
        assert_eq!(
            check_requested_address("s", &net, ip("10.0.0.1"), &taken),
            Ok(())
        );

        let error = check_requested_address("s", &net, ip("10.0.0.7"), &taken).unwrap_err();
        assert_eq!(error.neutron_type(), "IpAddressAlreadyAllocated");

        for outside in ["10.0.1.1", "10.0.0.0", "10.0.0.255", "fd00::1"] {
            let error = check_requested_address("s", &net, ip(outside), &taken).unwrap_err();
            assert_eq!(error.neutron_type(), "InvalidIpForSubnet", "{outside}");
        }
    }
}
