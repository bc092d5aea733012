//! Cheap checks that the host still matches the state last applied, run
//! on every periodic pass instead of a full reconcile.

use std::path::Path;

use oxstack_netagent::{DesiredState, Dnsmasq};

/// Finds a host that no longer matches the desired state it was given.
pub trait HostProbe: Send + Sync {
    /// Returns whether something the agent created is gone or unplugged
    /// (a bridge, a tap's place in its bridge, a dnsmasq process).
    fn drifted(&self, desired: &DesiredState) -> bool;
}

/// Reads the host namespace's links from `/sys/class/net` and dnsmasq's pid
/// files, without netlink requests or new processes.
pub struct LinuxProbe {
    dnsmasq: Dnsmasq,
}

impl LinuxProbe {
    pub fn new(dnsmasq: Dnsmasq) -> Self {
        LinuxProbe { dnsmasq }
    }
}

/// Returns the first 11 characters of an id, as Neutron's device names
/// (`brq…`, `tap…`) use them.
fn short_id(id: &str) -> &str {
    id.get(..11).unwrap_or(id)
}

impl HostProbe for LinuxProbe {
    fn drifted(&self, desired: &DesiredState) -> bool {
        let links = Path::new("/sys/class/net");
        for network in &desired.networks {
            let bridge = format!("brq{}", short_id(&network.id));
            if !links.join(&bridge).exists() {
                tracing::info!(network_id = %network.id, %bridge, "bridge is missing; reconciling");
                return true;
            }
            for port in &network.ports {
                let tap = format!("tap{}", short_id(&port.id));
                let tap_dir = links.join(&tap);
                if !tap_dir.exists() {
                    continue;
                }
                // `master` links to the bridge the tap is in, and a tap the
                // hypervisor just created has none yet.
                let master = std::fs::read_link(tap_dir.join("master")).ok();
                let in_bridge = master
                    .as_deref()
                    .and_then(Path::file_name)
                    .is_some_and(|name| name == bridge.as_str());
                if !in_bridge {
                    tracing::info!(network_id = %network.id, port_id = %port.id, %tap, "tap is not in its bridge; reconciling");
                    return true;
                }
            }
            if network.subnet.is_some()
                && network.dhcp_port.is_some()
                && self.dnsmasq.running_pid(&network.id).is_none()
            {
                tracing::warn!(network_id = %network.id, "dnsmasq is not running; restarting it");
                return true;
            }
        }
        false
    }
}

/// A probe that never finds drift, for hosts whose dataplane keeps no
/// state outside the process (the recording dataplane of tests).
#[cfg(test)]
pub struct NoProbe;

#[cfg(test)]
impl HostProbe for NoProbe {
    fn drifted(&self, _desired: &DesiredState) -> bool {
        false
    }
}
