//! The network service's resources as stored, apart from their JSON shapes.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::ipam::IpRange;

/// The transport of a network's traffic between hosts (`provider:network_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetworkType {
    Vxlan,
    Vlan,
    Flat,
}

impl NetworkType {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "vxlan" => Some(NetworkType::Vxlan),
            "vlan" => Some(NetworkType::Vlan),
            "flat" => Some(NetworkType::Flat),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            NetworkType::Vxlan => "vxlan",
            NetworkType::Vlan => "vlan",
            NetworkType::Flat => "flat",
        }
    }
}

impl fmt::Display for NetworkType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The provider attributes of a network: its one segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    pub network_type: NetworkType,
    pub physical_network: Option<String>,
    pub segmentation_id: Option<i64>,
}

impl Segment {
    /// Returns the key that the database keeps unique, so two networks
    /// never share a VNI, a VLAN on one physical network, or a flat
    /// physical network.
    pub fn unique_key(&self) -> String {
        let physical = self.physical_network.as_deref().unwrap_or("");
        let id = self
            .segmentation_id
            .map(|id| id.to_string())
            .unwrap_or_default();
        format!("{}:{physical}:{id}", self.network_type)
    }
}

#[derive(Clone, Debug)]
pub struct Network {
    pub id: NetworkId,
    pub project_id: ProjectId,
    pub name: String,
    pub description: String,
    pub admin_state_up: bool,
    pub shared: bool,
    /// `router:external`: floating IPs and router gateways come from it.
    pub external: bool,
    pub mtu: i64,
    pub segment: Segment,
    pub port_security_enabled: bool,
    pub is_default: bool,
    pub availability_zone_hints: Vec<String>,
    pub tags: Vec<String>,
    pub revision_number: i64,
    /// Unix seconds.
    pub created_at: i64,
    pub updated_at: i64,
}

/// A static route handed to instances by DHCP (`host_routes`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRoute {
    pub destination: String,
    pub nexthop: String,
}

#[derive(Clone, Debug)]
pub struct Subnet {
    pub id: SubnetId,
    pub project_id: ProjectId,
    pub network_id: NetworkId,
    pub name: String,
    pub description: String,
    pub ip_version: u8,
    pub cidr: IpNet,
    pub gateway_ip: Option<IpAddr>,
    pub allocation_pools: Vec<IpRange>,
    pub enable_dhcp: bool,
    pub dns_nameservers: Vec<String>,
    pub host_routes: Vec<HostRoute>,
    pub ipv6_ra_mode: Option<String>,
    pub ipv6_address_mode: Option<String>,
    pub tags: Vec<String>,
    pub revision_number: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Subnet {
    /// True for an IPv6 subnet whose hosts configure their own addresses
    /// (`slaac` or `dhcpv6-stateless` in either mode), which Neutron calls
    /// an auto-address subnet: deleting it frees its ports' addresses
    /// instead of failing with `SubnetInUse`.
    pub fn is_auto_address(&self) -> bool {
        let auto = |mode: &Option<String>| {
            matches!(mode.as_deref(), Some("slaac") | Some("dhcpv6-stateless"))
        };
        auto(&self.ipv6_address_mode) || auto(&self.ipv6_ra_mode)
    }
}

/// An address of a port on one of its network's subnets (`fixed_ips`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FixedIp {
    pub subnet_id: SubnetId,
    pub ip_address: IpAddr,
}

/// An extra address a port may send from (`allowed_address_pairs`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressPair {
    pub ip_address: String,
    pub mac_address: String,
}

/// The `binding:*` attributes of a port: where it is plugged in.
#[derive(Clone, Debug)]
pub struct Binding {
    pub host_id: String,
    pub vnic_type: String,
    pub vif_type: String,
    pub vif_details: serde_json::Value,
    pub profile: serde_json::Value,
}

#[derive(Clone, Debug)]
pub struct Port {
    pub id: PortId,
    pub project_id: ProjectId,
    pub network_id: NetworkId,
    pub name: String,
    pub description: String,
    pub mac_address: String,
    pub admin_state_up: bool,
    pub status: String,
    pub device_owner: String,
    pub device_id: String,
    pub fixed_ips: Vec<FixedIp>,
    pub binding: Binding,
    pub port_security_enabled: bool,
    pub allowed_address_pairs: Vec<AddressPair>,
    pub security_groups: Vec<SecurityGroupId>,
    pub tags: Vec<String>,
    pub revision_number: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Device owners whose ports go with their network or subnet instead of
/// keeping it in use (Neutron's `AUTO_DELETE_PORT_OWNERS`). Router
/// interfaces are not among them: a network with one is in use.
pub const AUTO_DELETE_OWNERS: &[&str] = &[
    "network:dhcp",
    "network:distributed",
    "network:floatingip_agent_gateway",
];

impl Port {
    /// True for ports that Neutron's own services own (`network:dhcp`,
    /// `network:router_interface`, …), which Neutron trusts: they get no
    /// security groups.
    pub fn is_network_owned(device_owner: &str) -> bool {
        device_owner.starts_with("network:")
    }

    /// True for ports deleted with their network (see `AUTO_DELETE_OWNERS`).
    pub fn is_auto_deleted(device_owner: &str) -> bool {
        AUTO_DELETE_OWNERS.contains(&device_owner)
    }
}

#[derive(Clone, Debug)]
pub struct SecurityGroup {
    pub id: SecurityGroupId,
    pub project_id: ProjectId,
    pub name: String,
    pub description: String,
    pub stateful: bool,
    pub tags: Vec<String>,
    pub revision_number: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Clone, Debug)]
pub struct SecurityGroupRule {
    pub id: SecurityGroupRuleId,
    pub project_id: ProjectId,
    pub security_group_id: SecurityGroupId,
    /// `ingress` or `egress`.
    pub direction: String,
    /// `IPv4` or `IPv6`.
    pub ethertype: String,
    /// As the client wrote it (a name such as `tcp`, or a number); `None`
    /// matches any protocol.
    pub protocol: Option<String>,
    pub port_range_min: Option<i64>,
    pub port_range_max: Option<i64>,
    pub remote_ip_prefix: Option<String>,
    pub remote_group_id: Option<SecurityGroupId>,
    pub description: String,
    pub revision_number: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A router: its interfaces are ports with `device_id` = its id and
/// `device_owner` `network:router_interface`, and its gateway is one port
/// (`network:router_gateway`) on an external network.
#[derive(Clone, Debug)]
pub struct Router {
    pub id: RouterId,
    pub project_id: ProjectId,
    pub name: String,
    pub description: String,
    pub admin_state_up: bool,
    /// The external network of the gateway, with the gateway port's id.
    pub gateway: Option<(NetworkId, PortId)>,
    pub enable_snat: bool,
    pub tags: Vec<String>,
    pub revision_number: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A floating IP: an address on an external network, held by a
/// `network:floatingip` port, optionally translated to a fixed IP of a
/// port that a router with a gateway on that network reaches.
#[derive(Clone, Debug)]
pub struct FloatingIp {
    pub id: FloatingIpId,
    pub project_id: ProjectId,
    pub floating_network_id: NetworkId,
    pub floating_ip_address: IpAddr,
    pub floating_port_id: PortId,
    pub port_id: Option<PortId>,
    pub fixed_ip_address: Option<IpAddr>,
    pub router_id: Option<RouterId>,
    pub status: String,
    pub description: String,
    pub tags: Vec<String>,
    pub revision_number: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Device owner of a router's interface ports.
pub const ROUTER_INTERFACE: &str = "network:router_interface";
/// Device owner of a router's gateway port.
pub const ROUTER_GATEWAY: &str = "network:router_gateway";
/// Device owner of the port that has a floating IP's address.
pub const FLOATINGIP_OWNER: &str = "network:floatingip";

/// Declares a string identifier type, so ids of different resources cannot
/// be mixed up across module boundaries.
macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(id: impl Into<String>) -> Self {
                $name(id.into())
            }

            /// Returns a new random UUID, the form Neutron gives its ids.
            pub fn generate() -> Self {
                $name(uuid::Uuid::new_v4().to_string())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_id!(
    /// The id of a network.
    NetworkId
);
string_id!(
    /// The id of a subnet.
    SubnetId
);
string_id!(
    /// The id of a port.
    PortId
);
string_id!(
    /// The id of a security group.
    SecurityGroupId
);
string_id!(
    /// The id of a security group rule.
    SecurityGroupRuleId
);
string_id!(
    /// The id of a router.
    RouterId
);
string_id!(
    /// The id of a floating IP.
    FloatingIpId
);
string_id!(
    /// The id of a Keystone project, the owner of a resource.
    ProjectId
);

/// Returns the current time in unix seconds.
pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}
