//! Ports that routers and floating IPs own (`network:router_interface`,
//! `network:router_gateway`, `network:floatingip`): created and deleted by
//! those resources, never through `/v2.0/ports` by clients.

use oxstack_core::ApiError;
use serde_json::{json, Map};

use super::db_error;
use super::port_input::IpRequest;
use super::ports::{self, UNBOUND};
use crate::db;
use crate::model::{
    now, Binding, Network, Port, PortId, ProjectId, ROUTER_GATEWAY, ROUTER_INTERFACE,
};
use crate::NetworkService;

/// The port to create: its owner, device and wanted addresses.
pub struct ServicePort<'a> {
    pub network: &'a Network,
    /// Empty for gateway and floating IP ports, which Neutron gives no
    /// project so that only admins see them.
    pub project_id: ProjectId,
    pub device_owner: &'static str,
    pub device_id: String,
    /// `None` takes an address from the network's first subnet with a free one.
    pub requests: Option<Vec<IpRequest>>,
}

/// Creates the port and allocates its addresses. It gets no security
/// groups: Neutron applies none to its own ports.
pub async fn create(state: &NetworkService, request: ServicePort<'_>) -> Result<Port, ApiError> {
    let created = now();
    let mut port = Port {
        id: PortId::generate(),
        project_id: request.project_id,
        network_id: request.network.id.clone(),
        name: String::new(),
        description: String::new(),
        mac_address: String::new(),
        admin_state_up: true,
        status: "DOWN".to_owned(),
        device_owner: request.device_owner.to_owned(),
        device_id: request.device_id,
        fixed_ips: Vec::new(),
        binding: Binding {
            host_id: String::new(),
            vnic_type: "normal".to_owned(),
            vif_type: UNBOUND.to_owned(),
            vif_details: json!({}),
            profile: json!({}),
        },
        port_security_enabled: false,
        allowed_address_pairs: Vec::new(),
        security_groups: Vec::new(),
        tags: Vec::new(),
        revision_number: 1,
        created_at: created,
        updated_at: created,
    };
    if is_router_port(&port.device_owner) {
        bind_to_router_host(state, &mut port, request.network).await?;
    }
    let quota_project = (!port.project_id.as_str().is_empty()).then(|| port.project_id.clone());
    ports::store_new_port(
        state,
        &mut port,
        &Map::new(),
        None,
        request.requests.as_deref(),
        quota_project.as_ref(),
    )
    .await?;
    tracing::info!(port_id = %port.id, network_id = %port.network_id, device_owner = %port.device_owner,
                   device_id = %port.device_id, "created service port");
    Ok(port)
}

/// Returns whether `device_owner` is a router's interface or gateway,
/// the ports the host that runs the router binds.
pub fn is_router_port(device_owner: &str) -> bool {
    device_owner.starts_with(ROUTER_INTERFACE) || device_owner == ROUTER_GATEWAY
}

/// Binds a router's port to the host that runs the router, as Neutron's
/// L3 agent does, so the port turns ACTIVE there (or `binding_failed` when
/// that host cannot reach the network). Routers run on the host that serves
/// DHCP; with no network agent alive the port stays unbound and DOWN, as a
/// router that no L3 agent hosts, until an agent starts and
/// `NetworkService::schedule_dhcp` binds it.
pub async fn bind_to_router_host(
    state: &NetworkService,
    port: &mut Port,
    network: &Network,
) -> Result<(), ApiError> {
    let Some(host) = state.dhcp_host().await? else {
        return Ok(());
    };
    port.binding.host_id = host;
    super::port_update::bind(state, port, network).await
}

/// Deletes a service port with its addresses. A port already gone is fine.
pub async fn delete(state: &NetworkService, port_id: &PortId) -> Result<(), ApiError> {
    let mut tx = state.pool().begin().await.map_err(db_error)?;
    db::ports::delete(&mut tx, port_id)
        .await
        .map_err(db_error)?;
    tx.commit().await.map_err(db_error)?;
    tracing::info!(port_id = %port_id, "deleted service port");
    Ok(())
}
