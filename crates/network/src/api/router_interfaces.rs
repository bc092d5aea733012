//! `PUT /v2.0/routers/{id}/add_router_interface` and
//! `remove_router_interface`: attaching a router to a subnet (a new port
//! with the subnet's gateway IP) or to an existing port, and detaching it.

use axum::extract::{Path, State};
use axum::Json;
use oxstack_core::ApiError;
use serde_json::{json, Value};

use super::body::{self, NeutronBody};
use super::port_input::IpRequest;
use super::router_gateway::bad_router_request;
use super::routers::find_visible;
use super::service_ports::{self, ServicePort};
use super::{db_error, ports, subnets, NetworkState};
use crate::db;
use crate::model::{
    now, Port, PortId, Router, RouterId, SubnetId, ROUTER_GATEWAY, ROUTER_INTERFACE,
};
use crate::policy::{router_target, Caller};
use crate::NetworkService;

/// The subnet or port an interface request names.
enum Target {
    Subnet(SubnetId),
    Port(PortId),
}

fn parse_target(request: &Value) -> Result<Target, ApiError> {
    let Value::Object(object) = request else {
        return Err(bad_router_request("the body must be a JSON object"));
    };
    let subnet_id = body::string(object, "subnet_id", 255)?;
    let port_id = body::string(object, "port_id", 255)?;
    match (subnet_id, port_id) {
        (Some(_), Some(_)) => Err(bad_router_request(
            "Cannot specify both subnet-id and port-id",
        )),
        (Some(subnet_id), None) => Ok(Target::Subnet(SubnetId::new(subnet_id))),
        (None, Some(port_id)) => Ok(Target::Port(PortId::new(port_id))),
        (None, None) => Err(bad_router_request(
            "Either subnet_id or port_id must be specified",
        )),
    }
}

/// Returns the ports of `router` whose device owner is `owner`.
async fn router_ports(
    state: &NetworkService,
    router: &RouterId,
    owner: &str,
) -> Result<Vec<Port>, ApiError> {
    let ids = db::ports::ids_for_device(state.pool(), router.as_str(), owner)
        .await
        .map_err(db_error)?;
    let mut ports = Vec::with_capacity(ids.len());
    for id in &ids {
        if let Some(port) = db::ports::get(state.pool(), id).await.map_err(db_error)? {
            ports.push(port);
        }
    }
    Ok(ports)
}

/// Returns the interface ports of `router`.
async fn interfaces(state: &NetworkService, router: &RouterId) -> Result<Vec<Port>, ApiError> {
    router_ports(state, router, ROUTER_INTERFACE).await
}

/// Rejects a subnet the router already has a port on (an interface or
/// its gateway, as Neutron counts both), or one whose CIDR overlaps a
/// subnet the router is attached to.
async fn check_attachable(
    state: &NetworkService,
    router: &Router,
    subnet_ids: &[SubnetId],
) -> Result<(), ApiError> {
    let mut ports = interfaces(state, &router.id).await?;
    ports.extend(router_ports(state, &router.id, ROUTER_GATEWAY).await?);
    let attached: Vec<SubnetId> = ports
        .iter()
        .flat_map(|port| port.fixed_ips.iter().map(|f| f.subnet_id.clone()))
        .collect();
    for subnet_id in subnet_ids {
        if attached.contains(subnet_id) {
            return Err(bad_router_request(format!(
                "Router already has a port on subnet {subnet_id}"
            )));
        }
        let Some(subnet) = db::subnets::get(state.pool(), subnet_id)
            .await
            .map_err(db_error)?
        else {
            continue;
        };
        for other_id in &attached {
            let Some(other) = db::subnets::get(state.pool(), other_id)
                .await
                .map_err(db_error)?
            else {
                continue;
            };
            let overlaps = other.cidr.contains(&subnet.cidr.network())
                || subnet.cidr.contains(&other.cidr.network());
            if overlaps {
                return Err(bad_router_request(format!(
                    "Cidr {} of subnet {} overlaps with cidr {} of subnet {}",
                    subnet.cidr, subnet.id, other.cidr, other.id
                )));
            }
        }
    }
    Ok(())
}

fn interface_info(router: &Router, port: &Port, subnet_id: Option<&SubnetId>) -> Value {
    let subnet_ids: Vec<&SubnetId> = port.fixed_ips.iter().map(|f| &f.subnet_id).collect();
    let subnet_id = subnet_id.or(subnet_ids.first().copied());
    json!({
        "id": router.id,
        "tenant_id": router.project_id,
        "project_id": router.project_id,
        "port_id": port.id,
        "network_id": port.network_id,
        "subnet_id": subnet_id,
        "subnet_ids": subnet_ids,
    })
}

pub async fn add(
    State(state): State<NetworkState>,
    caller: Caller,
    Path(id): Path<RouterId>,
    NeutronBody(request): NeutronBody,
) -> Result<Json<Value>, ApiError> {
    let target = parse_target(&request)?;
    let router = find_visible(&state, &caller, &id).await?;
    caller.authorize(
        &state.policy,
        "add_router_interface",
        &router_target(&router),
    )?;
    let port = match target {
        Target::Subnet(subnet_id) => add_by_subnet(&state, &caller, &router, &subnet_id).await?,
        Target::Port(port_id) => add_by_port(&state, &caller, &router, &port_id).await?,
    };
    tracing::info!(router_id = %id, port_id = %port.id, network_id = %port.network_id,
                   "added router interface");
    Ok(Json(interface_info(&router, &port, None)))
}

async fn add_by_subnet(
    state: &NetworkService,
    caller: &Caller,
    router: &Router,
    subnet_id: &SubnetId,
) -> Result<Port, ApiError> {
    let (subnet, network) = subnets::find_visible(state, caller, subnet_id).await?;
    let Some(gateway_ip) = subnet.gateway_ip else {
        return Err(bad_router_request(format!(
            "Subnet {subnet_id} for router interface must have a gateway IP"
        )));
    };
    check_attachable(state, router, std::slice::from_ref(subnet_id)).await?;
    // Two concurrent adds of one subnet both pass the check above, but
    // only one gets the gateway address: the other fails with
    // IpAddressAlreadyAllocated.
    service_ports::create(
        state,
        ServicePort {
            network: &network,
            project_id: subnet.project_id.clone(),
            device_owner: ROUTER_INTERFACE,
            device_id: router.id.to_string(),
            requests: Some(vec![IpRequest {
                subnet_id: Some(subnet.id.clone()),
                ip_address: Some(gateway_ip),
            }]),
        },
    )
    .await
}

async fn add_by_port(
    state: &NetworkService,
    caller: &Caller,
    router: &Router,
    port_id: &PortId,
) -> Result<Port, ApiError> {
    let (mut port, network) = ports::find_visible(state, caller, port_id).await?;
    if !port.device_id.is_empty() {
        return Err(ApiError::conflict(format!(
            "Unable to complete operation on port {port_id} for network {}. Port already has an \
             attached device {}.",
            port.network_id, port.device_id
        ))
        .with_type("PortInUse"));
    }
    if port.fixed_ips.is_empty() {
        return Err(bad_router_request(format!(
            "Router port {port_id} must have at least one fixed IP"
        )));
    }
    let subnet_ids: Vec<SubnetId> = port.fixed_ips.iter().map(|f| f.subnet_id.clone()).collect();
    check_attachable(state, router, &subnet_ids).await?;

    port.device_id = router.id.to_string();
    port.device_owner = ROUTER_INTERFACE.to_owned();
    port.security_groups = Vec::new();
    service_ports::bind_to_router_host(state, &mut port, &network).await?;
    port.revision_number += 1;
    port.updated_at = now();
    let mut tx = state.pool().begin().await.map_err(db_error)?;
    let updated = db::ports::update(&mut *tx, &port).await.map_err(db_error)?;
    if !updated {
        return Err(ApiError::conflict(format!(
            "Port {port_id} was changed by another request; retry."
        ))
        .with_type("Conflict"));
    }
    db::ports::set_security_groups(&mut tx, &port.id, &port.security_groups)
        .await
        .map_err(db_error)?;
    tx.commit().await.map_err(db_error)?;
    Ok(port)
}

pub async fn remove(
    State(state): State<NetworkState>,
    caller: Caller,
    Path(id): Path<RouterId>,
    NeutronBody(request): NeutronBody,
) -> Result<Json<Value>, ApiError> {
    let target = parse_target(&request)?;
    let router = find_visible(&state, &caller, &id).await?;
    caller.authorize(
        &state.policy,
        "remove_router_interface",
        &router_target(&router),
    )?;
    let attached = interfaces(&state, &id).await?;
    let (port, subnet_id) = match &target {
        Target::Subnet(subnet_id) => {
            let port = attached
                .into_iter()
                .find(|port| port.fixed_ips.iter().any(|f| f.subnet_id == *subnet_id))
                .ok_or_else(|| {
                    ApiError::not_found(format!(
                        "Router {id} has no interface on subnet {subnet_id}"
                    ))
                    .with_type("RouterInterfaceNotFoundForSubnet")
                })?;
            (port, Some(subnet_id.clone()))
        }
        Target::Port(port_id) => {
            let port = attached
                .into_iter()
                .find(|port| port.id == *port_id)
                .ok_or_else(|| {
                    ApiError::not_found(format!(
                        "Router {id} does not have an interface with id {port_id}"
                    ))
                    .with_type("RouterInterfaceNotFound")
                })?;
            (port, None)
        }
    };
    let in_use = db::floatingips::count_via_router_on_network(state.pool(), &id, &port.network_id)
        .await
        .map_err(db_error)?;
    if in_use > 0 {
        let subnet = subnet_id
            .clone()
            .or_else(|| port.fixed_ips.first().map(|f| f.subnet_id.clone()));
        return Err(ApiError::conflict(format!(
            "Router interface for subnet {} on router {id} cannot be deleted, as it is required \
             by one or more floating IPs; disassociate them first.",
            subnet.map(|s| s.to_string()).unwrap_or_default()
        ))
        .with_type("RouterInterfaceInUseByFloatingIP"));
    }
    // NOTE: an interface port with addresses on several subnets is deleted
    // whole, where Neutron removes only the named subnet's address.
    service_ports::delete(&state, &port.id).await?;
    tracing::info!(router_id = %id, port_id = %port.id, "removed router interface");
    Ok(Json(interface_info(&router, &port, subnet_id.as_ref())))
}
