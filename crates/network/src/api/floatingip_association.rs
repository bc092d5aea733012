//! Associating a floating IP with a port's fixed IP: which fixed IP, and
//! which router translates it. Neutron's rule: a router with a gateway on
//! the floating IP's network must have an interface on the fixed IP's
//! subnet.

use std::net::IpAddr;

use oxstack_core::ApiError;

use super::{db_error, ports};
use crate::db;
use crate::model::{FloatingIp, Port, PortId, RouterId, ROUTER_INTERFACE};
use crate::policy::Caller;
use crate::NetworkService;

/// The port, fixed IP and router of an association.
pub struct Association {
    pub port: Port,
    pub fixed_ip_address: IpAddr,
    pub router_id: RouterId,
}

/// Returns Neutron's 400 for a floating IP request, `Bad floatingip request: …`.
pub fn bad_floatingip_request(message: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("Bad floatingip request: {message}.")).with_type("BadRequest")
}

/// Works out the association of `fip` with `port_id`, optionally on
/// `fixed_ip`; the first IPv4 address of the port otherwise.
pub async fn resolve(
    state: &NetworkService,
    caller: &Caller,
    fip: &FloatingIp,
    port_id: &PortId,
    fixed_ip: Option<IpAddr>,
) -> Result<Association, ApiError> {
    let (port, _) = ports::find_visible(state, caller, port_id).await?;
    if port.project_id != fip.project_id && !caller.is_admin {
        return Err(bad_floatingip_request(format!(
            "Cannot associate floating IP {} with port {port_id}, since that port is owned by a \
             different project",
            fip.id
        )));
    }
    let fixed_ip = match fixed_ip {
        Some(address) => port
            .fixed_ips
            .iter()
            .find(|f| f.ip_address == address)
            .ok_or_else(|| {
                bad_floatingip_request(format!("Port {port_id} does not have fixed ip {address}"))
            })?,
        None => port
            .fixed_ips
            .iter()
            .find(|f| f.ip_address.is_ipv4())
            .ok_or_else(|| {
                bad_floatingip_request(format!(
                    "Port {port_id} does not have any IPv4 address to associate a floating IP with"
                ))
            })?,
    }
    .clone();

    check_not_associated(state, fip, &port.id, fixed_ip.ip_address).await?;
    let router_id = router_for(state, fip, &fixed_ip.subnet_id)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "External network {} is not reachable from subnet {}. Therefore, cannot associate \
             Port {port_id} with a Floating IP; add an interface on that subnet to a router \
             whose gateway is on the external network.",
                fip.floating_network_id, fixed_ip.subnet_id
            ))
            .with_type("ExternalGatewayForFloatingIPNotFound")
        })?;
    Ok(Association {
        port,
        fixed_ip_address: fixed_ip.ip_address,
        router_id,
    })
}

// One fixed IP gets at most one floating IP per external network.
async fn check_not_associated(
    state: &NetworkService,
    fip: &FloatingIp,
    port_id: &PortId,
    fixed_ip: IpAddr,
) -> Result<(), ApiError> {
    let others = db::floatingips::list(state.pool())
        .await
        .map_err(db_error)?;
    let taken = others.iter().any(|other| {
        other.id != fip.id
            && other.floating_network_id == fip.floating_network_id
            && other.port_id.as_ref() == Some(port_id)
            && other.fixed_ip_address == Some(fixed_ip)
    });
    if taken {
        return Err(ApiError::conflict(format!(
            "Cannot associate floating IP {} ({}) with port {port_id} using fixed IP {fixed_ip}, \
             as that fixed IP already has a floating IP on external network {}.",
            fip.floating_ip_address, fip.id, fip.floating_network_id
        ))
        .with_type("FloatingIPPortAlreadyAssociated"));
    }
    Ok(())
}

/// Returns the router with a gateway on the floating IP's network and an
/// interface on `subnet_id`, the oldest when there are several.
async fn router_for(
    state: &NetworkService,
    fip: &FloatingIp,
    subnet_id: &crate::model::SubnetId,
) -> Result<Option<RouterId>, ApiError> {
    let routers = db::routers::list(state.pool()).await.map_err(db_error)?;
    for router in routers.iter().filter(|router| {
        router
            .gateway
            .as_ref()
            .is_some_and(|(network, _)| *network == fip.floating_network_id)
    }) {
        let interface_ids =
            db::ports::ids_for_device(state.pool(), router.id.as_str(), ROUTER_INTERFACE)
                .await
                .map_err(db_error)?;
        for id in &interface_ids {
            let port = db::ports::get(state.pool(), id).await.map_err(db_error)?;
            if port.is_some_and(|port| port.fixed_ips.iter().any(|f| f.subnet_id == *subnet_id)) {
                return Ok(Some(router.id.clone()));
            }
        }
    }
    Ok(None)
}

/// Applies `association` to `fip`, or clears it for `None`.
pub fn apply(fip: &mut FloatingIp, association: Option<&Association>) {
    match association {
        Some(association) => {
            fip.port_id = Some(association.port.id.clone());
            fip.fixed_ip_address = Some(association.fixed_ip_address);
            fip.router_id = Some(association.router_id.clone());
            fip.status = "ACTIVE".to_owned();
        }
        None => {
            fip.port_id = None;
            fip.fixed_ip_address = None;
            fip.router_id = None;
            fip.status = "DOWN".to_owned();
        }
    }
}
