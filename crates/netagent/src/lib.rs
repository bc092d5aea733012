//! Host network agent: plugs OxStack networks, ports and routers into Linux.
//!
//! For each network the agent keeps a bridge `brq<first 11 chars of the
//! network id>` (or uses a mapped bridge), an optional VXLAN device
//! `vxlan-<vni>` in that bridge, a `qdhcp-<network id>` namespace joined to the
//! bridge by a veth pair, one dnsmasq inside that namespace serving fixed
//! MAC → IP leases, and a metadata proxy on 169.254.169.254 there. Security
//! groups are nftables rules per instance tap. Each router is a
//! `qrouter-<router id>` namespace with NAT in nftables. Host facilities sit
//! behind [`Dataplane`], [`DhcpServer`], [`Nftables`] and [`MetadataProxy`],
//! each with an in-memory fake.

mod dataplane;
mod desired;
mod dhcp;
mod firewall;
mod linux;
mod metadata;
mod nft;
mod reconcile;
mod router;

/// The address types of [`DesiredState`], for callers that build one.
pub use ipnet;

pub use dataplane::{Dataplane, DataplaneError, DataplaneOp, RecordingDataplane};
pub use desired::{
    AddressPair, DesiredState, Direction, EtherType, FloatingIpSpec, MacAddr, MetadataSpec,
    NetworkSpec, PortSpec, RouterGateway, RouterInterface, RouterSpec, RuleRemote, SecurityRule,
    SubnetSpec, VxlanSpec,
};
pub use dhcp::{DhcpConfig, DhcpError, DhcpHost, DhcpOp, DhcpServer, Dnsmasq, RecordingDhcp};
pub use linux::LinuxDataplane;
pub use metadata::{
    MetadataError, MetadataOp, MetadataProxy, NamespaceMetadataProxy, RecordingMetadataProxy,
    METADATA_ADDRESS,
};
pub use nft::{NftCommand, NftError, NftOp, NftTable, Nftables, RecordingNftables, TableRef};
pub use reconcile::{ReconcileError, Reconciler};
