//! `/servers/{id}/os-instance-actions`: the requests recorded on a server
//! and, per request, the events of carrying it out. Deleted servers keep
//! their actions from 2.21; paging and time filters exist from 2.58; event
//! `hostId` from 2.62 and `details` from 2.84. Events are shown to members
//! from 2.51, their tracebacks and hosts to admins only.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use oxstack_core::microversion::Microversion;
use oxstack_core::pagination::{next_link, PageRequest};
use oxstack_core::ApiError;
use serde_json::{json, Map, Value};

use super::server_filters::parse_time;
use super::server_view::{host_id, micros_time};
use super::{db_error, ComputeState, QueryPairs, Version};
use crate::policy::Caller;
use crate::server::actions::{self, ActionRecord};
use crate::server::{store, Server};

const MAX_LIMIT: usize = 1000;

pub fn routes() -> Router<ComputeState> {
    Router::new()
        .route("/servers/{id}/os-instance-actions", get(list))
        .route("/servers/{id}/os-instance-actions/{request_id}", get(show))
}

/// Loads the server if the caller may read it, including a deleted one from 2.21.
async fn load_any(
    state: &ComputeState,
    caller: &Caller,
    id: &str,
    version: Microversion,
) -> Result<Server, ApiError> {
    let not_found = || ApiError::not_found(format!("Instance {id} could not be found."));
    let server = if version.at_least(2, 21) {
        store::get_any(state.pool(), id).await
    } else {
        store::get(state.pool(), id).await
    }
    .map_err(db_error)?
    .ok_or_else(not_found)?;
    if caller.is_admin() || server.project_id == caller.project_id() {
        Ok(server)
    } else {
        Err(not_found())
    }
}

fn render_action(action: &ActionRecord, version: Microversion) -> Map<String, Value> {
    let mut body = Map::new();
    body.insert("action".into(), json!(action.action));
    body.insert("instance_uuid".into(), json!(action.server_id));
    body.insert("request_id".into(), json!(action.request_id));
    body.insert("user_id".into(), json!(action.user_id));
    body.insert("project_id".into(), json!(action.project_id));
    body.insert("start_time".into(), json!(micros_time(action.start_time)));
    body.insert("message".into(), json!(action.message));
    if version.at_least(2, 58) {
        body.insert("updated_at".into(), json!(micros_time(action.updated_at)));
    }
    body
}

fn query_value<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Reads a time filter as unix microseconds, the unit of action times.
fn time_filter(pairs: &[(String, String)], key: &str) -> Result<Option<i64>, ApiError> {
    query_value(pairs, key)
        .map(|text| {
            parse_time(text).map(|seconds| seconds.saturating_mul(1_000_000)).ok_or_else(|| {
                ApiError::bad_request(format!("Invalid input for query parameters {key}. Value: {text}. It is not a date-time."))
            })
        })
        .transpose()
}

async fn list(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
    Path(id): Path<String>,
    query: QueryPairs,
) -> Result<Json<Value>, ApiError> {
    let server = load_any(&state, &caller, &id, version).await?;
    caller.authorize(
        &state.policy,
        "os_compute_api:os-instance-actions:list",
        json!({"project_id": server.project_id}),
    )?;
    let mut records = actions::list(state.pool(), &id).await.map_err(db_error)?;
    if !version.at_least(2, 58) {
        let items: Vec<Value> = records
            .iter()
            .map(|a| Value::Object(render_action(a, version)))
            .collect();
        return Ok(Json(json!({ "instanceActions": items })));
    }

    let since = time_filter(&query.0, "changes-since")?;
    let before = if version.at_least(2, 66) {
        time_filter(&query.0, "changes-before")?
    } else {
        None
    };
    if let (Some(since), Some(before)) = (since, before) {
        if before < since {
            return Err(ApiError::bad_request(
                "The value of changes-since must be less than or equal to changes-before.",
            ));
        }
    }
    records.retain(|a| {
        since.is_none_or(|t| a.updated_at >= t) && before.is_none_or(|t| a.updated_at <= t)
    });
    let page = PageRequest::from_query(&query.0, MAX_LIMIT)?;
    let start = match &page.marker {
        None => 0,
        Some(marker) => records
            .iter()
            .position(|a| &a.request_id == marker)
            .map(|p| p + 1)
            .ok_or_else(|| ApiError::bad_request(format!("Marker {marker} could not be found.")))?,
    };
    let limit = page.limit.unwrap_or(MAX_LIMIT);
    let shown: Vec<&ActionRecord> = records.iter().skip(start).take(limit).collect();
    let items: Vec<Value> = shown
        .iter()
        .map(|a| Value::Object(render_action(a, version)))
        .collect();
    let mut body = json!({ "instanceActions": items });
    if limit > 0 && shown.len() == limit {
        if let Some(last) = shown.last() {
            let base = state.v21_url(&format!("servers/{id}/os-instance-actions"));
            body["links"] =
                json!([{"rel": "next", "href": next_link(&base, &query.0, &last.request_id)}]);
        }
    }
    Ok(Json(body))
}

async fn show(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
    Path((id, request_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let server = load_any(&state, &caller, &id, version).await?;
    let target = json!({"project_id": server.project_id});
    caller.authorize(
        &state.policy,
        "os_compute_api:os-instance-actions:show",
        target.clone(),
    )?;
    let action = actions::get(state.pool(), &id, &request_id)
        .await
        .map_err(db_error)?
        .ok_or_else(|| ApiError::not_found(format!("Action {request_id} not found")))?;
    let mut body = render_action(&action, version);

    let allowed = |rule: &str| {
        caller
            .authorize(&state.policy, rule, target.clone())
            .is_ok()
    };
    let admin_events = allowed("os_compute_api:os-instance-actions:events");
    let show_events = admin_events || version.at_least(2, 51);
    if show_events {
        let show_host = admin_events && version.at_least(2, 62);
        let show_host_id = version.at_least(2, 62);
        let show_details =
            version.at_least(2, 84) && allowed("os_compute_api:os-instance-actions:events:details");
        let events = actions::events(state.pool(), &id, &request_id)
            .await
            .map_err(db_error)?;
        let project = if action.project_id.is_empty() {
            &server.project_id
        } else {
            &action.project_id
        };
        let rendered: Vec<Value> = events
            .iter()
            .map(|event| {
                let mut item = json!({
                    "event": event.event,
                    "start_time": micros_time(event.start_time),
                    "finish_time": event.finish_time.map(micros_time),
                    "result": event.result,
                });
                if admin_events {
                    item["traceback"] = json!(event.traceback);
                }
                if show_host {
                    item["host"] = json!(event.host.clone().unwrap_or_default());
                }
                if show_host_id {
                    item["hostId"] = json!(host_id(project, event.host.as_deref()));
                }
                if show_details {
                    // The failure's message is the event's details; a
                    // successful event has none.
                    let details = if event.result.as_deref() == Some("Error") {
                        event.traceback.clone()
                    } else {
                        None
                    };
                    item["details"] = json!(details);
                }
                item
            })
            .collect();
        body.insert("events".into(), Value::Array(rendered));
    }
    Ok(Json(json!({ "instanceAction": body })))
}
