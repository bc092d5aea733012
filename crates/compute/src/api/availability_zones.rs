//! `/os-availability-zone`: the one zone, `nova`, that OxStack's compute
//! hosts belong to.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use oxstack_core::ApiError;
use serde_json::{json, Value};

use super::ComputeState;
use crate::policy::Caller;

/// The zone every compute host is in, Nova's default zone name.
pub const DEFAULT_ZONE: &str = "nova";

pub fn routes() -> Router<ComputeState> {
    Router::new()
        .route("/os-availability-zone", get(list))
        .route("/os-availability-zone/detail", get(detail))
}

async fn list(State(state): State<ComputeState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.authorize(
        &state.policy,
        "os_compute_api:os-availability-zone:list",
        json!({}),
    )?;
    Ok(Json(json!({"availabilityZoneInfo": [{
        "zoneName": DEFAULT_ZONE,
        "zoneState": {"available": true},
        "hosts": null,
    }]})))
}

async fn detail(
    State(state): State<ComputeState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.authorize(
        &state.policy,
        "os_compute_api:os-availability-zone:detail",
        json!({}),
    )?;
    // NOTE: `hosts` stays empty until compute hosts register their services.
    Ok(Json(json!({"availabilityZoneInfo": [{
        "zoneName": DEFAULT_ZONE,
        "zoneState": {"available": true},
        "hosts": {},
    }]})))
}
