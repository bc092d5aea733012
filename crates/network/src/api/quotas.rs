//! `/v2.0/quotas`: per-project limits on network resources. Projects read
//! their own; admins read all, set and reset them. Enforcement is in
//! `crate::quota`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use oxstack_core::ApiError;
use serde_json::{json, Map, Value};

use super::body::{self, NeutronBody};
use super::{db_error, NetworkState};
use crate::model::ProjectId;
use crate::policy::Caller;
use crate::quota::{self, Resource, RESOURCES, UNLIMITED};
use crate::NetworkService;

pub fn routes() -> Router<NetworkState> {
    Router::new()
        .route("/v2.0/quotas", get(list))
        .route(
            "/v2.0/quotas/{project_id}",
            get(show).put(update).delete(reset),
        )
        .route("/v2.0/quotas/{project_id}/default", get(defaults))
        .route("/v2.0/quotas/{project_id}/details", get(details))
}

fn target(project_id: &ProjectId) -> Value {
    json!({"project_id": project_id, "tenant_id": project_id})
}

/// Returns every resource's limit for `project_id`, defaults filled in.
async fn limits(
    state: &NetworkService,
    project_id: &ProjectId,
) -> Result<Map<String, Value>, ApiError> {
    let stored = quota::stored_limits(state.pool(), project_id)
        .await
        .map_err(db_error)?;
    let mut body = Map::new();
    for resource in RESOURCES {
        let limit = stored
            .iter()
            .find(|(stored, _)| stored == resource)
            .map_or(resource.default_limit(), |(_, limit)| *limit);
        body.insert(resource.name().to_owned(), json!(limit));
    }
    Ok(body)
}

fn authorize_read(
    state: &NetworkService,
    caller: &Caller,
    project_id: &ProjectId,
) -> Result<(), ApiError> {
    if caller.allows(&state.policy, "get_quota", &target(project_id)) {
        return Ok(());
    }
    Err(ApiError::forbidden(format!(
        "Non-admin is not authorized to access quotas for project {project_id}; only its own \
         project's quotas are visible."
    ))
    .with_type("NotAuthorized"))
}

async fn list(State(state): State<NetworkState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.authorize(&state.policy, "update_quota", &json!({}))?;
    let mut quotas = Vec::new();
    for project_id in quota::projects_with_limits(state.pool())
        .await
        .map_err(db_error)?
    {
        let mut body = limits(&state, &project_id).await?;
        body.insert("project_id".to_owned(), json!(project_id));
        body.insert("tenant_id".to_owned(), json!(project_id));
        quotas.push(Value::Object(body));
    }
    Ok(Json(json!({ "quotas": quotas })))
}

async fn show(
    State(state): State<NetworkState>,
    caller: Caller,
    Path(project_id): Path<ProjectId>,
) -> Result<Json<Value>, ApiError> {
    authorize_read(&state, &caller, &project_id)?;
    Ok(Json(json!({ "quota": limits(&state, &project_id).await? })))
}

async fn defaults(
    State(state): State<NetworkState>,
    caller: Caller,
    Path(project_id): Path<ProjectId>,
) -> Result<Json<Value>, ApiError> {
    authorize_read(&state, &caller, &project_id)?;
    let body: Map<String, Value> = RESOURCES
        .iter()
        .map(|resource| (resource.name().to_owned(), json!(resource.default_limit())))
        .collect();
    Ok(Json(json!({ "quota": body })))
}

async fn details(
    State(state): State<NetworkState>,
    caller: Caller,
    Path(project_id): Path<ProjectId>,
) -> Result<Json<Value>, ApiError> {
    authorize_read(&state, &caller, &project_id)?;
    let limits = limits(&state, &project_id).await?;
    let mut body = Map::new();
    for resource in RESOURCES {
        let used = quota::usage(state.pool(), &project_id, *resource)
            .await
            .map_err(db_error)?;
        body.insert(
            resource.name().to_owned(),
            json!({"limit": limits[resource.name()], "used": used, "reserved": 0}),
        );
    }
    Ok(Json(json!({ "quota": body })))
}

/// Reads the limits of a `{"quota": {...}}` body: known resources, each an
/// integer of at least -1 (unlimited).
fn parse_limits(request: Value) -> Result<Vec<(Resource, i64)>, ApiError> {
    let names: Vec<&str> = RESOURCES.iter().map(|r| r.name()).collect();
    let object = body::resource_object(request, "quota", &names)?;
    let mut limits = Vec::new();
    for (name, _) in &object {
        let Some(resource) = Resource::parse(name) else {
            continue;
        };
        let Some(limit) = body::integer(&object, name)? else {
            return Err(body::invalid_attribute(name, "'None' is not an integer"));
        };
        if limit < UNLIMITED {
            return Err(body::invalid_attribute(
                name,
                format!("'{limit}' should be greater than or equal to -1 (-1 means unlimited)"),
            ));
        }
        limits.push((resource, limit));
    }
    Ok(limits)
}

async fn update(
    State(state): State<NetworkState>,
    caller: Caller,
    Path(project_id): Path<ProjectId>,
    NeutronBody(request): NeutronBody,
) -> Result<Json<Value>, ApiError> {
    caller.authorize(&state.policy, "update_quota", &target(&project_id))?;
    let limits = parse_limits(request)?;
    let mut tx = state.pool().begin().await.map_err(db_error)?;
    for (resource, limit) in &limits {
        quota::set_limit(&mut *tx, &project_id, *resource, *limit)
            .await
            .map_err(db_error)?;
    }
    tx.commit().await.map_err(db_error)?;
    tracing::info!(project_id = %project_id, changed = limits.len(), "updated network quotas");
    Ok(Json(
        json!({ "quota": self::limits(&state, &project_id).await? }),
    ))
}

async fn reset(
    State(state): State<NetworkState>,
    caller: Caller,
    Path(project_id): Path<ProjectId>,
) -> Result<StatusCode, ApiError> {
    caller.authorize(&state.policy, "delete_quota", &target(&project_id))?;
    quota::reset(state.pool(), &project_id)
        .await
        .map_err(db_error)?;
    tracing::info!(project_id = %project_id, "reset network quotas to the defaults");
    Ok(StatusCode::NO_CONTENT)
}
