//! `/os-quota-class-sets/{class}`: show and update a quota class. The
//! `default` class sets every project's default limits.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use oxstack_core::microversion::Microversion;
use oxstack_core::ApiError;
use serde_json::{json, Map, Value};

use super::quota_sets::parse_limits;
use super::{parse_body, ComputeState, Version};
use crate::policy::Caller;
use crate::quota_class;

pub fn routes() -> Router<ComputeState> {
    Router::new().route("/os-quota-class-sets/{class}", get(show).put(update))
}

fn check_class(class: &str) -> Result<(), ApiError> {
    if class.is_empty() || class.len() > 255 {
        return Err(ApiError::bad_request(
            "Invalid quota class: use a name of 1 to 255 characters.",
        ));
    }
    Ok(())
}

/// Renders the limits of a class at `version`, with `id` when given
/// (Nova's update response has none).
fn class_set(
    limits: &std::collections::BTreeMap<String, i64>,
    version: Microversion,
    id: Option<&str>,
) -> Value {
    let mut body = Map::new();
    if let Some(id) = id {
        body.insert("id".into(), json!(id));
    }
    for (resource, limit) in limits {
        if quota_class::shown_at(resource, version) {
            body.insert(resource.clone(), json!(limit));
        }
    }
    Value::Object(body)
}

async fn show(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
    Path(class): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.authorize(
        &state.policy,
        "os_compute_api:os-quota-class-sets:show",
        json!({}),
    )?;
    check_class(&class)?;
    let limits = quota_class::class_limits(&state, &class).await?;
    Ok(Json(
        json!({ "quota_class_set": class_set(&limits, version, Some(&class)) }),
    ))
}

async fn update(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
    Path(class): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    caller.authorize(
        &state.policy,
        "os_compute_api:os-quota-class-sets:update",
        json!({}),
    )?;
    check_class(&class)?;
    let changes = parse_limits(&parse_body(&body)?, "quota_class_set", false, |resource| {
        quota_class::shown_at(resource, version)
    })?;
    quota_class::set_class_limits(&state, &class, &changes).await?;
    tracing::info!(quota_class = %class, ?changes, "quota class updated");

    let limits = quota_class::class_limits(&state, &class).await?;
    Ok(Json(
        json!({ "quota_class_set": class_set(&limits, version, None) }),
    ))
}
