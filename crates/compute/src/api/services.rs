//! `/os-services`: the services of each host (`nova-compute`,
//! `nova-scheduler`, `nova-conductor`) with their state, enabling and
//! disabling scheduling to a host, forcing it down, and deleting a host's
//! service. Admin-only, as in Nova.
//!
//! Microversions: 2.11 adds `forced_down` and the `force-down` action.
//! 2.53 shows UUIDs as ids and replaces the action routes with
//! `PUT /os-services/{uuid}`. 2.75 rejects unknown query parameters.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use oxstack_core::microversion::Microversion;
use oxstack_core::ApiError;
use oxstack_placement::{PlacementError, ProviderId};
use serde_json::{json, Map, Value};

use super::hypervisors::{check_query, nova_time};
use super::{authorize_without_target, db_error, parse_body, ComputeState, QueryPairs, Version};
use crate::host::records::{self, ServiceRecord, COMPUTE_BINARY, INTERNAL_ZONE};
use crate::policy::Caller;
use crate::server::store::{self, ListScope};

pub fn routes() -> Router<ComputeState> {
    Router::new()
        .route("/os-services", get(index))
        .route("/os-services/{id}", put(update).delete(delete))
}

/// Returns Nova's zone of a service. For `nova-compute` it is the host's zone:
/// its aggregate's zone, else the zone it registered in, else the default
/// zone. Every other service is in `internal`.
async fn zone_of(state: &ComputeState, service: &ServiceRecord) -> Result<String, ApiError> {
    if service.binary != COMPUTE_BINARY {
        return Ok(INTERNAL_ZONE.to_owned());
    }
    let zones = crate::aggregate::host_zones(state.pool())
        .await
        .map_err(db_error)?;
    if let Some(zone) = zones.get(&service.host) {
        return Ok(zone.clone());
    }
    let node = records::node_by_host(state.pool(), &service.host)
        .await
        .map_err(db_error)?;
    Ok(node.map_or_else(
        || state.config.default_availability_zone.clone(),
        |n| n.availability_zone,
    ))
}

async fn render(
    state: &ComputeState,
    service: &ServiceRecord,
    version: Microversion,
) -> Result<Value, ApiError> {
    let now = chrono::Utc::now().timestamp();
    let up = service.is_up(now, state.config.service_down_time);
    let mut body = Map::new();
    let id = if version.at_least(2, 53) {
        json!(service.uuid)
    } else {
        json!(service.id)
    };
    body.insert("id".into(), id);
    body.insert("binary".into(), json!(service.binary));
    body.insert("host".into(), json!(service.host));
    body.insert("zone".into(), json!(zone_of(state, service).await?));
    body.insert(
        "status".into(),
        json!(if service.disabled {
            "disabled"
        } else {
            "enabled"
        }),
    );
    body.insert("state".into(), json!(if up { "up" } else { "down" }));
    body.insert(
        "updated_at".into(),
        json!(service.last_seen_up.map(nova_time)),
    );
    body.insert("disabled_reason".into(), json!(service.disabled_reason));
    if version.at_least(2, 11) {
        body.insert("forced_down".into(), json!(service.forced_down));
    }
    Ok(Value::Object(body))
}

async fn index(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
    query: QueryPairs,
) -> Result<Json<Value>, ApiError> {
    authorize_without_target(&state, &caller, "os_compute_api:os-services:list")?;
    if version.at_least(2, 75) {
        check_query(&query.0, &["host", "binary"])?;
    }
    let host = query
        .0
        .iter()
        .find(|(k, _)| k == "host")
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty());
    let binary = query
        .0
        .iter()
        .find(|(k, _)| k == "binary")
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty());
    let services = records::list_services(state.pool())
        .await
        .map_err(db_error)?;
    let mut items = Vec::new();
    for service in services {
        if host.is_some_and(|h| h != service.host) || binary.is_some_and(|b| b != service.binary) {
            continue;
        }
        items.push(render(&state, &service, version).await?);
    }
    Ok(Json(json!({"services": items})))
}

/// Parses a boolean as Nova's schemas accept it (JSON or its text forms).
fn body_bool(name: &str, value: &Value) -> Result<bool, ApiError> {
    let invalid = || {
        ApiError::bad_request(format!(
            "Invalid input for field/attribute {name}. Value: {value}. Use true or false."
        ))
    };
    match value {
        Value::Bool(flag) => Ok(*flag),
        Value::String(text) => match text.to_ascii_lowercase().as_str() {
            "true" | "1" | "on" | "yes" => Ok(true),
            "false" | "0" | "off" | "no" => Ok(false),
            _ => Err(invalid()),
        },
        _ => Err(invalid()),
    }
}

/// Parses an optional string field of 1 to 255 characters.
fn body_text(body: &Map<String, Value>, name: &str) -> Result<Option<String>, ApiError> {
    match body.get(name) {
        None => Ok(None),
        Some(Value::String(text)) if !text.is_empty() && text.chars().count() <= 255 => Ok(Some(text.clone())),
        Some(other) => Err(ApiError::bad_request(format!(
            "Invalid input for field/attribute {name}. Value: {other}. Give a string of 1 to 255 characters."
        ))),
    }
}

fn check_fields(body: &Map<String, Value>, allowed: &[&str]) -> Result<(), ApiError> {
    if let Some(extra) = body.keys().find(|key| !allowed.contains(&key.as_str())) {
        return Err(ApiError::bad_request(format!(
            "Invalid input for field/attribute {extra}. Additional properties are not allowed ('{extra}' was \
             unexpected)."
        )));
    }
    Ok(())
}

fn only_compute(binary: &str) -> Result<(), ApiError> {
    if binary != COMPUTE_BINARY {
        return Err(ApiError::bad_request(format!(
            "Updating a {binary} service is not supported. Only nova-compute services can be updated."
        )));
    }
    Ok(())
}

async fn update(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Json<Value>, ApiError> {
    let body = parse_body(&bytes)?;
    let Value::Object(body) = body else {
        return Err(ApiError::bad_request(
            "Invalid input: the request body must be a JSON object.",
        ));
    };
    if version.at_least(2, 53) {
        update_by_uuid(&state, &caller, version, &id, &body).await
    } else {
        update_by_action(&state, &caller, version, &id, &body).await
    }
}

/// Handles `PUT /os-services/{uuid}` from 2.53, which sets `status` (with an
/// optional `disabled_reason`) and `forced_down`.
async fn update_by_uuid(
    state: &ComputeState,
    caller: &Caller,
    version: Microversion,
    id: &str,
    body: &Map<String, Value>,
) -> Result<Json<Value>, ApiError> {
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(ApiError::bad_request(format!("Invalid uuid {id}")));
    }
    authorize_without_target(state, caller, "os_compute_api:os-services:update")?;
    check_fields(body, &["status", "disabled_reason", "forced_down"])?;
    let status = match body.get("status") {
        None => None,
        Some(Value::String(status)) if status == "enabled" || status == "disabled" => Some(status.as_str()),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Invalid input for field/attribute status. Value: {other}. Use 'enabled' or 'disabled'."
            )))
        }
    };
    let reason = body_text(body, "disabled_reason")?;
    let forced_down = body
        .get("forced_down")
        .map(|v| body_bool("forced_down", v))
        .transpose()?;

    let mut service = records::service_by_id(state.pool(), id)
        .await
        .map_err(db_error)?
        .filter(|s| s.uuid.eq_ignore_ascii_case(id))
        .ok_or_else(|| ApiError::not_found(format!("Service {id} not found.")))?;
    only_compute(&service.binary)?;

    let mut changed = false;
    match status {
        Some("enabled") => {
            if reason.is_some() {
                return Err(ApiError::bad_request(
                    "Specifying 'disabled_reason' with status 'enabled' is invalid.",
                ));
            }
            changed |= service.disabled || service.disabled_reason.is_some();
            service.disabled = false;
            service.disabled_reason = None;
        }
        Some(_) => {
            changed |= !service.disabled || service.disabled_reason != reason;
            service.disabled = true;
            service.disabled_reason = reason;
        }
        None => {}
    }
    if let Some(forced) = forced_down {
        changed |= service.forced_down != forced;
        service.forced_down = forced;
    }
    if status.is_none() && forced_down.is_none() {
        return Err(ApiError::bad_request(
            "No updates were requested. Fields 'status' or 'forced_down' should be specified.",
        ));
    }
    if changed {
        records::update_service(
            state.pool(),
            service.id,
            service.disabled,
            service.disabled_reason.as_deref(),
            service.forced_down,
        )
        .await
        .map_err(db_error)?;
        tracing::info!(
            host = %service.host,
            binary = %service.binary,
            disabled = service.disabled,
            forced_down = service.forced_down,
            "compute service updated"
        );
    }
    Ok(Json(
        json!({"service": render(state, &service, version).await?}),
    ))
}

/// Handles `PUT /os-services/{action}` before 2.53: `enable`, `disable`,
/// `disable-log-reason` and, from 2.11, `force-down`. The body names the
/// service by `host` and `binary`.
async fn update_by_action(
    state: &ComputeState,
    caller: &Caller,
    version: Microversion,
    action: &str,
    body: &Map<String, Value>,
) -> Result<Json<Value>, ApiError> {
    authorize_without_target(state, caller, "os_compute_api:os-services:update")?;
    let mut allowed = vec!["host", "binary", "disabled_reason"];
    if version.at_least(2, 11) {
        allowed.push("forced_down");
    }
    check_fields(body, &allowed)?;
    let host = body_text(body, "host")?.ok_or_else(|| {
        ApiError::bad_request(
            "Invalid input for field/attribute host. 'host' is a required property.",
        )
    })?;
    let binary = body_text(body, "binary")?.ok_or_else(|| {
        ApiError::bad_request(
            "Invalid input for field/attribute binary. 'binary' is a required property.",
        )
    })?;
    let reason = body_text(body, "disabled_reason")?;
    let known = ["enable", "disable", "disable-log-reason"].contains(&action)
        || (action == "force-down" && version.at_least(2, 11));
    if !known {
        return Err(ApiError::not_found("Unknown action"));
    }
    only_compute(&binary)?;
    let mut service = records::find_service(state.pool(), &host, &binary)
        .await
        .map_err(db_error)?
        .ok_or_else(|| {
            ApiError::not_found(format!("Could not find binary {binary} on host {host}."))
        })?;

    let response = match action {
        "enable" => {
            service.disabled = false;
            service.disabled_reason = None;
            json!({"host": host, "binary": binary, "status": "enabled"})
        }
        "disable" | "disable-log-reason" => {
            if action == "disable-log-reason" && reason.is_none() {
                return Err(ApiError::bad_request("Missing disabled reason field"));
            }
            // Plain `disable` ignores a reason, as Nova's does.
            let reason = if action == "disable" { None } else { reason };
            service.disabled = true;
            service.disabled_reason = reason.clone();
            let mut shown = json!({"host": host, "binary": binary, "status": "disabled"});
            if let Some(reason) = reason {
                shown["disabled_reason"] = json!(reason);
            }
            shown
        }
        _ => {
            let forced = body
                .get("forced_down")
                .ok_or_else(|| ApiError::bad_request("Missing forced_down field"))
                .and_then(|value| body_bool("forced_down", value))?;
            service.forced_down = forced;
            json!({"host": host, "binary": binary, "forced_down": forced})
        }
    };
    records::update_service(
        state.pool(),
        service.id,
        service.disabled,
        service.disabled_reason.as_deref(),
        service.forced_down,
    )
    .await
    .map_err(db_error)?;
    tracing::info!(host = %service.host, binary = %service.binary, action, "compute service updated");
    Ok(Json(json!({"service": response})))
}

async fn delete(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    authorize_without_target(&state, &caller, "os_compute_api:os-services:delete")?;
    if version.at_least(2, 53) {
        if uuid::Uuid::parse_str(&id).is_err() {
            return Err(ApiError::bad_request(format!("Invalid uuid {id}")));
        }
    } else if id.parse::<i64>().is_err() {
        return Err(ApiError::bad_request(format!(
            "Invalid input received: id must be an integer, not '{id}'."
        )));
    }
    let service = records::service_by_id(state.pool(), &id)
        .await
        .map_err(db_error)?
        .ok_or_else(|| ApiError::not_found(format!("Service {id} not found.")))?;

    if service.binary == COMPUTE_BINARY {
        let scope = ListScope {
            host: Some(service.host.clone()),
            ..ListScope::default()
        };
        let hosted = store::list(state.pool(), &scope).await.map_err(db_error)?;
        if !hosted.is_empty() {
            return Err(ApiError::conflict(
                "Unable to delete compute service that is hosting instances. Migrate or delete the instances first.",
            ));
        }
        if let Some(node) = records::node_by_host(state.pool(), &service.host)
            .await
            .map_err(db_error)?
        {
            match state
                .backends
                .placement
                .provider_delete(&ProviderId(node.uuid.clone()))
                .await
            {
                Ok(()) | Err(PlacementError::NotFound { .. }) => {}
                Err(error) => {
                    tracing::error!(host = %service.host, provider = %node.uuid, %error, "could not delete the resource provider");
                    return Err(error.into());
                }
            }
        }
    }
    records::delete_service(state.pool(), &service)
        .await
        .map_err(db_error)?;
    tracing::info!(host = %service.host, binary = %service.binary, "compute service deleted");
    Ok(StatusCode::NO_CONTENT)
}
