//! `network_data.json`: the links, networks and DNS services of an
//! instance's ports, in the shape Nova's `nova/virt/netutils.py`
//! (`get_network_metadata`) gives them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde_json::{json, Map, Value};

use crate::external::{FixedIp, PortInfo};

/// VIF types Nova exposes as the link type; any other type is shown as
/// `phy` (Nova's `LEGACY_EXPOSED_VIF_TYPES`).
const EXPOSED_VIF_TYPES: [&str; 8] = [
    "bridge",
    "dvs",
    "hw_veb",
    "hyperv",
    "ovs",
    "tap",
    "vhostuser",
    "vif",
];

/// Length of a tap device name: `tap` and the first 11 characters of the
/// port id, as Nova and Neutron name it.
const DEVICE_NAME_LEN: usize = 14;

/// Returns the tap device name of port `port_id` (`tap` plus the first 11
/// characters of the id).
pub fn tap_name(port_id: &str) -> String {
    let mut name = format!("tap{port_id}");
    name.truncate(DEVICE_NAME_LEN);
    name
}

/// Builds `network_data.json` for `ports`, in the server's NIC order.
///
/// As in Nova, each port contributes one link and at most one IPv4 and one
/// IPv6 network, from its first address of each version. A subnet with
/// DHCP enabled appears as `ipv4_dhcp`/`ipv6_dhcp` without an address, so
/// the guest configures it with DHCP. A server without ports gets `{}`.
pub fn network_data(ports: &[PortInfo]) -> Value {
    if ports.is_empty() {
        return json!({});
    }

    let mut links = Vec::new();
    let mut networks = Vec::new();
    let mut services: Vec<Value> = Vec::new();
    let mut network_index = 0;

    for port in ports {
        let first_v4 = port.fixed_ips.iter().find(|ip| ip.ip_version == 4);
        let first_v6 = port.fixed_ips.iter().find(|ip| ip.ip_version == 6);
        if first_v4.is_none() && first_v6.is_none() {
            continue;
        }

        let link_id = tap_name(&port.id);
        links.push(link(port, &link_id));

        for fixed_ip in [first_v4, first_v6].into_iter().flatten() {
            networks.push(network(port, fixed_ip, network_index, &link_id));
            network_index += 1;
            for service in dns_services(fixed_ip) {
                if !services.contains(&service) {
                    services.push(service);
                }
            }
        }
    }

    json!({"links": links, "networks": networks, "services": services})
}

fn link(port: &PortInfo, id: &str) -> Value {
    let link_type = if EXPOSED_VIF_TYPES.contains(&port.vif_type.as_str()) {
        port.vif_type.as_str()
    } else {
        "phy"
    };
    // Nova writes null when the network has no MTU; 0 is our "unknown".
    let mtu = if port.mtu == 0 {
        Value::Null
    } else {
        json!(port.mtu)
    };
    json!({
        "id": id,
        "vif_id": port.id,
        "type": link_type,
        "mtu": mtu,
        "ethernet_mac_address": port.mac_address,
    })
}

fn network(port: &PortInfo, fixed_ip: &FixedIp, network_index: usize, link_id: &str) -> Value {
    let id = format!("network{network_index}");
    let version = fixed_ip.ip_version;

    // NOTE: Nova gives an IPv6 subnet with an address mode the type
    // `ipv6_<mode>` and a static address. FixedIp carries no address mode,
    // so a DHCP-enabled IPv6 subnet appears as `ipv6_dhcp`.
    if fixed_ip.enable_dhcp {
        return json!({
            "id": id,
            "type": format!("ipv{version}_dhcp"),
            "link": link_id,
            "network_id": port.network_id,
        });
    }

    let mut routes = Vec::new();
    if let Some(gateway) = fixed_ip.gateway_ip.as_deref().filter(|g| !g.is_empty()) {
        let any = if version == 6 { "::" } else { "0.0.0.0" };
        routes.push(json!({"network": any, "netmask": any, "gateway": gateway}));
    }
    for (destination, nexthop) in &fixed_ip.host_routes {
        match split_cidr(destination) {
            Some((network, netmask)) => {
                routes.push(json!({"network": network, "netmask": netmask, "gateway": nexthop}));
            }
            None => tracing::warn!(
                port_id = %port.id,
                subnet_id = %fixed_ip.subnet_id,
                destination = %destination,
                "host route destination is not a CIDR; network_data.json leaves it out"
            ),
        }
    }

    let mut network = Map::new();
    network.insert("id".into(), json!(id));
    network.insert("type".into(), json!(format!("ipv{version}")));
    network.insert("link".into(), json!(link_id));
    network.insert("ip_address".into(), json!(fixed_ip.ip_address));
    network.insert(
        "netmask".into(),
        split_cidr(&fixed_ip.cidr).map(|(_, mask)| mask).into(),
    );
    network.insert("routes".into(), Value::Array(routes));
    network.insert("network_id".into(), json!(port.network_id));
    network.insert("services".into(), Value::Array(dns_services(fixed_ip)));
    Value::Object(network)
}

fn dns_services(fixed_ip: &FixedIp) -> Vec<Value> {
    fixed_ip
        .dns_nameservers
        .iter()
        .map(|address| json!({"type": "dns", "address": address}))
        .collect()
}

/// Splits `cidr` into its network address (host bits cleared) and its
/// netmask, both as text: `10.0.0.7/24` gives `10.0.0.0` and
/// `255.255.255.0`. `None` when `cidr` is not a valid CIDR.
pub fn split_cidr(cidr: &str) -> Option<(String, String)> {
    let (address, prefix) = cidr.split_once('/')?;
    let prefix: u32 = prefix.parse().ok()?;
    match address.parse::<IpAddr>().ok()? {
        IpAddr::V4(address) if prefix <= 32 => {
            let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
            let network = Ipv4Addr::from(u32::from(address) & mask);
            Some((network.to_string(), Ipv4Addr::from(mask).to_string()))
        }
        IpAddr::V6(address) if prefix <= 128 => {
            let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
            let network = Ipv6Addr::from(u128::from(address) & mask);
            Some((network.to_string(), Ipv6Addr::from(mask).to_string()))
        }
        _ => None,
    }
}
