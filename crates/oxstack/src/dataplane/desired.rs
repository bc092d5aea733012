//! The dataplane's desired state, built from what the network service
//! reports for this host.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use ipnet::{IpNet, Ipv4Net};
use oxstack_netagent::{
    AddressPair, DesiredState, Direction, EtherType, FloatingIpSpec, MacAddr, MetadataSpec,
    NetworkSpec, PortSpec, RouterGateway, RouterInterface, RouterSpec, RuleRemote, SecurityRule,
    SubnetSpec, VxlanSpec,
};
use oxstack_network::inproc::{HostNetwork, HostRouter, HostView};
use oxstack_network::model::{NetworkType, Port, SecurityGroupRule, Subnet};

use super::LEASE_SECONDS;

/// This host's settings, which the desired state depends on besides the
/// network service.
#[derive(Clone, Debug, Default)]
pub struct HostSettings {
    /// This host's VXLAN tunnel endpoint. Without one, VXLAN networks get no
    /// uplink.
    pub tunnel_ip: Option<Ipv4Addr>,
    /// Physical network → host bridge (`[netagent] bridge_mappings`).
    pub bridge_mappings: BTreeMap<String, String>,
    /// The metadata API the proxies forward to. `None` runs no proxy.
    pub metadata: Option<SocketAddr>,
}

/// Builds the desired state of this host from `view`.
pub fn build(view: &HostView, settings: &HostSettings) -> DesiredState {
    let networks = view
        .networks
        .iter()
        .map(|network| network_spec(network, view, settings))
        .collect();
    let routers = view
        .routers
        .iter()
        .filter_map(|router| router_spec(router, view))
        .collect();
    DesiredState {
        networks,
        routers,
        metadata: settings.metadata.map(|upstream| MetadataSpec { upstream }),
    }
}

fn network_spec(
    host_network: &HostNetwork,
    view: &HostView,
    settings: &HostSettings,
) -> NetworkSpec {
    let network = &host_network.network;
    let segment = &network.segment;
    let physical = segment.physical_network.as_deref().unwrap_or_default();
    let bridge = match segment.network_type {
        NetworkType::Flat => settings.bridge_mappings.get(physical).cloned(),
        // NOTE: VLAN networks get their own bridge without an uplink, because the
        // VLAN sub-interface on the mapped bridge is not created yet.
        NetworkType::Vlan | NetworkType::Vxlan => None,
    };
    let vxlan = match (
        segment.network_type,
        segment.segmentation_id,
        settings.tunnel_ip,
    ) {
        (NetworkType::Vxlan, Some(vni), Some(local_ip)) => u32::try_from(vni)
            .ok()
            .map(|vni| VxlanSpec { vni, local_ip }),
        (NetworkType::Vxlan, _, None) => {
            tracing::warn!(network_id = %network.id, "VXLAN network without a tunnel address on this host; it stays local to the host");
            None
        }
        _ => None,
    };

    // dnsmasq serves one IPv4 subnet: the first DHCP subnet on which the
    // DHCP port has an address.
    let served = host_network.dhcp_port.as_ref().and_then(|dhcp_port| {
        host_network
            .subnets
            .iter()
            .filter(|subnet| subnet.enable_dhcp)
            .find_map(|subnet| Some((subnet, port_spec(dhcp_port, Some(subnet), view)?)))
    });
    let ports = host_network
        .ports
        .iter()
        .filter_map(|port| {
            let spec = port_spec(port, served.as_ref().map(|(subnet, _)| *subnet), view);
            if spec.is_none() {
                // NOTE: the tap of a port without an IPv4 address is not put
                // in its bridge, because a port spec needs one.
                tracing::debug!(port_id = %port.id, network_id = %network.id, "port has no IPv4 address; not plugged");
            }
            spec
        })
        .collect();

    let (subnet, dhcp_port) = match served {
        Some((subnet, mut dhcp_port)) => {
            // The DHCP port is Neutron's own and is never filtered.
            dhcp_port.port_security = false;
            let spec = subnet_v4(subnet).map(|cidr| SubnetSpec {
                cidr,
                lease_seconds: LEASE_SECONDS,
                gateway: subnet.gateway_ip.and_then(ipv4),
            });
            (spec, Some(dhcp_port))
        }
        None => (None, None),
    };
    NetworkSpec {
        id: network.id.to_string(),
        mtu: u32::try_from(network.mtu).unwrap_or(1500),
        vxlan: if bridge.is_some() { None } else { vxlan },
        subnet,
        dhcp_port,
        ports,
        bridge,
    }
}

fn router_spec(hosted: &HostRouter, view: &HostView) -> Option<RouterSpec> {
    let subnet_of = |port: &Port| -> Option<(Ipv4Addr, &Subnet)> {
        port.fixed_ips.iter().find_map(|fixed| {
            let ip = ipv4(fixed.ip_address)?;
            let subnet = view
                .networks
                .iter()
                .flat_map(|n| &n.subnets)
                .find(|s| s.id == fixed.subnet_id)?;
            Some((ip, subnet))
        })
    };
    let gateway = hosted.gateway_port.as_ref().and_then(|port| {
        let (ip, subnet) = subnet_of(port)?;
        Some(RouterGateway {
            port_id: port.id.to_string(),
            mac: port.mac_address.parse().ok()?,
            ip,
            cidr: subnet_v4(subnet)?,
            network_id: port.network_id.to_string(),
            gateway_ip: subnet.gateway_ip.and_then(ipv4),
        })
    });
    let interfaces = hosted
        .interface_ports
        .iter()
        .filter_map(|port| {
            let (ip, subnet) = subnet_of(port)?;
            Some(RouterInterface {
                port_id: port.id.to_string(),
                mac: port.mac_address.parse().ok()?,
                ip,
                cidr: subnet_v4(subnet)?,
                network_id: port.network_id.to_string(),
            })
        })
        .collect();
    let floating_ips = hosted
        .floating_ips
        .iter()
        .filter_map(|fip| {
            Some(FloatingIpSpec {
                floating_ip: ipv4(fip.floating_ip_address)?,
                fixed_ip: ipv4(fip.fixed_ip_address?)?,
            })
        })
        .collect();
    Some(RouterSpec {
        id: hosted.router.id.to_string(),
        gateway,
        interfaces,
        floating_ips,
        enable_snat: hosted.router.enable_snat,
    })
}

fn ipv4(address: IpAddr) -> Option<Ipv4Addr> {
    match address {
        IpAddr::V4(ip) => Some(ip),
        IpAddr::V6(_) => None,
    }
}

fn subnet_v4(subnet: &Subnet) -> Option<Ipv4Net> {
    match subnet.cidr {
        IpNet::V4(cidr) => Some(cidr),
        IpNet::V6(_) => None,
    }
}

/// Parses an address or a prefix (`10.0.0.5`, `10.0.0.0/24`) as a network.
fn parse_net(text: &str) -> Option<IpNet> {
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from))
}

/// Returns the spec of `port`. Its leased address is its IPv4 address on
/// `served` when it has one there, else its first IPv4 address.
fn port_spec(port: &Port, served: Option<&Subnet>, view: &HostView) -> Option<PortSpec> {
    let mac: MacAddr = match port.mac_address.parse() {
        Ok(mac) => mac,
        Err(error) => {
            tracing::warn!(port_id = %port.id, error, "port has an invalid MAC address; not plugged");
            return None;
        }
    };
    let addresses: Vec<(Ipv4Addr, bool)> = port
        .fixed_ips
        .iter()
        .filter_map(|fixed| {
            Some((
                ipv4(fixed.ip_address)?,
                served.is_some_and(|s| s.id == fixed.subnet_id),
            ))
        })
        .collect();
    let ip = addresses
        .iter()
        .find(|(_, on_served)| *on_served)
        .or_else(|| addresses.first())
        .map(|(ip, _)| *ip)?;
    let extra_ips = addresses
        .iter()
        .map(|(address, _)| *address)
        .filter(|address| *address != ip)
        .collect();
    let allowed_address_pairs = port
        .allowed_address_pairs
        .iter()
        .filter_map(|pair| {
            let IpNet::V4(net) = parse_net(&pair.ip_address)? else {
                return None;
            };
            let pair_mac: Option<MacAddr> = pair.mac_address.parse().ok();
            Some(AddressPair {
                ip: net,
                mac: pair_mac.filter(|m| *m != mac),
            })
        })
        .collect();
    let security_rules = port
        .security_groups
        .iter()
        .flat_map(|group| view.rules.get(group).into_iter().flatten())
        .filter_map(|rule| security_rule(rule, view))
        .collect();
    Some(PortSpec {
        id: port.id.to_string(),
        mac,
        ip,
        extra_ips,
        port_security: port.port_security_enabled,
        allowed_address_pairs,
        security_rules,
    })
}

/// Returns the IP protocol number of a rule's `protocol` as Neutron
/// accepts it: a name from its list or a number. `icmp` in an IPv6 rule is
/// ICMPv6 (58), as Neutron treats it.
fn protocol_number(protocol: &str, ethertype: EtherType) -> Option<u8> {
    let number = match protocol.to_ascii_lowercase().as_str() {
        "icmp" if ethertype == EtherType::Ipv6 => 58,
        "ah" => 51,
        "dccp" => 33,
        "egp" => 8,
        "esp" => 50,
        "gre" => 47,
        "hopopt" => 0,
        "icmp" => 1,
        "igmp" => 2,
        "ipip" => 4,
        "ipv6-encap" => 41,
        "ipv6-frag" => 44,
        "ipv6-icmp" | "icmpv6" => 58,
        "ipv6-nonxt" => 59,
        "ipv6-opts" => 60,
        "ipv6-route" => 43,
        "ospf" => 89,
        "pgm" => 113,
        "rsvp" => 46,
        "sctp" => 132,
        "tcp" => 6,
        "udp" => 17,
        "udplite" => 136,
        "vrrp" => 112,
        other => return other.parse().ok(),
    };
    Some(number)
}

fn security_rule(rule: &SecurityGroupRule, view: &HostView) -> Option<SecurityRule> {
    let ethertype = if rule.ethertype == "IPv6" {
        EtherType::Ipv6
    } else {
        EtherType::Ipv4
    };
    let protocol = match rule.protocol.as_deref() {
        None | Some("any") => None,
        Some(name) => match protocol_number(name, ethertype) {
            Some(number) => Some(number),
            None => {
                tracing::warn!(rule_id = %rule.id, protocol = name, "security group rule has an unknown protocol; not applied");
                return None;
            }
        },
    };
    let family_matches = |net: &IpNet| {
        matches!(
            (net, ethertype),
            (IpNet::V4(_), EtherType::Ipv4) | (IpNet::V6(_), EtherType::Ipv6)
        )
    };
    let remote = match (&rule.remote_ip_prefix, &rule.remote_group_id) {
        (Some(prefix), _) => RuleRemote::Prefix(parse_net(prefix)?),
        (None, Some(group)) => RuleRemote::Members(
            view.members
                .get(group)
                .into_iter()
                .flatten()
                .filter_map(|address| parse_net(address))
                .filter(family_matches)
                .collect(),
        ),
        (None, None) => RuleRemote::Any,
    };
    Some(SecurityRule {
        direction: if rule.direction == "egress" {
            Direction::Egress
        } else {
            Direction::Ingress
        },
        ethertype,
        protocol,
        port_range_min: rule
            .port_range_min
            .and_then(|value| u16::try_from(value).ok()),
        port_range_max: rule
            .port_range_max
            .and_then(|value| u16::try_from(value).ok()),
        remote,
    })
}
