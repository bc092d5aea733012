//! Settings of the network service, with Neutron's ML2 defaults where
//! Neutron has one.

use std::ops::RangeInclusive;
use std::path::PathBuf;

use serde::Deserialize;

/// The `[network]` settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkConfig {
    /// VXLAN network identifiers given to tenant networks, inclusive. Neutron
    /// reads the same from `[ml2_type_vxlan] vni_ranges`.
    pub vni_min: i64,
    pub vni_max: i64,
    /// The MTU of the physical networks (Neutron's `global_physnet_mtu`).
    /// VXLAN networks get 50 bytes less for the encapsulation headers.
    pub physical_mtu: i64,
    /// Physical networks that flat and VLAN networks may name. Empty allows
    /// any name; the network agent then reports an unmapped one when it
    /// binds a port.
    pub physical_networks: Vec<String>,
    /// An oslo.policy file whose rules override the defaults.
    pub policy_file: Option<PathBuf>,
    /// Seconds after its last heartbeat that a network agent counts as
    /// down, so ports no longer bind to its host (Neutron's
    /// `agent_down_time`, default 75).
    pub agent_down_time: i64,
    /// Whether the first `oxstack up` on a data directory creates the
    /// `public` external network, the `private` tenant network and the
    /// router `router1` between them, as devstack does.
    pub bootstrap: bool,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            vni_min: 1,
            vni_max: 1000,
            physical_mtu: 1500,
            physical_networks: Vec::new(),
            policy_file: None,
            agent_down_time: 75,
            bootstrap: true,
        }
    }
}

/// The bytes VXLAN over IPv4 adds to each frame: outer IP (20), UDP (8),
/// VXLAN (8) and inner Ethernet (14) headers.
pub const VXLAN_OVERHEAD: i64 = 50;

impl NetworkConfig {
    pub fn vni_range(&self) -> RangeInclusive<i64> {
        self.vni_min..=self.vni_max
    }

    pub fn knows_physical_network(&self, name: &str) -> bool {
        self.physical_networks.is_empty()
            || self.physical_networks.iter().any(|known| known == name)
    }
}
