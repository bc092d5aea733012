//! Reconciliation: brings the host from what this agent last applied to the
//! desired state.

use std::collections::BTreeMap;

use ipnet::Ipv4Net;

use crate::dataplane::{Dataplane, DataplaneError};
use crate::desired::{
    bridge_name, dhcp_namespace, ns_link_name, tap_name, vxlan_name, DesiredState, NetworkSpec,
};
use crate::dhcp::{DhcpConfig, DhcpError, DhcpHost, DhcpServer};

/// Failure to apply one network.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("dataplane change for network {network_id} failed")]
    Dataplane {
        network_id: String,
        #[source]
        source: DataplaneError,
    },
    #[error("DHCP change for network {network_id} failed")]
    Dhcp {
        network_id: String,
        #[source]
        source: DhcpError,
    },
    #[error("DHCP port {port_ip} of network {network_id} is outside subnet {subnet}")]
    DhcpPortOutsideSubnet {
        network_id: String,
        port_ip: std::net::Ipv4Addr,
        subnet: Ipv4Net,
    },
}

/// Applies desired states one after another, remembering what it applied so
/// that it can remove networks that disappear from the desired state.
///
/// NOTE: only networks applied by this `Reconciler` are ever removed, so
/// devices left by an earlier agent process stay until a desired state names
/// them again. This keeps the agent from deleting devices it does not own.
#[derive(Debug, Default)]
pub struct Reconciler {
    applied: BTreeMap<String, NetworkSpec>,
}

impl Reconciler {
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates, updates and removes devices, namespaces and DHCP servers until
    /// the host matches `desired`. Every network is attempted even when an
    /// earlier one fails, and the first failure is returned. Each call applies
    /// every desired network again, so a failed step is retried on the next call.
    pub async fn reconcile(
        &mut self,
        desired: &DesiredState,
        dataplane: &dyn Dataplane,
        dhcp: &dyn DhcpServer,
    ) -> Result<(), ReconcileError> {
        let mut first_error = None;
        let mut record = |result: Result<(), ReconcileError>| {
            if let Err(error) = result {
                tracing::error!(error = %error, source = ?std::error::Error::source(&error), "reconcile step failed");
                first_error.get_or_insert(error);
            }
        };

        let wanted: Vec<&str> = desired.networks.iter().map(|n| n.id.as_str()).collect();
        let stale: Vec<NetworkSpec> = self
            .applied
            .values()
            .filter(|n| !wanted.contains(&n.id.as_str()))
            .cloned()
            .collect();
        for network in stale {
            let result = remove_network(&network, dataplane, dhcp).await;
            if result.is_ok() {
                self.applied.remove(&network.id);
            }
            record(result);
        }

        for network in &desired.networks {
            let previous = self.applied.get(&network.id);
            let result = apply_network(network, previous, dataplane, dhcp).await;
            // A network that failed on its first attempt is still recorded, so
            // that removing it later deletes whatever part of it was created.
            // One that was applied before keeps its old record, whose devices
            // the next attempt compares against.
            if result.is_ok() || previous.is_none() {
                self.applied.insert(network.id.clone(), network.clone());
            }
            record(result);
        }

        first_error.map_or(Ok(()), Err)
    }
}

fn dataplane_error(network_id: &str) -> impl FnOnce(DataplaneError) -> ReconcileError {
    let network_id = network_id.to_string();
    move |source| ReconcileError::Dataplane { network_id, source }
}

fn dhcp_error(network_id: &str) -> impl FnOnce(DhcpError) -> ReconcileError {
    let network_id = network_id.to_string();
    move |source| ReconcileError::Dhcp { network_id, source }
}

async fn apply_network(
    network: &NetworkSpec,
    previous: Option<&NetworkSpec>,
    dataplane: &dyn Dataplane,
    dhcp: &dyn DhcpServer,
) -> Result<(), ReconcileError> {
    let id = network.id.as_str();
    let bridge = bridge_name(id);
    dataplane
        .ensure_bridge(&bridge, network.mtu)
        .await
        .map_err(dataplane_error(id))?;

    // A changed or removed segment leaves its old VXLAN device behind.
    let old_vxlan = previous
        .and_then(|p| p.vxlan)
        .filter(|old| Some(old.vni) != network.vxlan.map(|v| v.vni));
    if let Some(old) = old_vxlan {
        dataplane
            .delete_link(&vxlan_name(old.vni))
            .await
            .map_err(dataplane_error(id))?;
    }
    if let Some(vxlan) = network.vxlan {
        dataplane
            .ensure_vxlan(
                &vxlan_name(vxlan.vni),
                vxlan.vni,
                vxlan.local_ip,
                &bridge,
                network.mtu,
            )
            .await
            .map_err(dataplane_error(id))?;
    }

    for port in &network.ports {
        let tap = tap_name(&port.id);
        // The hypervisor creates an instance's tap; until then there is nothing to plug.
        if dataplane
            .link_exists(&tap)
            .await
            .map_err(dataplane_error(id))?
        {
            dataplane
                .attach_to_bridge(&tap, &bridge, network.mtu)
                .await
                .map_err(dataplane_error(id))?;
        } else {
            tracing::debug!(network_id = id, port_id = %port.id, link = %tap, "tap not present yet");
        }
    }

    let had_dhcp = previous.is_some_and(|p| p.subnet.is_some() && p.dhcp_port.is_some());
    match (&network.subnet, &network.dhcp_port) {
        (Some(subnet), Some(dhcp_port)) => {
            if let Some(old_port) = previous
                .and_then(|p| p.dhcp_port.as_ref())
                .filter(|p| p.id != dhcp_port.id)
            {
                dataplane
                    .delete_link(&tap_name(&old_port.id))
                    .await
                    .map_err(dataplane_error(id))?;
            }
            if !subnet.cidr.contains(&dhcp_port.ip) {
                return Err(ReconcileError::DhcpPortOutsideSubnet {
                    network_id: id.to_string(),
                    port_ip: dhcp_port.ip,
                    subnet: subnet.cidr,
                });
            }
            let address = Ipv4Net::new(dhcp_port.ip, subnet.cidr.prefix_len())
                .expect("prefix length comes from a valid network");

            let namespace = dhcp_namespace(id);
            let host_end = tap_name(&dhcp_port.id);
            let namespace_end = ns_link_name(&dhcp_port.id);
            dataplane
                .ensure_namespace(&namespace)
                .await
                .map_err(dataplane_error(id))?;
            dataplane
                .ensure_veth(&host_end, &namespace_end, dhcp_port.mac, network.mtu)
                .await
                .map_err(dataplane_error(id))?;
            dataplane
                .attach_to_bridge(&host_end, &bridge, network.mtu)
                .await
                .map_err(dataplane_error(id))?;
            dataplane
                .move_into_namespace(&namespace_end, &namespace, address)
                .await
                .map_err(dataplane_error(id))?;

            let config = DhcpConfig {
                network_id: id.to_string(),
                namespace,
                interface: namespace_end,
                subnet: subnet.cidr,
                lease_seconds: subnet.lease_seconds,
                mtu: network.mtu,
                hosts: network
                    .ports
                    .iter()
                    .map(|p| DhcpHost {
                        mac: p.mac,
                        ip: p.ip,
                    })
                    .collect(),
            };
            dhcp.ensure_running(&config).await.map_err(dhcp_error(id))?;
        }
        _ if had_dhcp => {
            let previous = previous.expect("had_dhcp implies a previous spec");
            remove_dhcp(previous, dataplane, dhcp).await?;
        }
        _ => {}
    }
    Ok(())
}

async fn remove_dhcp(
    network: &NetworkSpec,
    dataplane: &dyn Dataplane,
    dhcp: &dyn DhcpServer,
) -> Result<(), ReconcileError> {
    let id = network.id.as_str();
    dhcp.stop(id).await.map_err(dhcp_error(id))?;
    dataplane
        .delete_namespace(&dhcp_namespace(id))
        .await
        .map_err(dataplane_error(id))?;
    if let Some(port) = &network.dhcp_port {
        dataplane
            .delete_link(&tap_name(&port.id))
            .await
            .map_err(dataplane_error(id))?;
    }
    Ok(())
}

async fn remove_network(
    network: &NetworkSpec,
    dataplane: &dyn Dataplane,
    dhcp: &dyn DhcpServer,
) -> Result<(), ReconcileError> {
    let id = network.id.as_str();
    remove_dhcp(network, dataplane, dhcp).await?;
    if let Some(vxlan) = network.vxlan {
        dataplane
            .delete_link(&vxlan_name(vxlan.vni))
            .await
            .map_err(dataplane_error(id))?;
    }
    // Deleting the bridge releases instance taps still in it; their owner deletes them.
    dataplane
        .delete_link(&bridge_name(id))
        .await
        .map_err(dataplane_error(id))?;
    tracing::info!(network_id = id, "removed network from host");
    Ok(())
}
