//! Parsing and checking the attributes of a subnet request: CIDR, gateway,
//! allocation pools, DNS servers, host routes and IPv6 modes.

use std::net::IpAddr;

use ipnet::IpNet;
use oxstack_core::ApiError;
use serde_json::{Map, Value};

use super::body::{self, invalid_attribute};
use crate::ipam::{self, IpRange, IpamError};
use crate::model::HostRoute;

/// Neutron's default `max_dns_nameservers` and `max_subnet_host_routes`.
pub const MAX_DNS_NAMESERVERS: usize = 5;
pub const MAX_HOST_ROUTES: usize = 20;
const IPV6_MODES: &[&str] = &["slaac", "dhcpv6-stateful", "dhcpv6-stateless"];

/// Parses `cidr` for `ip_version`. A malformed CIDR is a bad attribute; a
/// CIDR of the other IP version is `InvalidInput`.
pub fn cidr(text: &str, ip_version: u8) -> Result<IpNet, ApiError> {
    ipam::parse_cidr(text, ip_version).map_err(|error| match error {
        IpamError::InvalidCidr { .. } | IpamError::HostBitsSet { .. } => {
            invalid_attribute("cidr", &error)
        }
        other => other.into(),
    })
}

/// Reads `gateway_ip`: `None` when absent, `Some(None)` for JSON null.
pub fn gateway(
    object: &Map<String, Value>,
    net: &IpNet,
) -> Result<Option<Option<IpAddr>>, ApiError> {
    let Some(requested) = body::nullable_string(object, "gateway_ip")? else {
        return Ok(None);
    };
    let Some(text) = requested else {
        return Ok(Some(None));
    };
    let address =
        ipam::parse_address(&text).map_err(|error| invalid_attribute("gateway_ip", error))?;
    ipam::validate_gateway(net, address)?;
    Ok(Some(Some(address)))
}

/// Reads `allocation_pools`, a list of `{"start", "end"}` objects. Their
/// placement in the subnet is checked by `ipam::validate_pools`.
pub fn pools(object: &Map<String, Value>) -> Result<Option<Vec<IpRange>>, ApiError> {
    let Some(value) = object.get("allocation_pools") else {
        return Ok(None);
    };
    let Value::Array(items) = value else {
        return Err(invalid_attribute(
            "allocation_pools",
            format!("'{value}' is not a list"),
        ));
    };
    let mut pools = Vec::with_capacity(items.len());
    for item in items {
        let (Some(start), Some(end)) = (item["start"].as_str(), item["end"].as_str()) else {
            return Err(invalid_attribute(
                "allocation_pools",
                format!("'{item}' must be an object with 'start' and 'end' addresses"),
            ));
        };
        let pool = IpRange::parse(start, end).map_err(|error| match error {
            IpamError::InvalidAddress { .. } => invalid_attribute("allocation_pools", error),
            other => other.into(),
        })?;
        pools.push(pool);
    }
    Ok(Some(pools))
}

/// Reads `dns_nameservers`: distinct IP addresses, at most
/// `MAX_DNS_NAMESERVERS`.
pub fn dns_nameservers(
    object: &Map<String, Value>,
    subnet_id: &str,
) -> Result<Option<Vec<String>>, ApiError> {
    let Some(servers) = body::string_list(object, "dns_nameservers")? else {
        return Ok(None);
    };
    for (index, server) in servers.iter().enumerate() {
        if server.parse::<IpAddr>().is_err() {
            return Err(invalid_attribute(
                "dns_nameservers",
                format!("'{server}' is not a valid nameserver"),
            ));
        }
        if servers[..index].contains(server) {
            return Err(invalid_attribute(
                "dns_nameservers",
                format!("Duplicate nameserver '{server}'"),
            ));
        }
    }
    if servers.len() > MAX_DNS_NAMESERVERS {
        return Err(ApiError::bad_request(format!(
            "Unable to complete operation for {subnet_id}. The number of DNS nameservers exceeds the limit {MAX_DNS_NAMESERVERS}."
        ))
        .with_type("DNSNameServersExhausted"));
    }
    Ok(Some(servers))
}

/// Reads `host_routes`: distinct `{"destination": CIDR, "nexthop": IP}`
/// objects, at most `MAX_HOST_ROUTES`.
pub fn host_routes(
    object: &Map<String, Value>,
    subnet_id: &str,
) -> Result<Option<Vec<HostRoute>>, ApiError> {
    let Some(value) = object.get("host_routes") else {
        return Ok(None);
    };
    let routes: Vec<HostRoute> = serde_json::from_value(value.clone()).map_err(|_| {
        invalid_attribute(
            "host_routes",
            format!("'{value}' must be a list of objects with 'destination' and 'nexthop'"),
        )
    })?;
    for (index, route) in routes.iter().enumerate() {
        if route.destination.parse::<IpNet>().is_err() {
            return Err(invalid_attribute(
                "host_routes",
                format!("'{}' is not a valid IP subnet", route.destination),
            ));
        }
        if route.nexthop.parse::<IpAddr>().is_err() {
            return Err(invalid_attribute(
                "host_routes",
                format!("'{}' is not a valid IP address", route.nexthop),
            ));
        }
        if routes[..index].contains(route) {
            return Err(invalid_attribute(
                "host_routes",
                format!(
                    "Duplicate hostroute '{} via {}'",
                    route.destination, route.nexthop
                ),
            ));
        }
    }
    if routes.len() > MAX_HOST_ROUTES {
        return Err(ApiError::bad_request(format!(
            "Unable to complete operation for {subnet_id}. The number of host routes exceeds the limit {MAX_HOST_ROUTES}."
        ))
        .with_type("HostRoutesExhausted"));
    }
    Ok(Some(routes))
}

/// Reads `ipv6_ra_mode` and `ipv6_address_mode`: only on IPv6 subnets, and
/// equal when both are set.
pub fn ipv6_modes(
    object: &Map<String, Value>,
    ip_version: u8,
) -> Result<(Option<String>, Option<String>), ApiError> {
    let mut modes = [None, None];
    for (slot, key) in modes.iter_mut().zip(["ipv6_ra_mode", "ipv6_address_mode"]) {
        if let Some(Some(mode)) = body::nullable_string(object, key)? {
            if !IPV6_MODES.contains(&mode.as_str()) {
                return Err(invalid_attribute(
                    key,
                    format!("'{mode}' is not in {IPV6_MODES:?}"),
                ));
            }
            *slot = Some(mode);
        }
    }
    let [ra_mode, address_mode] = modes;
    if ip_version == 4 && (ra_mode.is_some() || address_mode.is_some()) {
        return Err(invalid_input(
            "ipv6_ra_mode and ipv6_address_mode cannot be set on an IPv4 subnet".into(),
        ));
    }
    if let (Some(ra), Some(address)) = (&ra_mode, &address_mode) {
        if ra != address {
            return Err(invalid_input(format!(
                "ipv6_ra_mode set to '{ra}' with ipv6_address_mode set to '{address}' is not valid. \
                 If both attributes are set, they must be the same value"
            )));
        }
    }
    Ok((ra_mode, address_mode))
}

/// Neutron's `InvalidInput` error with `message`.
fn invalid_input(message: String) -> ApiError {
    ApiError::bad_request(format!("Invalid input for operation: {message}."))
        .with_type("InvalidInput")
}

/// Refuses, as Neutron does, a subnet with DHCP on that dnsmasq cannot
/// serve: one with no room for a DHCP port beside a client (IPv4 longer
/// than /30, IPv6 longer than /126), or a multicast or loopback range.
pub fn check_dhcp_range(cidr: &IpNet) -> Result<(), ApiError> {
    let too_long = match cidr {
        IpNet::V4(net) => net.prefix_len() > 30,
        IpNet::V6(net) => net.prefix_len() > 126,
    };
    if too_long {
        return Err(invalid_input(
            "Subnet has a prefix length that is incompatible with DHCP service enabled".into(),
        ));
    }
    if cidr.network().is_multicast() {
        return Err(invalid_input(
            "Multicast IP subnet is not supported if enable_dhcp is True".into(),
        ));
    }
    if cidr.network().is_loopback() {
        return Err(invalid_input(
            "Loopback IP subnet is not supported if enable_dhcp is True".into(),
        ));
    }
    Ok(())
}

/// Refuses an IPv6 subnet whose addresses are built from the MAC (SLAAC
/// or DHCPv6-stateless) unless its prefix is /64, which EUI-64 needs.
pub fn check_ipv6_auto_prefix(
    cidr: &IpNet,
    ra_mode: Option<&str>,
    address_mode: Option<&str>,
) -> Result<(), ApiError> {
    let automatic = [ra_mode, address_mode]
        .into_iter()
        .flatten()
        .any(|mode| mode == "slaac" || mode == "dhcpv6-stateless");
    if automatic && cidr.prefix_len() != 64 {
        return Err(invalid_input(format!(
            "Invalid CIDR {cidr} for IPv6 address mode. OpenStack uses the EUI-64 address format, which \
             requires the prefix to be /64"
        )));
    }
    Ok(())
}
