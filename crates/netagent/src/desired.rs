//! Desired state handed to the agent: plain values, independent of the
//! network service's storage types.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;

use ipnet::{IpNet, Ipv4Net};

/// Everything this host should have plugged in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DesiredState {
    pub networks: Vec<NetworkSpec>,
    /// Routers hosted here. Every network a router touches (internal and
    /// external) must also be in `networks`, which gives it its bridge.
    pub routers: Vec<RouterSpec>,
    /// Upstream of the metadata proxies. `None` runs no metadata proxy and
    /// pushes no route to 169.254.169.254 over DHCP.
    pub metadata: Option<MetadataSpec>,
}

/// One network as bound to this host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkSpec {
    /// Network id. Only its first 11 characters appear in device names.
    pub id: String,
    /// MTU of the bridge and of every device in it, in bytes.
    pub mtu: u32,
    /// VXLAN segment for tenant networks, or `None` for a bridge with no
    /// uplink.
    pub vxlan: Option<VxlanSpec>,
    /// IPv4 subnet served by DHCP. `None` runs no DHCP for the network.
    /// NOTE: IPv6 subnets (SLAAC, DHCPv6) are not served yet.
    pub subnet: Option<SubnetSpec>,
    /// The network's DHCP port, whose address dnsmasq listens on.
    pub dhcp_port: Option<PortSpec>,
    /// Instance ports. The hypervisor creates their tap devices.
    pub ports: Vec<PortSpec>,
    /// An existing host bridge to plug into instead of `brq<id>`: the bridge
    /// that `bridge_mappings` maps a flat network's physical network to (or
    /// the VLAN sub-interface's bridge). The agent never creates, changes the
    /// MTU of, or deletes this bridge. `vxlan` must then be `None`.
    pub bridge: Option<String>,
}

/// VXLAN segment of a tenant network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VxlanSpec {
    pub vni: u32,
    /// This host's tunnel endpoint address.
    pub local_ip: Ipv4Addr,
}

/// DHCP-served IPv4 subnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubnetSpec {
    pub cidr: Ipv4Net,
    pub lease_seconds: u32,
    /// The subnet's `gateway_ip`, announced as the default route in DHCP
    /// options 3 and 121. `None` announces no router, as Neutron does for a
    /// subnet without a gateway.
    pub gateway: Option<Ipv4Addr>,
}

impl Default for SubnetSpec {
    fn default() -> Self {
        Self {
            cidr: Ipv4Net::default(),
            lease_seconds: 86400,
            gateway: None,
        }
    }
}

/// A port with its fixed address and the filtering of its traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    pub id: String,
    pub mac: MacAddr,
    /// The port's first IPv4 fixed IP: the one DHCP hands out.
    pub ip: Ipv4Addr,
    /// The port's further IPv4 fixed IPs, allowed as sources but not leased.
    pub extra_ips: Vec<Ipv4Addr>,
    /// `port_security_enabled`. When false the port gets no anti-spoofing
    /// and no security group filtering at all. Defaults to true, so a spec
    /// built without it is filtered, never silently open.
    pub port_security: bool,
    /// The port's `allowed_address_pairs`: further sources it may send from.
    pub allowed_address_pairs: Vec<AddressPair>,
    /// Rules of all the port's security groups, with `remote_group_id`
    /// already expanded to the member addresses. An empty list with
    /// `port_security` on lets only DHCP and neighbour discovery through.
    pub security_rules: Vec<SecurityRule>,
}

impl Default for PortSpec {
    fn default() -> Self {
        Self {
            id: String::new(),
            mac: MacAddr::default(),
            ip: Ipv4Addr::UNSPECIFIED,
            extra_ips: Vec::new(),
            port_security: true,
            allowed_address_pairs: Vec::new(),
            security_rules: Vec::new(),
        }
    }
}

/// One entry of a port's `allowed_address_pairs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressPair {
    /// `ip_address`: a single address (/32) or a prefix.
    pub ip: Ipv4Net,
    /// `mac_address`. `None` means the port's own MAC, as in Neutron.
    pub mac: Option<MacAddr>,
}

/// Direction of a security group rule, seen from the instance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Direction {
    /// Traffic arriving at the port.
    #[default]
    Ingress,
    /// Traffic the port sends.
    Egress,
}

/// `ethertype` of a security group rule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum EtherType {
    #[default]
    Ipv4,
    Ipv6,
}

/// Other end of a rule's traffic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum RuleRemote {
    /// Neither `remote_ip_prefix` nor `remote_group_id`: anywhere.
    #[default]
    Any,
    /// `remote_ip_prefix`.
    Prefix(IpNet),
    /// `remote_group_id`, expanded to the fixed IPs and allowed address pair
    /// addresses of the group's member ports. An empty list matches nothing.
    Members(Vec<IpNet>),
}

/// One security group rule in plain form, as Neutron stores it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecurityRule {
    pub direction: Direction,
    pub ethertype: EtherType,
    /// IP protocol number (`tcp` 6, `udp` 17, `icmp` 1, `ipv6-icmp` 58,
    /// `sctp` 132, …), or `None` for any protocol. Neutron's `icmp` with
    /// ethertype IPv6 must be given as 58.
    pub protocol: Option<u8>,
    /// `port_range_min`: the first destination port for TCP, UDP and SCTP,
    /// or the ICMP type for ICMP and ICMPv6.
    pub port_range_min: Option<u16>,
    /// `port_range_max`: the last destination port for TCP, UDP and SCTP,
    /// or the ICMP code for ICMP and ICMPv6.
    pub port_range_max: Option<u16>,
    pub remote: RuleRemote,
}

/// A router hosted on this host, in namespace `qrouter-<id>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouterSpec {
    pub id: String,
    /// `external_gateway_info`: the router's port on the external network.
    pub gateway: Option<RouterGateway>,
    /// One per `router add subnet`: the router's port on an internal subnet.
    pub interfaces: Vec<RouterInterface>,
    /// Floating IPs associated with a port behind this router.
    pub floating_ips: Vec<FloatingIpSpec>,
    /// `external_gateway_info.enable_snat`: internal subnets reach the
    /// external network from the gateway address.
    pub enable_snat: bool,
}

/// The router's gateway port (device `qg-<port id>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterGateway {
    pub port_id: String,
    pub mac: MacAddr,
    /// The gateway port's fixed IP on the external subnet.
    pub ip: Ipv4Addr,
    /// The external subnet's CIDR.
    pub cidr: Ipv4Net,
    /// The external network, which must be in `DesiredState::networks`.
    pub network_id: String,
    /// The external subnet's `gateway_ip`, the router's default route.
    /// `None` leaves the router without one.
    pub gateway_ip: Option<Ipv4Addr>,
}

/// A router port on an internal subnet (device `qr-<port id>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterInterface {
    pub port_id: String,
    pub mac: MacAddr,
    /// The port's fixed IP: the subnet's gateway address.
    pub ip: Ipv4Addr,
    /// The internal subnet's CIDR.
    pub cidr: Ipv4Net,
    /// The internal network, which must be in `DesiredState::networks`.
    pub network_id: String,
}

/// A floating IP associated with a fixed IP behind the router.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FloatingIpSpec {
    pub floating_ip: Ipv4Addr,
    pub fixed_ip: Ipv4Addr,
}

/// The metadata API the proxies forward to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetadataSpec {
    /// Address of the metadata API in the agent's own namespace, for
    /// example `127.0.0.1:8775`.
    pub upstream: SocketAddr,
}

/// Ethernet MAC address.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl FromStr for MacAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split(':').collect();
        if parts.len() != 6 {
            return Err(format!(
                "invalid MAC address {s:?}: expected six hex octets separated by ':'"
            ));
        }
        let mut bytes = [0u8; 6];
        for (byte, part) in bytes.iter_mut().zip(parts) {
            *byte = u8::from_str_radix(part, 16)
                .map_err(|_| format!("invalid MAC address {s:?}: {part:?} is not a hex octet"))?;
        }
        Ok(Self(bytes))
    }
}

/// Returns the first 11 characters of an id, as used in Neutron-style names.
pub(crate) fn short_id(id: &str) -> &str {
    id.get(..11).unwrap_or(id)
}

/// Returns the bridge name of a network.
pub(crate) fn bridge_name(network_id: &str) -> String {
    format!("brq{}", short_id(network_id))
}

/// Returns the VXLAN device name of a segment.
pub(crate) fn vxlan_name(vni: u32) -> String {
    format!("vxlan-{vni}")
}

/// Returns the host-side device name of a port.
pub(crate) fn tap_name(port_id: &str) -> String {
    format!("tap{}", short_id(port_id))
}

/// Returns the namespace-side device name of a DHCP port.
pub(crate) fn ns_link_name(port_id: &str) -> String {
    format!("ns-{}", short_id(port_id))
}

/// Returns the router namespace name of a router.
pub(crate) fn router_namespace(router_id: &str) -> String {
    format!("qrouter-{router_id}")
}

/// Returns the namespace-side device name of a router's internal port.
pub(crate) fn router_interface_name(port_id: &str) -> String {
    format!("qr-{}", short_id(port_id))
}

/// Returns the namespace-side device name of a router's gateway port.
pub(crate) fn router_gateway_name(port_id: &str) -> String {
    format!("qg-{}", short_id(port_id))
}

/// Returns the DHCP namespace name of a network.
pub(crate) fn dhcp_namespace(network_id: &str) -> String {
    format!("qdhcp-{network_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_round_trips() {
        let mac: MacAddr = "fa:16:3e:0a:bc:01".parse().unwrap();
        assert_eq!(mac.0, [0xfa, 0x16, 0x3e, 0x0a, 0xbc, 0x01]);
        assert_eq!(mac.to_string(), "fa:16:3e:0a:bc:01");
    }

    #[test]
    fn mac_rejects_bad_input() {
        assert!("fa:16:3e".parse::<MacAddr>().is_err());
        assert!("fa:16:3e:0a:bc:zz".parse::<MacAddr>().is_err());
    }

    #[test]
    fn names_use_eleven_id_chars() {
        let id = "3f2a9c1e-55aa-4b1e-9d0c-1234567890ab";
        assert_eq!(bridge_name(id), "brq3f2a9c1e-55");
        assert_eq!(tap_name(id), "tap3f2a9c1e-55");
        assert_eq!(ns_link_name(id), "ns-3f2a9c1e-55");
        assert_eq!(dhcp_namespace(id), format!("qdhcp-{id}"));
        assert!(bridge_name(id).len() <= 15);
    }
}
