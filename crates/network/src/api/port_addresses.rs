//! Choosing the fixed IPs of a port from its network's subnets, as
//! Neutron's IPAM does. Callers choose and store inside one transaction
//! that first locks the network's row, so concurrent requests on a network
//! choose one after the other. The unique key on (subnet, address) is the
//! backstop: a choice that collides anyway is rejected and made again.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv6Addr};

use ipnet::IpNet;
use oxstack_core::ApiError;

use super::db_error;
use super::port_input::IpRequest;
use crate::db;
use crate::ipam::{self, IpamError};
use crate::model::{FixedIp, NetworkId, Subnet, SubnetId};
use crate::NetworkService;

/// Addresses in use, per subnet.
pub type UsedAddresses = HashMap<SubnetId, BTreeSet<IpAddr>>;

/// Loads the addresses in use on `subnets`, leaving out `own` (the
/// addresses of the port being updated, which it may keep).
pub async fn load_used(
    db: &mut sqlx::AnyConnection,
    subnets: &[Subnet],
    own: &[FixedIp],
) -> Result<UsedAddresses, sqlx::Error> {
    let mut used = UsedAddresses::new();
    for subnet in subnets {
        let mut addresses = db::ports::used_addresses(&mut *db, &subnet.id).await?;
        for fixed_ip in own.iter().filter(|f| f.subnet_id == subnet.id) {
            addresses.remove(&fixed_ip.ip_address);
        }
        used.insert(subnet.id.clone(), addresses);
    }
    Ok(used)
}

fn is_slaac(subnet: &Subnet) -> bool {
    matches!(
        subnet.ipv6_address_mode.as_deref(),
        Some("slaac") | Some("dhcpv6-stateless")
    )
}

/// Returns the EUI-64 address that a host with `mac` configures itself on
/// an IPv6 /64 by SLAAC (RFC 4291 appendix A).
pub fn eui64(net: &IpNet, mac: &str) -> Option<IpAddr> {
    let IpNet::V6(net) = net else { return None };
    let bytes: Vec<u8> = mac
        .split(':')
        .map(|octet| u8::from_str_radix(octet, 16))
        .collect::<Result<_, _>>()
        .ok()?;
    let [m0, m1, m2, m3, m4, m5] = <[u8; 6]>::try_from(bytes).ok()?;
    let interface_id = u64::from_be_bytes([m0 ^ 0x02, m1, m2, 0xff, 0xfe, m3, m4, m5]);
    let prefix = u128::from(net.network()) & !u128::from(u64::MAX);
    Some(IpAddr::V6(Ipv6Addr::from(
        prefix | u128::from(interface_id),
    )))
}

fn invalid_subnet(network_id: &NetworkId, subnet_id: &SubnetId) -> ApiError {
    ApiError::bad_request(format!(
        "Invalid input for operation: Failed to create port on network {network_id}, because \
         fixed_ips included invalid subnet {subnet_id}."
    ))
    .with_type("InvalidInput")
}

fn subnet_not_found(id: &SubnetId) -> ApiError {
    ApiError::not_found(format!("Subnet {id} could not be found.")).with_type("SubnetNotFound")
}

/// Chooses the fixed IPs of a port with MAC `mac` on `network_id`.
/// Without `requests`, the port gets one address from the first IPv4
/// subnet that has one free, one from the first stateful IPv6 subnet that
/// has one, and its EUI-64 address on every SLAAC subnet.
pub fn plan(
    network_id: &NetworkId,
    subnets: &[Subnet],
    requests: Option<&[IpRequest]>,
    mac: &str,
    used: &mut UsedAddresses,
) -> Result<Vec<FixedIp>, ApiError> {
    match requests {
        Some(requests) => requests
            .iter()
            .map(|request| plan_one(network_id, subnets, request, mac, used))
            .collect(),
        None => plan_default(network_id, subnets, mac, used),
    }
}

fn plan_default(
    network_id: &NetworkId,
    subnets: &[Subnet],
    mac: &str,
    used: &mut UsedAddresses,
) -> Result<Vec<FixedIp>, ApiError> {
    let mut fixed_ips = Vec::new();
    for subnet in subnets.iter().filter(|s| is_slaac(s)) {
        if let Some(address) = eui64(&subnet.cidr, mac) {
            take(used, subnet, address, &mut fixed_ips);
        }
    }
    let mut exhausted = false;
    for ip_version in [4, 6] {
        let candidates: Vec<&Subnet> = subnets
            .iter()
            .filter(|s| s.ip_version == ip_version && !is_slaac(s))
            .collect();
        let chosen = candidates.iter().find_map(|subnet| {
            let in_use = used.get(&subnet.id).cloned().unwrap_or_default();
            ipam::next_free_address(subnet.id.as_str(), &subnet.allocation_pools, &in_use)
                .ok()
                .map(|address| (*subnet, address))
        });
        match chosen {
            Some((subnet, address)) => take(used, subnet, address, &mut fixed_ips),
            None => exhausted |= !candidates.is_empty(),
        }
    }
    // Neutron fails only when no subnet of the network can give an address.
    if fixed_ips.is_empty() && exhausted {
        return Err(ApiError::conflict(format!(
            "No more IP addresses available on network {network_id}."
        ))
        .with_type("IpAddressGenerationFailure"));
    }
    Ok(fixed_ips)
}

fn take(used: &mut UsedAddresses, subnet: &Subnet, address: IpAddr, out: &mut Vec<FixedIp>) {
    used.entry(subnet.id.clone()).or_default().insert(address);
    out.push(FixedIp {
        subnet_id: subnet.id.clone(),
        ip_address: address,
    });
}

fn plan_one(
    network_id: &NetworkId,
    subnets: &[Subnet],
    request: &IpRequest,
    mac: &str,
    used: &mut UsedAddresses,
) -> Result<FixedIp, ApiError> {
    let subnet =
        match (&request.subnet_id, request.ip_address) {
            (Some(subnet_id), _) => subnets
                .iter()
                .find(|s| &s.id == subnet_id)
                .ok_or_else(|| invalid_subnet(network_id, subnet_id))?,
            (None, Some(address)) => subnets
                .iter()
                .find(|s| s.cidr.contains(&address))
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "IP address {address} is not a valid IP for any of the subnets on the \
                     specified network."
                    ))
                    .with_type("InvalidIpForNetwork")
                })?,
            (None, None) => return Err(ApiError::bad_request(
                "Invalid input for operation: a fixed IP needs 'subnet_id', 'ip_address' or both.",
            )
            .with_type("InvalidInput")),
        };
    let in_use = used.get(&subnet.id).cloned().unwrap_or_default();
    let address = match request.ip_address {
        Some(address) => {
            ipam::check_requested_address(subnet.id.as_str(), &subnet.cidr, address, &in_use)?;
            address
        }
        None if is_slaac(subnet) => eui64(&subnet.cidr, mac).ok_or_else(|| {
            ApiError::from(IpamError::PoolsExhausted {
                subnet_id: subnet.id.to_string(),
            })
        })?,
        None => ipam::next_free_address(subnet.id.as_str(), &subnet.allocation_pools, &in_use)?,
    };
    let mut fixed_ips = Vec::new();
    take(used, subnet, address, &mut fixed_ips);
    Ok(fixed_ips.remove(0))
}

/// Returns `SubnetNotFound` for requested subnets that do not exist at all,
/// before `plan` reports those of other networks as invalid input.
pub async fn check_subnets_exist(
    state: &NetworkService,
    requests: Option<&[IpRequest]>,
) -> Result<(), ApiError> {
    for subnet_id in requests
        .unwrap_or_default()
        .iter()
        .filter_map(|r| r.subnet_id.as_ref())
    {
        if db::subnets::get(state.pool(), subnet_id)
            .await
            .map_err(db_error)?
            .is_none()
        {
            return Err(subnet_not_found(subnet_id));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eui64_from_mac() {
        let net: IpNet = "2001:db8::/64".parse().unwrap();
        assert_eq!(
            eui64(&net, "fa:16:3e:12:34:56"),
            Some("2001:db8::f816:3eff:fe12:3456".parse().unwrap())
        );
        assert_eq!(
            eui64(&"10.0.0.0/24".parse().unwrap(), "fa:16:3e:12:34:56"),
            None
        );
    }
}
