//! `/servers/{id}/os-interface`: the server's ports as Nova's interface
//! attachments (list and show, with `tag` from 2.70). Attaching and
//! detaching ports on a running server is not built and returns 501.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use oxstack_core::microversion::Microversion;
use oxstack_core::{ApiError, ErrorKind};
use serde_json::{json, Value};

use super::servers::{load_authorized, ports_of, project_target};
use super::{ComputeState, Version};
use crate::external::PortInfo;
use crate::policy::Caller;

pub fn routes() -> Router<ComputeState> {
    Router::new()
        .route("/servers/{id}/os-interface", get(list).post(attach))
        .route(
            "/servers/{id}/os-interface/{port_id}",
            get(show).delete(detach),
        )
}

/// Renders one port as an interface attachment. Device tags are not
/// stored, so `tag` (2.70) is null.
fn attachment(port: &PortInfo, version: Microversion) -> Value {
    let fixed_ips: Vec<Value> = port
        .fixed_ips
        .iter()
        .map(|ip| json!({"subnet_id": ip.subnet_id, "ip_address": ip.ip_address}))
        .collect();
    let mut body = json!({
        "net_id": port.network_id,
        "port_id": port.id,
        "mac_addr": port.mac_address,
        "port_state": port.status,
        "fixed_ips": fixed_ips,
    });
    if version.at_least(2, 70) {
        body["tag"] = Value::Null;
    }
    body
}

async fn list(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let server = load_authorized(
        &state,
        &caller,
        &id,
        "os_compute_api:os-attach-interfaces:list",
        project_target,
    )
    .await?;
    let ports = ports_of(&state, &server).await;
    let items: Vec<Value> = ports.iter().map(|port| attachment(port, version)).collect();
    Ok(Json(json!({ "interfaceAttachments": items })))
}

async fn show(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
    Path((id, port_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let server = load_authorized(
        &state,
        &caller,
        &id,
        "os_compute_api:os-attach-interfaces:show",
        project_target,
    )
    .await?;
    let ports = ports_of(&state, &server).await;
    let port = ports
        .iter()
        .find(|port| port.id == port_id)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "Instance {id} does not have a port with id {port_id}"
            ))
        })?;
    Ok(Json(
        json!({ "interfaceAttachment": attachment(port, version) }),
    ))
}

fn not_built() -> ApiError {
    ApiError::new(
        ErrorKind::NotImplemented,
        "Attaching and detaching network interfaces of an existing server is not supported by \
         this cloud; create the server with the ports it needs.",
    )
}

async fn attach(
    State(state): State<ComputeState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    load_authorized(
        &state,
        &caller,
        &id,
        "os_compute_api:os-attach-interfaces:create",
        project_target,
    )
    .await?;
    Err(not_built())
}

async fn detach(
    State(state): State<ComputeState>,
    caller: Caller,
    Path((id, _port_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    load_authorized(
        &state,
        &caller,
        &id,
        "os_compute_api:os-attach-interfaces:delete",
        project_target,
    )
    .await?;
    Err(not_built())
}
