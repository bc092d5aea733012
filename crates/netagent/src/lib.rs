//! Host network agent: plugs OxStack networks and ports into Linux.
//!
//! For each network the agent keeps a bridge `brq<first 11 chars of the
//! network id>`, an optional VXLAN device `vxlan-<vni>` in that bridge, a
//! `qdhcp-<network id>` namespace joined to the bridge by a veth pair, and one
//! dnsmasq inside that namespace serving fixed MAC → IP leases. Host facilities
//! sit behind [`Dataplane`] and [`DhcpServer`], each with an in-memory fake.

mod dataplane;
mod desired;
mod dhcp;
mod linux;
mod reconcile;

pub use dataplane::{Dataplane, DataplaneError, DataplaneOp, RecordingDataplane};
pub use desired::{DesiredState, MacAddr, NetworkSpec, PortSpec, SubnetSpec, VxlanSpec};
pub use dhcp::{DhcpConfig, DhcpError, DhcpHost, DhcpOp, DhcpServer, Dnsmasq, RecordingDhcp};
pub use linux::LinuxDataplane;
pub use reconcile::{ReconcileError, Reconciler};
