//! `/v3/roles`: global and domain-specific roles. The implication graph
//! between roles (`/v3/roles/{id}/implies`, `/v3/role_inferences`) lives in
//! the `implied` submodule.

mod implied;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use oxstack_core::validate::JsonBody;
use oxstack_core::{body_schema, ApiError, RequestContext};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{list_body, opt_str, self_link, QueryMap};
use crate::db::domains;
use crate::db::roles::{self, Role};
use crate::policy::authorize;
use crate::{Identity, IdentityState};

/// The role option that protects a role from changes and deletion until it
/// is set to false, the only option Keystone defines for roles.
const IMMUTABLE: &str = "immutable";

pub fn routes() -> Router<IdentityState> {
    Router::new()
        .route("/v3/roles", get(list).post(create))
        .route(
            "/v3/roles/{role_id}",
            get(show).patch(update).delete(remove),
        )
        .merge(implied::routes())
}

pub fn render(state: &Identity, role: &Role) -> Value {
    let description = if role.description.is_empty() {
        Value::Null
    } else {
        json!(role.description)
    };
    json!({
        "id": role.id,
        "name": role.name,
        "domain_id": role.domain_id,
        "description": description,
        "options": role.options,
        "links": self_link(state, &format!("roles/{}", role.id)),
    })
}

#[derive(Deserialize)]
pub struct RoleBody {
    role: Value,
}

// Keystone's role schema: a name with at least one non-space character, and
// `immutable` as the only option.
body_schema!(
    RoleBody,
    json!({
        "type": "object",
        "required": ["role"],
        "additionalProperties": false,
        "properties": {"role": {
            "type": "object",
            "minProperties": 1,
            "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "[\\S]+"},
                "description": super::description_schema(),
                "domain_id": {"type": ["string", "null"], "minLength": 1, "maxLength": 64},
                "options": {
                    "type": "object",
                    "properties": {"immutable": {"type": ["boolean", "null"]}},
                    "additionalProperties": false
                }
            }
        }}
    })
);

/// Finds a role by id; 404 names it as Keystone does.
pub async fn find(state: &Identity, id: &str) -> Result<Role, ApiError> {
    roles::get(state.pool(), id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("Could not find role: {id}.")))
}

fn target(role: &Role) -> Value {
    json!({"role": {"id": role.id, "name": role.name, "domain_id": role.domain_id}})
}

fn is_immutable(role: &Role) -> bool {
    role.options
        .get(IMMUTABLE)
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// Applies option changes: a null value removes the option.
fn merge_options(current: &Value, changes: &Value) -> Value {
    let mut merged: Map<String, Value> = current.as_object().cloned().unwrap_or_default();
    for (key, value) in changes.as_object().into_iter().flatten() {
        if value.is_null() {
            merged.remove(key);
        } else {
            merged.insert(key.clone(), value.clone());
        }
    }
    Value::Object(merged)
}

async fn list(
    State(state): State<IdentityState>,
    ctx: RequestContext,
    query: QueryMap,
) -> Result<Json<Value>, ApiError> {
    let domain_id = query.get("domain_id").cloned();
    authorize(
        &state,
        &ctx,
        "identity:list_roles",
        &json!({"domain_id": domain_id}),
    )?;
    // Without `domain_id` Keystone lists the global roles only.
    let items = roles::list(
        state.pool(),
        query.get("name").map(String::as_str),
        domain_id.as_deref(),
    )
    .await?
    .iter()
    .map(|r| render(&state, r))
    .collect();
    Ok(Json(list_body(&state, "roles", "roles", items)))
}

async fn create(
    State(state): State<IdentityState>,
    ctx: RequestContext,
    JsonBody(body): JsonBody<RoleBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let input = body.role;
    let name = opt_str(&input, "name").ok_or_else(|| {
        ApiError::bad_request("Invalid input for field 'role.name': the field is required.")
    })?;
    let domain_id = opt_str(&input, "domain_id");
    authorize(
        &state,
        &ctx,
        "identity:create_role",
        &json!({"role": {"name": name, "domain_id": domain_id}}),
    )?;
    if let Some(domain_id) = &domain_id {
        if domains::get(state.pool(), domain_id).await?.is_none() {
            return Err(ApiError::not_found(format!(
                "Could not find domain: {domain_id}."
            )));
        }
    }
    let role = Role {
        id: crate::db::new_id(),
        name,
        domain_id,
        description: opt_str(&input, "description").unwrap_or_default(),
        options: merge_options(&json!({}), input.get("options").unwrap_or(&Value::Null)),
    };
    roles::insert(state.pool(), &role).await?;
    tracing::info!(role_id = %role.id, role_name = %role.name, "created role");
    Ok((
        StatusCode::CREATED,
        Json(json!({ "role": render(&state, &role) })),
    ))
}

async fn show(
    State(state): State<IdentityState>,
    ctx: RequestContext,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    // Authorise before the lookup so that 404 versus 403 reveals nothing.
    authorize(
        &state,
        &ctx,
        "identity:get_role",
        &json!({"role": {"id": id}}),
    )?;
    let role = find(&state, &id).await?;
    Ok(Json(json!({ "role": render(&state, &role) })))
}

async fn update(
    State(state): State<IdentityState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<RoleBody>,
) -> Result<Json<Value>, ApiError> {
    authorize(
        &state,
        &ctx,
        "identity:update_role",
        &json!({"role": {"id": id}}),
    )?;
    let mut role = find(&state, &id).await?;
    authorize(&state, &ctx, "identity:update_role", &target(&role))?;
    let input = body.role;
    if is_immutable(&role) && !only_clears_immutable(&input) {
        return Err(ApiError::forbidden(format!(
            "Unable to update immutable role resource: `{id}`. Set resource option \"immutable\" to false first."
        )));
    }
    if let Some(domain_id) = input.get("domain_id") {
        if domain_id.as_str() != role.domain_id.as_deref() {
            return Err(ApiError::bad_request(
                "Update of `domain_id` is not allowed.",
            ));
        }
    }
    if let Some(name) = opt_str(&input, "name") {
        role.name = name;
    }
    if let Some(description) = input.get("description") {
        role.description = description.as_str().unwrap_or_default().to_owned();
    }
    if let Some(options) = input.get("options") {
        role.options = merge_options(&role.options, options);
    }
    roles::update(state.pool(), &role).await?;
    Ok(Json(json!({ "role": render(&state, &role) })))
}

// An immutable role accepts one change only: `{"options": {"immutable":
// false}}` (or null), so that it must be made mutable before anything else.
fn only_clears_immutable(input: &Value) -> bool {
    let Some(fields) = input.as_object() else {
        return false;
    };
    let clears = input
        .get("options")
        .and_then(|o| o.get(IMMUTABLE))
        .is_some_and(|v| v.is_null() || *v == Value::Bool(false));
    fields.len() == 1 && clears
}

async fn remove(
    State(state): State<IdentityState>,
    ctx: RequestContext,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    authorize(
        &state,
        &ctx,
        "identity:delete_role",
        &json!({"role": {"id": id}}),
    )?;
    let role = find(&state, &id).await?;
    authorize(&state, &ctx, "identity:delete_role", &target(&role))?;
    if is_immutable(&role) {
        return Err(ApiError::forbidden(format!(
            "Unable to delete immutable role resource: `{id}`. Set resource option \"immutable\" to false first."
        )));
    }
    roles::delete(state.pool(), &id).await?;
    tracing::info!(role_id = %id, role_name = %role.name, "deleted role and its assignments");
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_option_removes_it() {
        let merged = merge_options(&json!({"immutable": true}), &json!({"immutable": null}));
        assert_eq!(merged, json!({}));
    }

    #[test]
    fn immutable_role_accepts_only_clearing_the_option() {
        assert!(only_clears_immutable(
            &json!({"options": {"immutable": false}})
        ));
        assert!(only_clears_immutable(
            &json!({"options": {"immutable": null}})
        ));
        assert!(!only_clears_immutable(
            &json!({"options": {"immutable": true}})
        ));
        assert!(!only_clears_immutable(
            &json!({"name": "x", "options": {"immutable": false}})
        ));
        assert!(!only_clears_immutable(&json!({"name": "x"})));
    }
}
