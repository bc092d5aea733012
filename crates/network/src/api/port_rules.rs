//! Neutron's rules on what a port request may set: the policy on single
//! attributes, the security groups a port gets, and how port security
//! combines with groups and address pairs.

use oxstack_core::ApiError;
use serde_json::{Map, Value};

use super::body;
use super::{db_error, security_groups};
use crate::db;
use crate::model::{Port, SecurityGroupId};
use crate::policy::Caller;
use crate::NetworkService;

/// Checks the attribute rules of a port request as Neutron does: each
/// guarded attribute the request sets needs its own rule. `action` is
/// `create_port` or `update_port`.
pub fn authorize_attributes(
    state: &NetworkService,
    caller: &Caller,
    action: &str,
    object: &Map<String, Value>,
    target: &Value,
) -> Result<(), ApiError> {
    let mut guarded: Vec<String> = [
        "mac_address",
        "port_security_enabled",
        "allowed_address_pairs",
        "binding:host_id",
        "binding:profile",
        "binding:vnic_type",
    ]
    .iter()
    .filter(|field| object.contains_key(**field))
    .map(|field| (*field).to_owned())
    .collect();
    // Only owners of the network may claim a port for one of Neutron's own
    // services (`network:router_interface` and the like).
    if body::string(object, "device_owner", 255)?.is_some_and(|o| Port::is_network_owned(&o)) {
        guarded.push("device_owner".to_owned());
    }
    if let Some(Value::Array(entries)) = object.get("fixed_ips") {
        for key in ["ip_address", "subnet_id"] {
            if entries.iter().any(|entry| entry.get(key).is_some()) {
                guarded.push(format!("fixed_ips:{key}"));
            }
        }
    }
    for field in guarded {
        caller.authorize(&state.policy, &format!("{action}:{field}"), target)?;
    }
    Ok(())
}

/// Returns the security groups a port gets: none for Neutron's own ports,
/// else those requested (each of the port's project), or else the default
/// group of the port's project when port security is on.
pub async fn security_groups_for(
    state: &NetworkService,
    caller: &Caller,
    requested: Option<Vec<String>>,
    port: &Port,
) -> Result<Vec<SecurityGroupId>, ApiError> {
    // Neutron applies no groups to its own ports, even requested ones.
    if Port::is_network_owned(&port.device_owner) {
        return Ok(Vec::new());
    }
    let Some(requested) = requested else {
        if !port.port_security_enabled {
            return Ok(Vec::new());
        }
        let default = security_groups::ensure_default_group(state, &port.project_id).await?;
        return Ok(vec![default]);
    };
    if !requested.is_empty() && !port.port_security_enabled {
        return Err(ApiError::bad_request(
            "Port security must be enabled and port must have an IP address in order to use \
             security groups.",
        )
        .with_type("PortSecurityAndIPRequiredForSecurityGroups"));
    }
    let mut groups: Vec<SecurityGroupId> = Vec::new();
    for id in requested.into_iter().map(SecurityGroupId::new) {
        // A port may only use groups of its own project, as in Neutron.
        let group = security_groups::find_visible(state, caller, &id).await?;
        if group.project_id != port.project_id {
            return Err(security_groups::not_found(&id));
        }
        if !groups.contains(&id) {
            groups.push(id);
        }
    }
    Ok(groups)
}

/// Rejects address pairs on a port without port security.
pub fn check_address_pairs_allowed(port: &Port) -> Result<(), ApiError> {
    if !port.port_security_enabled && !port.allowed_address_pairs.is_empty() {
        return Err(ApiError::conflict(
            "Port Security must be enabled in order to have allowed address pairs on a port.",
        )
        .with_type("AddressPairAndPortSecurityRequired"));
    }
    Ok(())
}

/// Returns `SecurityGroupNotFound` when one of `groups` was deleted, which
/// breaks the foreign key of a port's groups; retrying would not help.
pub async fn check_groups_exist(
    state: &NetworkService,
    groups: &[SecurityGroupId],
) -> Result<(), ApiError> {
    for id in groups {
        if db::security_groups::get_group(state.pool(), id)
            .await
            .map_err(db_error)?
            .is_none()
        {
            return Err(security_groups::not_found(id));
        }
    }
    Ok(())
}
