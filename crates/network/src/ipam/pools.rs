//! Allocation pools and gateways: the defaults Neutron derives from a CIDR,
//! and the checks on what a client asks for instead.

use std::net::IpAddr;

use ipnet::IpNet;

use super::{from_u128, host_range, to_u128, IpRange, IpamError};

/// Returns the pools Neutron creates when none are given: every host
/// address of `net` except the gateway, so a gateway inside the range splits
/// it in two.
pub fn default_pools(net: &IpNet, gateway: Option<IpAddr>) -> Vec<IpRange> {
    let Some(hosts) = host_range(net) else {
        return Vec::new();
    };
    let Some(gateway) = gateway.filter(|g| hosts.contains(*g)) else {
        return vec![hosts];
    };
    let ipv4 = gateway.is_ipv4();
    let mut pools = Vec::new();
    if gateway != hosts.start {
        pools.push(IpRange {
            start: hosts.start,
            end: from_u128(to_u128(gateway) - 1, ipv4),
        });
    }
    if gateway != hosts.end {
        pools.push(IpRange {
            start: from_u128(to_u128(gateway) + 1, ipv4),
            end: hosts.end,
        });
    }
    pools
}

/// Checks a gateway for `net`: it must be of the subnet's IP version and,
/// on IPv4, neither the network nor the broadcast address. A gateway outside
/// the CIDR is allowed, as in Neutron (an on-link router elsewhere).
pub fn validate_gateway(net: &IpNet, gateway: IpAddr) -> Result<(), IpamError> {
    if gateway.is_ipv4() != net.addr().is_ipv4() {
        return Err(IpamError::AddressVersionMismatch {
            address: gateway.to_string(),
            cidr: net.to_string(),
        });
    }
    let reserved = net.addr().is_ipv4() && (gateway == net.network() || gateway == net.broadcast());
    if reserved {
        return Err(IpamError::GatewayNotUsable {
            gateway: gateway.to_string(),
            cidr: net.to_string(),
        });
    }
    Ok(())
}

/// Checks requested pools against `net` and `gateway`, in Neutron's order:
/// each pool's IP version, each pool within the host addresses, no two pools
/// overlapping, and the gateway in no pool.
pub fn validate_pools(
    net: &IpNet,
    pools: &[IpRange],
    gateway: Option<IpAddr>,
) -> Result<(), IpamError> {
    let hosts = host_range(net);
    for pool in pools {
        if pool.start.is_ipv4() != net.addr().is_ipv4() {
            return Err(IpamError::InvalidPool {
                pool: pool.to_string(),
            });
        }
        let inside = hosts.is_some_and(|h| h.contains(pool.start) && h.contains(pool.end));
        if !inside {
            return Err(IpamError::PoolOutOfBounds {
                pool: pool.to_string(),
                cidr: net.to_string(),
            });
        }
    }

    for (index, first) in pools.iter().enumerate() {
        if let Some(second) = pools[index + 1..]
            .iter()
            .find(|other| first.overlaps(other))
        {
            return Err(IpamError::OverlappingPools {
                first: first.to_string(),
                second: second.to_string(),
                cidr: net.to_string(),
            });
        }
    }

    if let Some(gateway) = gateway {
        if let Some(pool) = pools.iter().find(|pool| pool.contains(gateway)) {
            return Err(IpamError::GatewayInPool {
                gateway: gateway.to_string(),
                pool: pool.to_string(),
            });
        }
    }
    Ok(())
}

/// Rejects `net` when it overlaps any of `existing`, the other subnets of
/// network `network_id`.
pub fn check_subnet_overlap(
    net: &IpNet,
    network_id: &str,
    existing: &[IpNet],
) -> Result<(), IpamError> {
    let overlaps = existing
        .iter()
        .any(|other| other.contains(net) || net.contains(other));
    if overlaps {
        return Err(IpamError::SubnetOverlap {
            cidr: net.to_string(),
            network_id: network_id.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::parse_cidr;
    use super::*;

    fn net(text: &str) -> IpNet {
        let version = if text.contains(':') { 6 } else { 4 };
        parse_cidr(text, version).unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn range(start: &str, end: &str) -> IpRange {
        IpRange::parse(start, end).unwrap()
    }

    #[test]
    fn default_pool_skips_first_host_gateway() {
        let pools = default_pools(&net("10.0.0.0/24"), Some(ip("10.0.0.1")));
        assert_eq!(pools, vec![range("10.0.0.2", "10.0.0.254")]);
    }

    #[test]
    fn default_pool_without_gateway_is_all_hosts() {
        let pools = default_pools(&net("10.0.0.0/24"), None);
        assert_eq!(pools, vec![range("10.0.0.1", "10.0.0.254")]);
    }

    #[test]
    fn gateway_in_middle_splits_pool() {
        let pools = default_pools(&net("10.0.0.0/24"), Some(ip("10.0.0.100")));
        assert_eq!(
            pools,
            vec![
                range("10.0.0.1", "10.0.0.99"),
                range("10.0.0.101", "10.0.0.254")
            ]
        );
    }

    #[test]
    fn gateway_at_end_or_outside_keeps_one_pool() {
        let pools = default_pools(&net("10.0.0.0/24"), Some(ip("10.0.0.254")));
        assert_eq!(pools, vec![range("10.0.0.1", "10.0.0.253")]);
        let pools = default_pools(&net("10.0.0.0/24"), Some(ip("192.168.0.1")));
        assert_eq!(pools, vec![range("10.0.0.1", "10.0.0.254")]);
    }

    #[test]
    fn ipv6_default_pool_runs_to_last_address() {
        let pools = default_pools(&net("fd00::/64"), Some(ip("fd00::1")));
        assert_eq!(pools, vec![range("fd00::2", "fd00::ffff:ffff:ffff:ffff")]);
    }

    #[test]
    fn tiny_subnet_has_no_default_pool() {
        assert!(default_pools(&net("10.0.0.0/31"), None).is_empty());
    }

    #[test]
    fn valid_pools_pass() {
        let pools = [
            range("10.0.0.10", "10.0.0.20"),
            range("10.0.0.30", "10.0.0.254"),
        ];
        assert_eq!(
            validate_pools(&net("10.0.0.0/24"), &pools, Some(ip("10.0.0.1"))),
            Ok(())
        );
    }

    #[test]
    fn pool_outside_cidr_is_out_of_bounds() {
        let error = validate_pools(
            &net("10.0.0.0/24"),
            &[range("10.0.1.10", "10.0.1.20")],
            None,
        )
        .unwrap_err();
        assert_eq!(error.neutron_type(), "OutOfBoundsAllocationPool");
        assert_eq!(
            error.to_string(),
            "The allocation pool 10.0.1.10-10.0.1.20 spans beyond the subnet cidr 10.0.0.0/24."
        );
    }

    #[test]
    fn pool_on_reserved_address_out_of_bounds() {
        for (start, end) in [("10.0.0.0", "10.0.0.5"), ("10.0.0.200", "10.0.0.255")] {
            let error =
                validate_pools(&net("10.0.0.0/24"), &[range(start, end)], None).unwrap_err();
            assert!(
                matches!(error, IpamError::PoolOutOfBounds { .. }),
                "{start}-{end}: {error}"
            );
        }
    }

    #[test]
    fn pool_of_other_version_is_invalid() {
        let error =
            validate_pools(&net("10.0.0.0/24"), &[range("fd00::2", "fd00::9")], None).unwrap_err();
        assert_eq!(error.neutron_type(), "InvalidAllocationPool");
    }

    #[test]
    fn overlapping_pools_are_rejected() {
        let pools = [
            range("10.0.0.10", "10.0.0.20"),
            range("10.0.0.20", "10.0.0.30"),
        ];
        let error = validate_pools(&net("10.0.0.0/24"), &pools, None).unwrap_err();
        assert_eq!(error.neutron_type(), "OverlappingAllocationPools");
        assert_eq!(
            error.to_string(),
            "Found overlapping allocation pools: 10.0.0.10-10.0.0.20 10.0.0.20-10.0.0.30 for subnet 10.0.0.0/24."
        );
    }

    #[test]
    fn gateway_inside_pool_conflicts() {
        let error = validate_pools(
            &net("10.0.0.0/24"),
            &[range("10.0.0.1", "10.0.0.50")],
            Some(ip("10.0.0.1")),
        )
        .unwrap_err();
        assert_eq!(error.neutron_type(), "GatewayConflictWithAllocationPools");
        assert_eq!(
            error.to_string(),
            "Gateway ip 10.0.0.1 conflicts with allocation pool 10.0.0.1-10.0.0.50."
        );
    }

    #[test]
    fn gateway_checks() {
        let subnet = net("10.0.0.0/24");
        assert_eq!(validate_gateway(&subnet, ip("10.0.0.1")), Ok(()));
        assert_eq!(validate_gateway(&subnet, ip("172.16.0.1")), Ok(()));
        assert!(matches!(
            validate_gateway(&subnet, ip("10.0.0.0")),
            Err(IpamError::GatewayNotUsable { .. })
        ));
        assert!(matches!(
            validate_gateway(&subnet, ip("10.0.0.255")),
            Err(IpamError::GatewayNotUsable { .. })
        ));
        assert!(matches!(
            validate_gateway(&subnet, ip("fd00::1")),
            Err(IpamError::AddressVersionMismatch { .. })
        ));
        // IPv6 has no broadcast; the subnet-router anycast address may route.
        assert_eq!(validate_gateway(&net("fd00::/64"), ip("fd00::")), Ok(()));
    }

    #[test]
    fn subnet_overlap_both_directions() {
        let existing = [net("10.0.0.0/24")];
        for candidate in ["10.0.0.0/25", "10.0.0.0/16", "10.0.0.0/24"] {
            let error = check_subnet_overlap(&net(candidate), "n1", &existing).unwrap_err();
            assert_eq!(error.neutron_type(), "InvalidInput", "{candidate}");
            assert!(
                error.to_string().contains("overlaps with another subnet"),
                "{candidate}"
            );
        }
        assert_eq!(
            check_subnet_overlap(&net("10.0.1.0/24"), "n1", &existing),
            Ok(())
        );
        assert_eq!(
            check_subnet_overlap(&net("fd00::/64"), "n1", &existing),
            Ok(())
        );
    }
}
