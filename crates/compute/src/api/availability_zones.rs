//! `/os-availability-zone`: the zones of the compute hosts. A host is in
//! its aggregate's zone ([`crate::aggregate`]) or else in the zone it
//! registered in (`nova` by default); the detail adds, for admins, each
//! host's services and the `internal` zone of the other services.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use oxstack_core::ApiError;
use serde_json::{json, Map, Value};

use super::hypervisors::nova_time;
use super::{authorize_without_target, db_error, ComputeState};
use crate::host::records::{self, ServiceRecord, COMPUTE_BINARY, INTERNAL_ZONE};
use crate::policy::Caller;

/// Nova's default zone name, which compute hosts are in unless configured
/// otherwise.
pub const DEFAULT_ZONE: &str = "nova";

pub fn routes() -> Router<ComputeState> {
    Router::new()
        .route("/os-availability-zone", get(list))
        .route("/os-availability-zone/detail", get(detail))
}

/// Returns each zone with the services in it, `internal` included.
async fn zones(state: &ComputeState) -> Result<BTreeMap<String, Vec<ServiceRecord>>, ApiError> {
    let aggregate_zones = crate::aggregate::host_zones(state.pool())
        .await
        .map_err(db_error)?;
    let nodes = records::list_nodes(state.pool()).await.map_err(db_error)?;
    let services = records::list_services(state.pool())
        .await
        .map_err(db_error)?;
    let mut zones: BTreeMap<String, Vec<ServiceRecord>> = BTreeMap::new();
    for service in services {
        let zone = if service.binary != COMPUTE_BINARY {
            INTERNAL_ZONE.to_owned()
        } else if let Some(zone) = aggregate_zones.get(&service.host) {
            zone.clone()
        } else {
            nodes
                .iter()
                .find(|node| node.host == service.host)
                .map_or_else(
                    || state.config.default_availability_zone.clone(),
                    |node| node.availability_zone.clone(),
                )
        };
        zones.entry(zone).or_default().push(service);
    }
    Ok(zones)
}

/// Returns whether `service` is enabled and sends heartbeats.
fn is_available(state: &ComputeState, service: &ServiceRecord, now: i64) -> bool {
    !service.disabled && service.is_up(now, state.config.service_down_time)
}

async fn list(State(state): State<ComputeState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    authorize_without_target(&state, &caller, "os_compute_api:os-availability-zone:list")?;
    let now = chrono::Utc::now().timestamp();
    let mut info = Vec::new();
    for (zone, services) in zones(&state).await? {
        if zone == INTERNAL_ZONE {
            continue;
        }
        let available = services
            .iter()
            .any(|service| is_available(&state, service, now));
        info.push(json!({"zoneName": zone, "zoneState": {"available": available}, "hosts": null}));
    }
    // Before any compute host registers, the default zone is the one a
    // server can request.
    if info.is_empty() {
        info.push(json!({
            "zoneName": state.config.default_availability_zone,
            "zoneState": {"available": true},
            "hosts": null,
        }));
    }
    Ok(Json(json!({ "availabilityZoneInfo": info })))
}

async fn detail(
    State(state): State<ComputeState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    authorize_without_target(
        &state,
        &caller,
        "os_compute_api:os-availability-zone:detail",
    )?;
    let now = chrono::Utc::now().timestamp();
    let mut info = Vec::new();
    for (zone, services) in zones(&state).await? {
        let mut hosts: Map<String, Value> = Map::new();
        for service in &services {
            let entry = hosts
                .entry(service.host.clone())
                .or_insert_with(|| json!({}));
            entry[service.binary.as_str()] = json!({
                "available": is_available(&state, service, now),
                "active": !service.disabled,
                "updated_at": nova_time(service.updated_at),
            });
        }
        let available = services
            .iter()
            .any(|service| is_available(&state, service, now));
        info.push(json!({"zoneName": zone, "zoneState": {"available": available}, "hosts": hosts}));
    }
    if info.is_empty() {
        info.push(json!({
            "zoneName": state.config.default_availability_zone,
            "zoneState": {"available": true},
            "hosts": {},
        }));
    }
    Ok(Json(json!({ "availabilityZoneInfo": info })))
}
