//! Flavor access lists: which projects may see and use a private flavor.
//! `GET /flavors/{id}/os-flavor-access` and the `addTenantAccess` and
//! `removeTenantAccess` actions, all admin-only by default.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use oxstack_core::ApiError;
use serde_json::{json, Value};

use super::flavor_view::{self, Flavor};
use super::{db_error, parse_body, ComputeState, Version};
use crate::policy::Caller;

pub fn routes() -> Router<ComputeState> {
    Router::new()
        .route("/flavors/{id}/os-flavor-access", get(list))
        .route("/flavors/{id}/action", post(action))
}

async fn load(state: &ComputeState, id: &str) -> Result<Flavor, ApiError> {
    flavor_view::load(state, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("Flavor {id} could not be found.")))
}

async fn access_body(state: &ComputeState, id: &str) -> Result<Json<Value>, ApiError> {
    let projects = flavor_view::access_projects(state, id).await?;
    let entries: Vec<Value> = projects
        .iter()
        .map(|project| json!({"flavor_id": id, "tenant_id": project}))
        .collect();
    Ok(Json(json!({ "flavor_access": entries })))
}

async fn list(
    State(state): State<ComputeState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.authorize(&state.policy, "os_compute_api:os-flavor-access", json!({}))?;
    let flavor = load(&state, &id).await?;
    if flavor.is_public {
        return Err(ApiError::not_found(
            "Access list not available for public flavors.",
        ));
    }
    access_body(&state, &id).await
}

/// Reads the `tenant` of an access action body.
fn tenant(body: &Value, action: &str) -> Result<String, ApiError> {
    body[action]["tenant"]
        .as_str()
        .filter(|t| !t.is_empty() && t.len() <= 255)
        .map(str::to_owned)
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "Invalid input for field/attribute {action}. 'tenant' is a required non-empty string."
            ))
        })
}

async fn action(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let body = parse_body(&body)?;
    if body.get("addTenantAccess").is_some() {
        caller.authorize(
            &state.policy,
            "os_compute_api:os-flavor-access:add_tenant_access",
            json!({}),
        )?;
        let project = tenant(&body, "addTenantAccess")?;
        let flavor = load(&state, &id).await?;
        // From 2.7 Nova rejects access entries on a public flavor, which
        // would have no effect.
        if flavor.is_public && version.at_least(2, 7) {
            return Err(ApiError::conflict("Can not add access to a public flavor."));
        }
        let result = sqlx::query(
            "INSERT INTO compute_flavor_access (flavor_id, project_id) VALUES ($1, $2)",
        )
        .bind(&id)
        .bind(&project)
        .execute(state.pool())
        .await;
        match result {
            Ok(_) => {}
            Err(error) if oxstack_store::is_unique_violation(&error) => {
                return Err(ApiError::conflict(format!(
                    "Flavor access already exists for flavor {id} and project {project} combination."
                )))
            }
            Err(error) => return Err(db_error(error)),
        }
        tracing::info!(flavor_id = %id, project_id = %project, "flavor access added");
        return access_body(&state, &id).await;
    }
    if body.get("removeTenantAccess").is_some() {
        caller.authorize(
            &state.policy,
            "os_compute_api:os-flavor-access:remove_tenant_access",
            json!({}),
        )?;
        let project = tenant(&body, "removeTenantAccess")?;
        load(&state, &id).await?;
        let result = sqlx::query(
            "DELETE FROM compute_flavor_access WHERE flavor_id = $1 AND project_id = $2",
        )
        .bind(&id)
        .bind(&project)
        .execute(state.pool())
        .await
        .map_err(db_error)?;
        if result.rows_affected() == 0 {
            return Err(ApiError::not_found(format!(
                "Flavor access not found for {id} / {project} combination."
            )));
        }
        tracing::info!(flavor_id = %id, project_id = %project, "flavor access removed");
        return access_body(&state, &id).await;
    }
    Err(ApiError::bad_request(
        "Invalid flavor action: expected addTenantAccess or removeTenantAccess.",
    ))
}
