//! A router's `external_gateway_info`: parsing it, and creating or
//! removing the gateway port on the external network.

use oxstack_core::ApiError;
use serde_json::{json, Map, Value};

use super::body::{self, bad_request};
use super::db_error;
use super::networks;
use super::port_input::{self as input, IpRequest};
use super::service_ports::{self, ServicePort};
use crate::db;
use crate::model::{NetworkId, Port, ProjectId, Router, ROUTER_GATEWAY};
use crate::policy::Caller;
use crate::NetworkService;

/// The change a request makes to the gateway.
#[derive(Debug)]
pub enum GatewayRequest {
    /// `{}` or null: remove the gateway, as `router unset --external-gateway` sends.
    Clear,
    Set {
        network_id: NetworkId,
        enable_snat: Option<bool>,
        external_fixed_ips: Option<Vec<IpRequest>>,
    },
}

/// Returns Neutron's 400 for a router request, `Bad router request: …`.
pub fn bad_router_request(message: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("Bad router request: {message}.")).with_type("BadRequest")
}

/// Reads `external_gateway_info`: `None` when the request does not name it.
pub fn parse(object: &Map<String, Value>) -> Result<Option<GatewayRequest>, ApiError> {
    let info = match object.get("external_gateway_info") {
        None => return Ok(None),
        Some(Value::Null) => return Ok(Some(GatewayRequest::Clear)),
        Some(Value::Object(info)) if info.is_empty() => return Ok(Some(GatewayRequest::Clear)),
        Some(Value::Object(info)) => info,
        Some(other) => {
            return Err(body::invalid_attribute(
                "external_gateway_info",
                format!("'{other}' is not a dictionary"),
            ))
        }
    };
    if let Some(key) = info
        .keys()
        .find(|key| !["network_id", "enable_snat", "external_fixed_ips"].contains(&key.as_str()))
    {
        return Err(body::invalid_attribute(
            "external_gateway_info",
            format!("'{key}' is not a valid key"),
        ));
    }
    let Some(network_id) = body::uuid(info, "network_id")? else {
        return Err(body::invalid_attribute(
            "external_gateway_info",
            "'network_id' is required",
        ));
    };
    let external_fixed_ips = match info.get("external_fixed_ips") {
        None | Some(Value::Null) => None,
        Some(list) => {
            let mut wrapper = Map::new();
            wrapper.insert("fixed_ips".to_owned(), list.clone());
            input::fixed_ips(&wrapper)?
        }
    };
    Ok(Some(GatewayRequest::Set {
        network_id: NetworkId::new(network_id),
        enable_snat: body::boolean(info, "enable_snat")?,
        external_fixed_ips,
    }))
}

/// Returns the gateway attributes that `request` sets and that have their
/// own policy rule (admin only by default).
pub fn admin_attributes(request: &GatewayRequest) -> Vec<&'static str> {
    let mut fields = Vec::new();
    if let GatewayRequest::Set {
        enable_snat,
        external_fixed_ips,
        ..
    } = request
    {
        if enable_snat.is_some() {
            fields.push("external_gateway_info:enable_snat");
        }
        if external_fixed_ips.is_some() {
            fields.push("external_gateway_info:external_fixed_ips");
        }
    }
    fields
}

/// Renders `external_gateway_info` from the router and its gateway port.
pub fn render(router: &Router, gateway_port: Option<&Port>) -> Value {
    let Some((network_id, _)) = &router.gateway else {
        return Value::Null;
    };
    let fixed_ips: Vec<Value> = gateway_port
        .map(|port| {
            port.fixed_ips
                .iter()
                .map(|f| json!({"subnet_id": f.subnet_id, "ip_address": f.ip_address.to_string()}))
                .collect()
        })
        .unwrap_or_default();
    json!({
        "network_id": network_id,
        "enable_snat": router.enable_snat,
        "external_fixed_ips": fixed_ips,
    })
}

/// Applies `request` to `router` in memory, creating the new gateway port
/// first. The caller stores the router, then calls [`Applied::finish`] to
/// delete the replaced gateway port, or [`Applied::undo`] to delete the new
/// one when storing failed.
pub async fn apply(
    state: &NetworkService,
    caller: &Caller,
    router: &mut Router,
    request: GatewayRequest,
) -> Result<Applied, ApiError> {
    let old_port = router.gateway.as_ref().map(|(_, port)| port.clone());
    let GatewayRequest::Set {
        network_id,
        enable_snat,
        external_fixed_ips,
    } = request
    else {
        router.gateway = None;
        router.enable_snat = true;
        return Ok(Applied {
            created: None,
            replaced: old_port,
        });
    };
    let same_network = router
        .gateway
        .as_ref()
        .is_some_and(|(current, _)| *current == network_id);
    router.enable_snat = enable_snat.unwrap_or(if same_network {
        router.enable_snat
    } else {
        true
    });
    if same_network && external_fixed_ips.is_none() {
        return Ok(Applied {
            created: None,
            replaced: None,
        });
    }

    let network = networks::find_visible(state, caller, &network_id).await?;
    if !network.external {
        return Err(bad_router_request(format!(
            "Network {network_id} is not an external network"
        )));
    }
    let subnets = db::subnets::list_for_network(state.pool(), &network_id)
        .await
        .map_err(db_error)?;
    if subnets.is_empty() {
        return Err(bad_router_request(format!(
            "external network {network_id} has no subnet to take a gateway address from; \
             create a subnet on it first"
        )));
    }
    let port = service_ports::create(
        state,
        ServicePort {
            network: &network,
            project_id: ProjectId::new(""),
            device_owner: ROUTER_GATEWAY,
            device_id: router.id.to_string(),
            requests: external_fixed_ips,
        },
    )
    .await?;
    router.gateway = Some((network_id, port.id.clone()));
    Ok(Applied {
        created: Some(port),
        replaced: old_port,
    })
}

/// The ports a gateway change made and left behind.
pub struct Applied {
    /// The new gateway port.
    pub created: Option<Port>,
    /// The gateway port that the change replaced or removed.
    pub replaced: Option<crate::model::PortId>,
}

impl Applied {
    /// Deletes the replaced gateway port after the router row is stored.
    pub async fn finish(self, state: &NetworkService) -> Result<(), ApiError> {
        if let Some(port_id) = &self.replaced {
            service_ports::delete(state, port_id).await?;
        }
        Ok(())
    }

    /// Deletes the new gateway port when the router row could not be stored.
    pub async fn undo(self, state: &NetworkService) {
        if let Some(port) = &self.created {
            if let Err(error) = service_ports::delete(state, &port.id).await {
                tracing::error!(port_id = %port.id, error = %error.message,
                                "failed to delete the gateway port of a failed router change");
            }
        }
    }
}

/// Rejects a gateway removal while floating IPs go through it.
pub async fn check_removable(state: &NetworkService, router: &Router) -> Result<(), ApiError> {
    let used = db::floatingips::count_via_router(state.pool(), &router.id)
        .await
        .map_err(db_error)?;
    if used > 0 {
        return Err(ApiError::conflict(format!(
            "Gateway cannot be updated for router {}, since a gateway to external network {} is \
             required by one or more floating IPs; disassociate them first.",
            router.id,
            router
                .gateway
                .as_ref()
                .map(|(n, _)| n.as_str())
                .unwrap_or_default()
        ))
        .with_type("RouterExternalGatewayInUseByFloatingIp"));
    }
    Ok(())
}

pub fn unsupported(field: &str) -> ApiError {
    bad_request(format!(
        "'{field}' routers are not supported; omit it or set it to false."
    ))
}
