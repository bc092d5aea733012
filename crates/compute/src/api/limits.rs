//! `GET /limits`: the absolute limits of the caller's project (or, for
//! admins, of `tenant_id`) and their usage, with the keys each
//! microversion shows. Rate limits are always empty, as in Nova.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use oxstack_core::ApiError;
use serde_json::{json, Map, Value};

use super::{ComputeState, QueryPairs, Version};
use crate::policy::Caller;
use crate::quota;

pub fn routes() -> Router<ComputeState> {
    Router::new().route("/limits", get(show))
}

/// An absolute limits key, the quota resource behind it, and the first
/// microversion (major, minor) without the key.
type LimitKey = (&'static str, &'static str, Option<(u32, u32)>);

const LIMIT_KEYS: &[LimitKey] = &[
    ("maxImageMeta", "metadata_items", Some((2, 39))),
    ("maxPersonality", "injected_files", Some((2, 57))),
    (
        "maxPersonalitySize",
        "injected_file_content_bytes",
        Some((2, 57)),
    ),
    (
        "maxSecurityGroupRules",
        "security_group_rules",
        Some((2, 36)),
    ),
    ("maxSecurityGroups", "security_groups", Some((2, 36))),
    ("maxServerGroupMembers", "server_group_members", None),
    ("maxServerGroups", "server_groups", None),
    ("maxServerMeta", "metadata_items", None),
    ("maxTotalCores", "cores", None),
    ("maxTotalFloatingIps", "floating_ips", Some((2, 36))),
    ("maxTotalInstances", "instances", None),
    ("maxTotalKeypairs", "key_pairs", None),
    ("maxTotalRAMSize", "ram", None),
];

const USAGE_KEYS: &[LimitKey] = &[
    ("totalCoresUsed", "cores", None),
    ("totalFloatingIpsUsed", "floating_ips", Some((2, 36))),
    ("totalInstancesUsed", "instances", None),
    ("totalRAMUsed", "ram", None),
    ("totalSecurityGroupsUsed", "security_groups", Some((2, 36))),
    ("totalServerGroupsUsed", "server_groups", None),
];

async fn show(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
    query: QueryPairs,
) -> Result<Json<Value>, ApiError> {
    caller.authorize(
        &state.policy,
        "os_compute_api:limits",
        json!({"project_id": caller.project_id()}),
    )?;
    let requested = query
        .0
        .iter()
        .find(|(k, _)| k == "tenant_id")
        .map(|(_, v)| v.clone());
    // Reading another project's limits needs its own rule. Without it the
    // request gets a 403, as in Nova, rather than the caller's own limits.
    let project_id = match requested {
        Some(project) if project != caller.project_id() => {
            caller.authorize(
                &state.policy,
                "os_compute_api:limits:other_project",
                json!({"project_id": project}),
            )?;
            project
        }
        _ => caller.project_id().to_owned(),
    };
    let limits = quota::limits(&state, &project_id, Some(caller.user_id())).await?;
    let usage = quota::usage(&state, &project_id, caller.user_id(), false).await?;
    let shown = |removed: Option<(u32, u32)>| {
        removed.is_none_or(|(major, minor)| !version.at_least(major, minor))
    };
    let mut absolute = Map::new();
    for (key, resource, removed) in LIMIT_KEYS {
        if shown(*removed) {
            absolute.insert(
                (*key).into(),
                json!(limits.get(*resource).copied().unwrap_or(-1)),
            );
        }
    }
    for (key, resource, removed) in USAGE_KEYS {
        if shown(*removed) {
            absolute.insert(
                (*key).into(),
                json!(usage.get(*resource).copied().unwrap_or(0)),
            );
        }
    }
    Ok(Json(json!({"limits": {"rate": [], "absolute": absolute}})))
}
