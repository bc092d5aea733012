//! Desired state handed to the agent: plain values, independent of the
//! network service's storage types.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use ipnet::Ipv4Net;

/// Everything this host should have plugged in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DesiredState {
    pub networks: Vec<NetworkSpec>,
}

/// One network as bound to this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkSpec {
    /// Network id; only its first 11 characters appear in device names.
    pub id: String,
    /// MTU of the bridge and of every device in it, in bytes.
    pub mtu: u32,
    /// VXLAN segment for tenant networks; `None` for a bridge with no uplink.
    pub vxlan: Option<VxlanSpec>,
    /// IPv4 subnet served by DHCP; `None` runs no DHCP for the network.
    /// NOTE: IPv6 subnets (SLAAC, DHCPv6) are not served yet.
    pub subnet: Option<SubnetSpec>,
    /// The network's DHCP port, whose address dnsmasq listens on.
    pub dhcp_port: Option<PortSpec>,
    /// Instance ports; their tap devices are created by the hypervisor.
    pub ports: Vec<PortSpec>,
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
}

/// A port with its fixed address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    pub id: String,
    pub mac: MacAddr,
    pub ip: Ipv4Addr,
}

/// Ethernet MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
fn short_id(id: &str) -> &str {
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
