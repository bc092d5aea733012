//! `os-hosts` (deprecated, removed at microversion 2.43): the hosts of the
//! enabled services, a compute host's resources and what its servers use,
//! and enabling or disabling a compute host. Host power actions and
//! maintenance mode are a 501, as with Nova's libvirt driver.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use oxstack_core::microversion::Microversion;
use oxstack_core::{ApiError, ErrorKind};
use serde_json::{json, Value};

use super::{authorize_without_target, db_error, parse_body, ComputeState, QueryPairs, Version};
use crate::host::records::{self, NodeRecord, COMPUTE_BINARY, INTERNAL_ZONE};
use crate::policy::Caller;
use crate::server::store::{self, ListScope};

pub fn routes() -> Router<ComputeState> {
    Router::new()
        .route("/os-hosts", get(index))
        .route("/os-hosts/{host}", get(show).put(update))
        .route("/os-hosts/{host}/startup", get(startup))
        .route("/os-hosts/{host}/shutdown", get(shutdown))
        .route("/os-hosts/{host}/reboot", get(reboot))
}

/// Rejects microversions from 2.43, where Nova removed `os-hosts`, with 404.
fn check_version(version: Microversion) -> Result<(), ApiError> {
    if version.at_least(2, 43) {
        Err(ApiError::not_found("The resource could not be found."))
    } else {
        Ok(())
    }
}

fn authorize(state: &ComputeState, caller: &Caller, action: &str) -> Result<(), ApiError> {
    authorize_without_target(state, caller, &format!("os_compute_api:os-hosts:{action}"))
}

/// Returns the RPC topic Nova shows as `service`: the binary without `nova-`.
fn topic(binary: &str) -> &str {
    binary.strip_prefix("nova-").unwrap_or(binary)
}

fn host_not_found(host: &str) -> ApiError {
    ApiError::not_found(format!("Compute host {host} could not be found."))
}

/// Loads the compute node of `host`; a host without a `nova-compute`
/// service is not a compute host.
async fn compute_node(state: &ComputeState, host: &str) -> Result<NodeRecord, ApiError> {
    let service = records::find_service(state.pool(), host, COMPUTE_BINARY)
        .await
        .map_err(db_error)?;
    let node = records::node_by_host(state.pool(), host)
        .await
        .map_err(db_error)?;
    match (service, node) {
        (Some(_), Some(node)) => Ok(node),
        _ => Err(host_not_found(host)),
    }
}

async fn index(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
    query: QueryPairs,
) -> Result<Json<Value>, ApiError> {
    check_version(version)?;
    authorize(&state, &caller, "list")?;
    // An empty `zone` is no filter, as in Nova.
    let zone = query
        .0
        .iter()
        .find(|(key, _)| key == "zone")
        .map(|(_, value)| value.as_str())
        .filter(|zone| !zone.is_empty());
    let services = records::list_services(state.pool())
        .await
        .map_err(db_error)?;
    let nodes: BTreeMap<String, NodeRecord> = records::list_nodes(state.pool())
        .await
        .map_err(db_error)?
        .into_iter()
        .map(|node| (node.host.clone(), node))
        .collect();
    let mut hosts = Vec::new();
    // Nova lists the hosts of enabled services only.
    for service in services.iter().filter(|service| !service.disabled) {
        let service_zone = if service.binary == COMPUTE_BINARY {
            nodes
                .get(&service.host)
                .map_or(state.config.default_availability_zone.as_str(), |node| {
                    node.availability_zone.as_str()
                })
        } else {
            INTERNAL_ZONE
        };
        if zone.is_some_and(|zone| zone != service_zone) {
            continue;
        }
        hosts.push(json!({
            "host_name": service.host,
            "service": topic(&service.binary),
            "zone": service_zone,
        }));
    }
    Ok(Json(json!({"hosts": hosts})))
}

/// Sums of vCPUs, MiB of RAM and GB of disk.
#[derive(Default, Clone, Copy)]
struct Amounts {
    cpu: i64,
    memory_mb: i64,
    disk_gb: i64,
}

fn resource(host: &str, project: &str, amounts: Amounts) -> Value {
    json!({"resource": {
        "host": host,
        "project": project,
        "cpu": amounts.cpu,
        "memory_mb": amounts.memory_mb,
        "disk_gb": amounts.disk_gb,
    }})
}

/// Returns the host's totals, what is used now (the servers plus what the
/// host keeps back), the servers' sum (`(used_max)`) and each project's.
async fn show(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
    Path(host): Path<String>,
) -> Result<Json<Value>, ApiError> {
    check_version(version)?;
    authorize(&state, &caller, "show")?;
    let node = compute_node(&state, &host).await?;
    let scope = ListScope {
        host: Some(host.clone()),
        ..ListScope::default()
    };
    let servers = store::list(state.pool(), &scope).await.map_err(db_error)?;

    let mut used = Amounts::default();
    let mut by_project: BTreeMap<String, Amounts> = BTreeMap::new();
    for server in &servers {
        let flavor = &server.flavor;
        for amounts in [
            &mut used,
            by_project.entry(server.project_id.clone()).or_default(),
        ] {
            amounts.cpu += flavor.vcpus;
            amounts.memory_mb += flavor.ram;
            amounts.disk_gb += flavor.disk + flavor.ephemeral;
        }
    }
    let total = Amounts {
        cpu: node.vcpus,
        memory_mb: node.memory_mb,
        disk_gb: node.local_gb,
    };
    let used_now = Amounts {
        cpu: used.cpu,
        memory_mb: used.memory_mb + node.reserved_memory_mb,
        disk_gb: used.disk_gb + node.reserved_disk_gb,
    };
    let mut resources = vec![
        resource(&host, "(total)", total),
        resource(&host, "(used_now)", used_now),
        resource(&host, "(used_max)", used),
    ];
    for (project, amounts) in by_project {
        resources.push(resource(&host, &project, amounts));
    }
    Ok(Json(json!({"host": resources})))
}

/// Reads `enable`/`disable` in any of the spellings Nova's schema allows.
fn parse_switch(body: &Value, key: &str) -> Result<Option<bool>, ApiError> {
    match body.get(key) {
        None => Ok(None),
        Some(Value::String(text)) if matches!(text.as_str(), "enable" | "Enable" | "ENABLE") => Ok(Some(true)),
        Some(Value::String(text)) if matches!(text.as_str(), "disable" | "Disable" | "DISABLE") => Ok(Some(false)),
        Some(other) => Err(ApiError::bad_request(format!(
            "Invalid input for field/attribute {key}. Value: {other}. It must be 'enable' or 'disable'."
        ))),
    }
}

async fn update(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
    Path(host): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    check_version(version)?;
    let body = parse_body(&body)?;
    let Some(fields) = body.as_object() else {
        return Err(ApiError::bad_request("The request body must be an object."));
    };
    if let Some(unknown) = fields
        .keys()
        .find(|key| !matches!(key.as_str(), "status" | "maintenance_mode"))
    {
        return Err(ApiError::bad_request(format!(
            "Additional properties are not allowed ('{unknown}' was unexpected)"
        )));
    }
    let status = parse_switch(&body, "status")?;
    let maintenance = parse_switch(&body, "maintenance_mode")?;
    if status.is_none() && maintenance.is_none() {
        return Err(ApiError::bad_request(
            "The request body must set 'status' or 'maintenance_mode' to 'enable' or 'disable'.",
        ));
    }
    authorize(&state, &caller, "update")?;
    compute_node(&state, &host).await?;
    if maintenance.is_some() {
        return Err(ApiError::new(
            ErrorKind::NotImplemented,
            "Virt driver does not implement host maintenance mode.",
        ));
    }
    let mut result = json!({"host": host});
    if let Some(enabled) = status {
        let service = records::find_service(state.pool(), &host, COMPUTE_BINARY)
            .await
            .map_err(db_error)?
            .ok_or_else(|| host_not_found(&host))?;
        let reason = (!enabled).then_some("Disabled through os-hosts");
        records::update_service(
            state.pool(),
            service.id,
            !enabled,
            reason,
            service.forced_down,
        )
        .await
        .map_err(db_error)?;
        tracing::info!(host = %host, enabled, "compute host status set through os-hosts");
        result["status"] = json!(if enabled { "enabled" } else { "disabled" });
    }
    Ok(Json(result))
}

/// Checks a power action on `host`. OxStack does not power hosts on or
/// off, as Nova's libvirt driver does not.
async fn power_action(
    state: &ComputeState,
    caller: &Caller,
    version: Microversion,
    host: &str,
    action: &str,
) -> Result<Json<Value>, ApiError> {
    check_version(version)?;
    authorize(state, caller, action)?;
    compute_node(state, host).await?;
    Err(ApiError::new(
        ErrorKind::NotImplemented,
        "Virt driver does not implement host power management.",
    ))
}

async fn startup(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
    Path(host): Path<String>,
) -> Result<Json<Value>, ApiError> {
    power_action(&state, &caller, version, &host, "start").await
}

async fn shutdown(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
    Path(host): Path<String>,
) -> Result<Json<Value>, ApiError> {
    power_action(&state, &caller, version, &host, "shutdown").await
}

async fn reboot(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
    Path(host): Path<String>,
) -> Result<Json<Value>, ApiError> {
    power_action(&state, &caller, version, &host, "reboot").await
}
