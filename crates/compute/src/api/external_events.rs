//! `os-server-external-events`: notifications other services (Neutron,
//! Cinder) send about servers. Each event gets its own result code: 200
//! when accepted, 404 for an unknown server, 422 for a server without a
//! host. The response is a 207 when any event failed, and a 404 when none
//! was accepted, as in Nova.
//!
//! NOTE: accepted events are logged only. The conductor does not wait for
//! `network-vif-plugged`, and the server view reads ports from the network
//! service on every request, so `network-changed` has no cache to refresh.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use oxstack_core::microversion::Microversion;
use oxstack_core::ApiError;
use serde_json::{json, Map, Value};

use super::{authorize_without_target, db_error, parse_body, ComputeState, Version};
use crate::policy::Caller;
use crate::server::store;

pub fn routes() -> Router<ComputeState> {
    Router::new().route("/os-server-external-events", post(create))
}

/// Returns the event names accepted at `version`.
fn event_names(version: Microversion) -> Vec<&'static str> {
    let mut names = vec![
        "network-changed",
        "network-vif-plugged",
        "network-vif-unplugged",
        "network-vif-deleted",
    ];
    if version.at_least(2, 51) {
        names.push("volume-extended");
    }
    if version.at_least(2, 76) {
        names.push("power-update");
    }
    if version.at_least(2, 82) {
        names.push("accelerator-request-bound");
    }
    names
}

const STATUSES: &[&str] = &["failed", "completed", "in-progress"];

fn invalid(message: String) -> ApiError {
    ApiError::bad_request(format!(
        "Invalid input for field/attribute events. {message}"
    ))
}

/// Checks one event against Nova's request schema.
fn check_event(event: &Value, version: Microversion) -> Result<Map<String, Value>, ApiError> {
    let Some(fields) = event.as_object() else {
        return Err(invalid(format!(
            "Value: {event}. Each event must be an object."
        )));
    };
    for key in fields.keys() {
        if !matches!(key.as_str(), "name" | "server_uuid" | "status" | "tag") {
            return Err(invalid(format!(
                "Additional properties are not allowed ('{key}' was unexpected)"
            )));
        }
    }
    let names = event_names(version);
    match fields.get("name").and_then(Value::as_str) {
        Some(name) if names.contains(&name) => {}
        Some(name) => return Err(invalid(format!("'{name}' is not one of {names:?}"))),
        None => {
            return Err(invalid(
                "'name' is a required property and must be a string".to_owned(),
            ))
        }
    }
    match fields.get("server_uuid").and_then(Value::as_str) {
        Some(id) if uuid::Uuid::parse_str(id).is_ok() => {}
        Some(id) => return Err(invalid(format!("'{id}' is not a 'uuid'"))),
        None => {
            return Err(invalid(
                "'server_uuid' is a required property and must be a string".to_owned(),
            ))
        }
    }
    if let Some(status) = fields.get("status") {
        if !status
            .as_str()
            .is_some_and(|status| STATUSES.contains(&status))
        {
            return Err(invalid(format!("{status} is not one of {STATUSES:?}")));
        }
    }
    if let Some(tag) = fields.get("tag") {
        if tag.as_str().is_none_or(|tag| tag.chars().count() > 255) {
            return Err(invalid(format!(
                "{tag} is not a string of at most 255 characters"
            )));
        }
    }
    Ok(fields.clone())
}

async fn create(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    authorize_without_target(
        &state,
        &caller,
        "os_compute_api:os-server-external-events:create",
    )?;
    let body = parse_body(&body)?;
    let events = match body.get("events") {
        Some(Value::Array(events)) if !events.is_empty() => events,
        Some(Value::Array(_)) => return Err(invalid("[] should be non-empty".to_owned())),
        _ => {
            return Err(ApiError::bad_request(
                "The request body must have a non-empty list 'events'.",
            ))
        }
    };
    let mut parsed = Vec::with_capacity(events.len());
    for event in events {
        parsed.push(check_event(event, version)?);
    }

    let mut results = Vec::with_capacity(parsed.len());
    let mut accepted = 0;
    for mut event in parsed {
        let server_id = event["server_uuid"].as_str().unwrap_or_default().to_owned();
        let name = event["name"].as_str().unwrap_or_default().to_owned();
        let server = store::get(state.pool(), &server_id)
            .await
            .map_err(db_error)?;
        let code = match server {
            None => 404,
            Some(server) if server.host.is_none() => 422,
            Some(server) => {
                accepted += 1;
                let status = event
                    .get("status")
                    .and_then(|status| status.as_str())
                    .unwrap_or("completed");
                let tag = event
                    .get("tag")
                    .and_then(|tag| tag.as_str())
                    .unwrap_or_default();
                tracing::info!(
                    server_id = %server.id,
                    host = server.host.as_deref().unwrap_or_default(),
                    event = %name,
                    status,
                    tag,
                    "external event received"
                );
                200
            }
        };
        if code != 200 {
            tracing::info!(server_id = %server_id, event = %name, code, "external event not delivered");
            event.insert("status".into(), json!("failed"));
        }
        event.insert("code".into(), json!(code));
        results.push(Value::Object(event));
    }
    if accepted == 0 {
        return Err(ApiError::not_found("No instances found for any event"));
    }
    let status = if accepted == results.len() {
        StatusCode::OK
    } else {
        StatusCode::MULTI_STATUS
    };
    Ok((status, Json(json!({"events": results}))))
}
