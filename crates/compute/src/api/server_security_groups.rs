//! Security groups of a server: `GET /servers/{id}/os-security-groups`,
//! the `addSecurityGroup` and `removeSecurityGroup` actions, and the names
//! the server view shows.
//! A server's groups are those of its ports, as in Nova with Neutron: an
//! action changes every port of the server through the network service.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use oxstack_core::{ApiError, ErrorKind};
use serde_json::{json, Value};

use super::servers::{authorize_server, load_authorized, target};
use super::ComputeState;
use crate::external::{
    ExternalError, ExternalErrorKind, PortInfo, SecurityGroupInfo, SecurityGroupRuleInfo,
};
use crate::policy::Caller;
use crate::server::Server;

pub fn routes() -> Router<ComputeState> {
    Router::new().route("/servers/{id}/os-security-groups", get(list))
}

/// Renders an ingress rule as Nova's `os-security-groups` shows a Neutron
/// rule: a protocol without ports covers 1-65535 for TCP and UDP and -1
/// otherwise, and a rule without a remote group or prefix admits
/// `0.0.0.0/0`.
fn render_rule(
    group: &SecurityGroupInfo,
    rule: &SecurityGroupRuleInfo,
    groups: &[SecurityGroupInfo],
) -> Value {
    let (from_port, to_port) = match (&rule.protocol, rule.port_range_min, rule.port_range_max) {
        (Some(protocol), None, None) => {
            if matches!(protocol.to_ascii_lowercase().as_str(), "tcp" | "udp") {
                (json!(1), json!(65535))
            } else {
                (json!(-1), json!(-1))
            }
        }
        (_, min, max) => (json!(min), json!(max)),
    };
    let (remote_group, ip_range) = match &rule.remote_group_id {
        Some(remote) => {
            let source = groups.iter().find(|g| &g.id == remote);
            let group = json!({
                "name": source.map(|g| g.name.as_str()),
                "tenant_id": source.map_or(group.project_id.as_str(), |g| g.project_id.as_str()),
            });
            (group, json!({}))
        }
        None => {
            let cidr = rule
                .remote_ip_prefix
                .clone()
                .unwrap_or_else(|| "0.0.0.0/0".to_owned());
            (json!({}), json!({"cidr": cidr}))
        }
    };
    json!({
        "id": rule.id,
        "parent_group_id": group.id,
        "ip_protocol": rule.protocol,
        "from_port": from_port,
        "to_port": to_port,
        "group": remote_group,
        "ip_range": ip_range,
    })
}

/// `GET /servers/{id}/os-security-groups`: the groups of the server's
/// ports, in Nova's format, which lists ingress rules only.
async fn list(
    State(state): State<ComputeState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let server = load_authorized(
        &state,
        &caller,
        &id,
        "os_compute_api:os-security-groups:list",
        target,
    )
    .await?;
    let ports = state
        .backends
        .networks
        .ports_for_device(&server.id, &server.project_id)
        .await
        .map_err(network_error)?;
    let mut ids: Vec<String> = Vec::new();
    for port in &ports {
        for group in &port.security_group_ids {
            if !ids.contains(group) {
                ids.push(group.clone());
            }
        }
    }
    let groups = if ids.is_empty() {
        Vec::new()
    } else {
        state
            .backends
            .networks
            .security_groups(&ids)
            .await
            .map_err(network_error)?
    };
    let rendered: Vec<Value> = groups
        .iter()
        .map(|group| {
            let rules: Vec<Value> = group
                .rules
                .iter()
                .filter(|rule| rule.direction == "ingress")
                .map(|rule| render_rule(group, rule, &groups))
                .collect();
            json!({
                "id": group.id,
                "name": group.name,
                "description": group.description,
                "tenant_id": group.project_id,
                "rules": rules,
            })
        })
        .collect();
    Ok(Json(json!({"security_groups": rendered})))
}

/// Reads the group name of `{"addSecurityGroup": {"name": …}}`, with
/// Nova's messages for a missing or empty name.
fn group_name(argument: &Value) -> Result<String, ApiError> {
    let object = argument
        .as_object()
        .ok_or_else(|| ApiError::bad_request("Missing parameter dict"))?;
    let name = match object.get("name") {
        None => return Err(ApiError::bad_request("Security group not specified")),
        Some(Value::String(name)) => name.clone(),
        Some(Value::Null) => String::new(),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Invalid input for field/attribute name. Value: {other}. The security group name must be a string."
            )))
        }
    };
    if name.trim().is_empty() {
        return Err(ApiError::bad_request("Security group name cannot be empty"));
    }
    Ok(name)
}

fn network_error(error: ExternalError) -> ApiError {
    match error.kind {
        ExternalErrorKind::NotFound => ApiError::not_found(error.message),
        ExternalErrorKind::Conflict => ApiError::conflict(error.message),
        ExternalErrorKind::BadRequest => ApiError::bad_request(error.message),
        ExternalErrorKind::Unavailable => ApiError::new(ErrorKind::Unavailable, error.message),
    }
}

/// Resolves `name` in the caller's project and reads the server's ports:
/// what both actions start from.
async fn group_and_ports(
    state: &ComputeState,
    caller: &Caller,
    server: &Server,
    name: &str,
) -> Result<(String, Vec<PortInfo>), ApiError> {
    let networks = &state.backends.networks;
    let group_id = match networks
        .security_group_ids(&caller.ctx.auth, &[name.to_owned()])
        .await
    {
        Ok(ids) => ids.into_iter().next().unwrap_or_default(),
        Err(error) if error.kind == ExternalErrorKind::NotFound => {
            return Err(ApiError::not_found(format!(
                "Security group {name} not found."
            )))
        }
        Err(error) => return Err(network_error(error)),
    };
    let ports = networks
        .ports_for_device(&server.id, &server.project_id)
        .await
        .map_err(network_error)?;
    if ports.is_empty() {
        return Err(ApiError::not_found(format!(
            "instance_id {} could not be found as device id on any ports",
            server.id
        )));
    }
    Ok((group_id, ports))
}

/// `addSecurityGroup`: adds the group named `name` to every port of the
/// server. A port that has it already is left as it is.
pub async fn add(
    state: &ComputeState,
    caller: &Caller,
    server: &Server,
    argument: &Value,
) -> Result<Response, ApiError> {
    authorize_server(
        state,
        caller,
        server,
        "os_compute_api:os-security-groups:add",
        target,
    )?;
    let name = group_name(argument)?;
    let (group_id, ports) = group_and_ports(state, caller, server, &name).await?;
    for port in ports {
        if port.security_group_ids.contains(&group_id) {
            continue;
        }
        let mut groups = port.security_group_ids.clone();
        groups.push(group_id.clone());
        state
            .backends
            .networks
            .set_port_security_groups(&port.id, &groups)
            .await
            .map_err(|error| match error.kind {
                // Neutron refuses groups on a port without port security,
                // which Nova reports as SecurityGroupCannotBeApplied (400).
                ExternalErrorKind::Conflict | ExternalErrorKind::BadRequest => {
                    ApiError::bad_request(format!(
                        "Network requires port_security_enabled and subnet associated in order to apply security groups: {}",
                        error.message
                    ))
                }
                _ => network_error(error),
            })?;
        tracing::info!(server_id = %server.id, port_id = %port.id, security_group_id = %group_id, "security group added to port");
    }
    Ok(StatusCode::ACCEPTED.into_response())
}

/// `removeSecurityGroup`: removes the group named `name` from every port
/// of the server; a group on none of them is Nova's 400.
pub async fn remove(
    state: &ComputeState,
    caller: &Caller,
    server: &Server,
    argument: &Value,
) -> Result<Response, ApiError> {
    authorize_server(
        state,
        caller,
        server,
        "os_compute_api:os-security-groups:remove",
        target,
    )?;
    let name = group_name(argument)?;
    let (group_id, ports) = group_and_ports(state, caller, server, &name).await?;
    let holding: Vec<PortInfo> = ports
        .into_iter()
        .filter(|port| port.security_group_ids.contains(&group_id))
        .collect();
    if holding.is_empty() {
        return Err(ApiError::bad_request(format!(
            "Security group {name} is not associated with the instance {}",
            server.id
        )));
    }
    for port in holding {
        let groups: Vec<String> = port
            .security_group_ids
            .iter()
            .filter(|id| **id != group_id)
            .cloned()
            .collect();
        state
            .backends
            .networks
            .set_port_security_groups(&port.id, &groups)
            .await
            .map_err(network_error)?;
        tracing::info!(server_id = %server.id, port_id = %port.id, security_group_id = %group_id, "security group removed from port");
    }
    Ok(StatusCode::ACCEPTED.into_response())
}

/// Returns the names of the security groups on `ports`, each once, in the
/// order they first appear; `None` when the network service cannot name
/// them.
pub async fn names_on_ports(state: &ComputeState, ports: &[PortInfo]) -> Option<Vec<String>> {
    let mut ids: Vec<String> = Vec::new();
    for port in ports {
        for id in &port.security_group_ids {
            if !ids.contains(id) {
                ids.push(id.clone());
            }
        }
    }
    if ids.is_empty() {
        return Some(Vec::new());
    }
    match state.backends.networks.security_group_names(&ids).await {
        Ok(names) => Some(names),
        Err(error) => {
            tracing::warn!(error = %error, "could not read the names of the server's security groups");
            None
        }
    }
}

/// Returns `server` with the security group names of its `ports`, which
/// the detailed view shows: an action or a port update may have changed
/// them since the server was created.
pub async fn with_port_groups(state: &ComputeState, server: &Server, ports: &[PortInfo]) -> Server {
    let mut shown = server.clone();
    if ports.is_empty() {
        return shown;
    }
    if let Some(names) = names_on_ports(state, ports).await {
        shown.security_group_names = names;
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn group_name_needs_a_name() {
        assert_eq!(group_name(&json!({"name": "web"})).unwrap(), "web");
        assert!(group_name(&json!({})).is_err());
        assert!(group_name(&json!({"name": "  "})).is_err());
        assert!(group_name(&json!("web")).is_err());
        assert!(group_name(&json!({"name": 3})).is_err());
    }
}
