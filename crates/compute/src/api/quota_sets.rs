//! `/os-quota-sets/{project_id}`: show, detail (with usage), defaults,
//! update and reset of a project's compute quotas, with the resources each
//! microversion shows.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use oxstack_core::microversion::Microversion;
use oxstack_core::ApiError;
use serde_json::{json, Map, Value};

use super::{parse_body, ComputeState, QueryPairs, Version};
use crate::policy::Caller;
use crate::quota;

pub fn routes() -> Router<ComputeState> {
    Router::new()
        .route(
            "/os-quota-sets/{project_id}",
            get(show).put(update).delete(reset),
        )
        .route("/os-quota-sets/{project_id}/defaults", get(defaults))
        .route("/os-quota-sets/{project_id}/detail", get(detail))
}

/// Renders `limits` as a quota set at `version`, with `id` when given
/// (Nova's update response has none).
fn quota_set(limits: &BTreeMap<String, i64>, version: Microversion, id: Option<&str>) -> Value {
    let mut body = Map::new();
    if let Some(id) = id {
        body.insert("id".into(), json!(id));
    }
    for (resource, limit) in limits {
        if quota::shown_at(resource, version) {
            body.insert(resource.clone(), json!(limit));
        }
    }
    Value::Object(body)
}

/// Returns the `user_id` query parameter, which addresses one user's
/// quotas within the project.
fn user_param(query: &QueryPairs) -> Option<&str> {
    query
        .0
        .iter()
        .find(|(key, _)| key == "user_id")
        .map(|(_, value)| value.as_str())
}

async fn show(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
    Path(project_id): Path<String>,
    query: QueryPairs,
) -> Result<Json<Value>, ApiError> {
    caller.authorize(
        &state.policy,
        "os_compute_api:os-quota-sets:show",
        json!({"project_id": project_id}),
    )?;
    let limits = quota::limits(&state, &project_id, user_param(&query)).await?;
    Ok(Json(
        json!({ "quota_set": quota_set(&limits, version, Some(&project_id)) }),
    ))
}

async fn defaults(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
    Path(project_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.authorize(
        &state.policy,
        "os_compute_api:os-quota-sets:defaults",
        json!({"project_id": project_id}),
    )?;
    Ok(Json(
        json!({ "quota_set": quota_set(&quota::defaults(&state).await?, version, Some(&project_id)) }),
    ))
}

async fn detail(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
    Path(project_id): Path<String>,
    query: QueryPairs,
) -> Result<Json<Value>, ApiError> {
    caller.authorize(
        &state.policy,
        "os_compute_api:os-quota-sets:detail",
        json!({"project_id": project_id}),
    )?;
    let user_id = user_param(&query);
    let limits = quota::limits(&state, &project_id, user_id).await?;
    // Nova counts keypairs per user: those of `user_id`, else the caller's.
    // Servers count for the project, or for `user_id` within it.
    let usage = quota::usage(
        &state,
        &project_id,
        user_id.unwrap_or(caller.user_id()),
        user_id.is_some(),
    )
    .await?;
    let mut body = Map::new();
    body.insert("id".into(), json!(project_id));
    for (resource, limit) in &limits {
        if quota::shown_at(resource, version) {
            let in_use = usage.get(resource).copied().unwrap_or(0);
            body.insert(
                resource.clone(),
                json!({"limit": limit, "in_use": in_use, "reserved": 0}),
            );
        }
    }
    Ok(Json(json!({ "quota_set": body })))
}

/// Reads the limits of an update body wrapped in `wrapper`: integers of at
/// least -1 (unlimited) for the resources `shown` accepts, plus a boolean
/// `force` where `allow_force` is set.
pub(super) fn parse_limits(
    body: &Value,
    wrapper: &str,
    allow_force: bool,
    shown: impl Fn(&str) -> bool,
) -> Result<BTreeMap<String, i64>, ApiError> {
    let object = body
        .get(wrapper)
        .and_then(Value::as_object)
        .ok_or_else(|| {
            ApiError::bad_request(format!("Invalid input: '{wrapper}' is a required object."))
        })?;
    let mut changes = BTreeMap::new();
    for (key, value) in object {
        if allow_force && key == "force" {
            if !value.is_boolean() && !value.is_string() {
                return Err(ApiError::bad_request(
                    "Invalid input for field/attribute force.",
                ));
            }
            continue;
        }
        if !shown(key) {
            return Err(ApiError::bad_request(format!(
                "Invalid input for field/attribute {wrapper}. Additional properties are not allowed ('{key}' was unexpected)."
            )));
        }
        let limit = match value {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse::<i64>().ok(),
            _ => None,
        }
        .filter(|n| *n >= -1 && *n <= i64::from(i32::MAX))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "Invalid input for field/attribute {key}. Value {value} must be an integer of at least -1."
            ))
        })?;
        changes.insert(key.clone(), limit);
    }
    Ok(changes)
}

async fn update(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
    Path(project_id): Path<String>,
    query: QueryPairs,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    caller.authorize(
        &state.policy,
        "os_compute_api:os-quota-sets:update",
        json!({"project_id": project_id}),
    )?;
    let body = parse_body(&body)?;
    let changes = parse_limits(&body, "quota_set", true, |resource| {
        quota::shown_at(resource, version)
    })?;
    let user_id = user_param(&query);
    if user_id.is_some() {
        let project_limits = quota::limits(&state, &project_id, None).await?;
        quota::check_user_limits(&changes, &project_limits)?;
    }
    if !force_requested(&body) {
        let usage = quota::usage(
            &state,
            &project_id,
            user_id.unwrap_or(caller.user_id()),
            user_id.is_some(),
        )
        .await?;
        check_not_below_usage(&changes, &usage)?;
    }
    quota::set_limits(&state, &project_id, user_id, &changes).await?;
    tracing::info!(project_id = %project_id, ?user_id, ?changes, "compute quotas updated");

    let limits = quota::limits(&state, &project_id, user_id).await?;
    Ok(Json(
        json!({ "quota_set": quota_set(&limits, version, None) }),
    ))
}

/// Reads the update's `force`, which skips the check against usage.
fn force_requested(body: &Value) -> bool {
    match &body["quota_set"]["force"] {
        Value::Bool(force) => *force,
        Value::String(text) => matches!(
            text.to_ascii_lowercase().as_str(),
            "true" | "1" | "yes" | "on" | "t" | "y"
        ),
        _ => false,
    }
}

/// Rejects a limit below what is in use, as Nova does unless `force` is
/// set; -1 (unlimited) is never below.
fn check_not_below_usage(
    changes: &BTreeMap<String, i64>,
    usage: &BTreeMap<String, i64>,
) -> Result<(), ApiError> {
    for (resource, limit) in changes {
        let in_use = usage.get(resource).copied().unwrap_or(0);
        if *limit != -1 && *limit < in_use {
            return Err(ApiError::bad_request(format!(
                "Quota limit {limit} for {resource} must be greater than or equal to already used \
                 and reserved {in_use}."
            )));
        }
    }
    Ok(())
}

async fn reset(
    State(state): State<ComputeState>,
    caller: Caller,
    Path(project_id): Path<String>,
    query: QueryPairs,
) -> Result<StatusCode, ApiError> {
    caller.authorize(
        &state.policy,
        "os_compute_api:os-quota-sets:delete",
        json!({"project_id": project_id}),
    )?;
    let user_id = user_param(&query);
    quota::reset(&state, &project_id, user_id).await?;
    tracing::info!(project_id = %project_id, ?user_id, "compute quotas reset");
    Ok(StatusCode::ACCEPTED)
}
