//! Port binding: whether the network agent of a host can plug a port into
//! its network, and the `binding:*` attributes that record the outcome.
//!
//! A host can bind a port when its agent is alive and reaches the port's
//! network: VXLAN needs the agent's tunnel address, flat and VLAN networks
//! need a bridge or interface mapping for their physical network.

use serde_json::json;

use crate::agents::Agent;
use crate::db;
use crate::model::{now, Binding, Network, NetworkType, Port, PortId};
use crate::NetworkService;

/// The `binding:vif_type` of a bound port: a tap on a Linux bridge.
pub const VIF_BRIDGE: &str = "bridge";
/// The `binding:vif_type` of a port that its host could not bind.
pub const VIF_BINDING_FAILED: &str = "binding_failed";
/// The section of the config file that contains the agent's settings.
const AGENT_SECTION: &str = "[netagent]";

/// A failure to bind a port. The message names the port, host and network,
/// and what the operator must change.
#[derive(Debug, thiserror::Error)]
pub enum BindingFailure {
    #[error("Port {0} could not be found.")]
    PortNotFound(PortId),
    #[error("Binding failed for port {port_id} on host {host}: {reason}")]
    Unbindable {
        port_id: PortId,
        host: String,
        reason: String,
    },
    #[error("Port {port_id} was changed by other requests while it was being bound; retry.")]
    Conflict { port_id: PortId },
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

fn describe(network: &Network) -> String {
    let segment = &network.segment;
    let name = if network.name.is_empty() {
        network.id.as_str()
    } else {
        network.name.as_str()
    };
    match (segment.network_type, &segment.physical_network) {
        (NetworkType::Vxlan, _) => format!(
            "network {name} (vxlan, VNI {})",
            segment.segmentation_id.unwrap_or_default()
        ),
        (network_type, Some(physical)) => {
            format!("network {name} ({network_type}, physical network {physical})")
        }
        (network_type, None) => format!("network {name} ({network_type})"),
    }
}

/// Checks that the agent `agent` of `host` can bind a port on `network` at
/// time `now`. Returns the reason when it cannot.
pub fn check_host(
    agent: Option<&Agent>,
    host: &str,
    network: &Network,
    now: i64,
    down_time: i64,
) -> Result<(), String> {
    let Some(agent) = agent else {
        return Err(format!(
            "no network agent has reported from {host}; start the network agent on {host}, or \
             bind the port to a host that runs one"
        ));
    };
    if !agent.is_alive(now, down_time) {
        return Err(format!(
            "the network agent on {host} last reported {} seconds ago and counts as down after \
             {down_time} seconds; check that it runs on {host} and reaches the controller",
            now - agent.heartbeat_at
        ));
    }
    let config = &agent.configurations;
    let segment = &network.segment;
    match segment.network_type {
        NetworkType::Vxlan => {
            let carries_vxlan =
                config.tunnel_types.is_empty() || config.tunnel_types.iter().any(|t| t == "vxlan");
            if config.tunneling_ip.is_none() || !carries_vxlan {
                return Err(format!(
                    "{} needs a VXLAN tunnel endpoint, and the network agent on {host} reports \
                     no tunneling_ip for vxlan; set `tunneling_ip` to this host's address for \
                     VXLAN traffic in the `{AGENT_SECTION}` section of the config and restart",
                    describe(network)
                ));
            }
        }
        NetworkType::Flat | NetworkType::Vlan => {
            let physical = segment.physical_network.as_deref().unwrap_or_default();
            if !config.maps(physical) {
                return Err(format!(
                    "{} needs a bridge mapping for {physical}, and the network agent on {host} \
                     has none; add `{physical}:br-ex` to `bridge_mappings` in the \
                     `{AGENT_SECTION}` section of the config and restart",
                    describe(network)
                ));
            }
        }
    }
    Ok(())
}

/// Sets the `binding:*` attributes and status of `port` for `host` from
/// the outcome of [`check_host`]. An empty `host` unbinds the port.
pub fn apply(port: &mut Port, host: &str, outcome: &Result<(), String>) {
    port.binding.host_id = host.to_owned();
    if host.is_empty() {
        port.binding.vif_type = crate::api::ports::UNBOUND.to_owned();
        port.binding.vif_details = json!({});
        port.status = "DOWN".to_owned();
        return;
    }
    match outcome {
        Ok(()) => {
            port.binding.vif_type = VIF_BRIDGE.to_owned();
            port.binding.vif_details = json!({"port_filter": true, "connectivity": "l2"});
            port.status = "ACTIVE".to_owned();
        }
        Err(_) => {
            port.binding.vif_type = VIF_BINDING_FAILED.to_owned();
            port.binding.vif_details = json!({});
            port.status = "DOWN".to_owned();
        }
    }
}

/// Checks whether `host` can bind a port on `network`, reading its
/// agent's last report.
pub async fn evaluate(
    state: &NetworkService,
    network: &Network,
    host: &str,
) -> Result<Result<(), String>, sqlx::Error> {
    let agent = db::agents::get_by_host(state.pool(), host).await?;
    Ok(check_host(
        agent.as_ref(),
        host,
        network,
        now(),
        state.config.agent_down_time,
    ))
}

impl NetworkService {
    /// Binds `port_id` to `host` and stores the outcome: on success the
    /// port gets `binding:vif_type` `bridge` and status ACTIVE; on failure
    /// `binding_failed`, and the error names what to fix.
    pub async fn bind_port(&self, port_id: &PortId, host: &str) -> Result<Binding, BindingFailure> {
        // The port is stored only if no other request changed it meanwhile,
        // so a concurrent change makes the binding start over.
        const ATTEMPTS: usize = 5;
        for _ in 0..ATTEMPTS {
            let mut port = db::ports::get(self.pool(), port_id)
                .await?
                .ok_or_else(|| BindingFailure::PortNotFound(port_id.clone()))?;
            let network = db::networks::get(self.pool(), &port.network_id)
                .await?
                .ok_or_else(|| BindingFailure::PortNotFound(port_id.clone()))?;
            let outcome = evaluate(self, &network, host).await?;
            apply(&mut port, host, &outcome);
            port.revision_number += 1;
            port.updated_at = now();
            if !db::ports::update(self.pool(), &port).await? {
                continue;
            }
            self.notify_change();
            return match outcome {
                Ok(()) => {
                    tracing::info!(port_id = %port_id, host, "bound port");
                    Ok(port.binding)
                }
                Err(reason) => {
                    let failure = BindingFailure::Unbindable {
                        port_id: port_id.clone(),
                        host: host.to_owned(),
                        reason,
                    };
                    tracing::warn!(port_id = %port_id, host, error = %failure, "port binding failed");
                    Err(failure)
                }
            };
        }
        Err(BindingFailure::Conflict {
            port_id: port_id.clone(),
        })
    }
}
