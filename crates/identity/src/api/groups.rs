//! `/v3/groups` and group membership (`/v3/groups/{id}/users/{user_id}`,
//! `/v3/users/{user_id}/groups`). Members receive every role granted to the
//! group, because the token code reads membership when it computes roles.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use oxstack_core::validate::JsonBody;
use oxstack_core::{body_schema, ApiError, RequestContext};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{bool_param, description_schema, list_body, name_schema, opt_str, self_link, QueryMap};
use crate::db::groups::{self, Group, GroupFilter};
use crate::db::{domains, users};
use crate::policy::authorize;
use crate::{Identity, IdentityState};

pub fn routes() -> Router<IdentityState> {
    Router::new()
        .route("/v3/groups", get(list).post(create))
        .route(
            "/v3/groups/{group_id}",
            get(show).patch(update).delete(remove),
        )
        .route("/v3/groups/{group_id}/users", get(list_members))
        .route(
            "/v3/groups/{group_id}/users/{user_id}",
            get(check_member).put(add_member).delete(remove_member),
        )
        .route("/v3/users/{user_id}/groups", get(list_for_user))
}

pub fn render(state: &Identity, group: &Group) -> Value {
    json!({
        "id": group.id,
        "name": group.name,
        "domain_id": group.domain_id,
        "description": group.description,
        "links": self_link(state, &format!("groups/{}", group.id)),
    })
}

#[derive(Deserialize)]
pub struct GroupBody {
    group: Value,
}

body_schema!(
    GroupBody,
    json!({
        "type": "object",
        "required": ["group"],
        "properties": {"group": {
            "type": "object",
            "properties": {
                "name": name_schema(),
                "description": description_schema(),
                "domain_id": {"type": "string", "minLength": 1, "maxLength": 64}
            }
        }}
    })
);

/// Finds a group by id; 404 names it as Keystone does.
pub async fn find(state: &Identity, id: &str) -> Result<Group, ApiError> {
    groups::get(state.pool(), id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("Could not find group: {id}.")))
}

fn target(group: &Group) -> Value {
    json!({"group": {"id": group.id, "domain_id": group.domain_id}})
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
        "identity:list_groups",
        &json!({"domain_id": domain_id, "group": {"domain_id": domain_id}}),
    )?;
    let filter = GroupFilter {
        name: query.get("name").cloned(),
        domain_id,
    };
    let items = groups::list(state.pool(), &filter)
        .await?
        .iter()
        .map(|g| render(&state, g))
        .collect();
    Ok(Json(list_body(&state, "groups", "groups", items)))
}

async fn create(
    State(state): State<IdentityState>,
    ctx: RequestContext,
    JsonBody(body): JsonBody<GroupBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let input = body.group;
    let name = opt_str(&input, "name")
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request(
                "Invalid input for field 'group.name': the field is required and may not be blank.",
            )
        })?;
    // As in Keystone: the body's domain, else the domain a domain-scoped
    // token is scoped to, else the default domain.
    let domain_id = opt_str(&input, "domain_id")
        .or_else(|| ctx.auth.domain_id.clone())
        .unwrap_or_else(|| crate::bootstrap::DEFAULT_DOMAIN_ID.to_owned());
    authorize(
        &state,
        &ctx,
        "identity:create_group",
        &json!({"group": {"domain_id": domain_id}}),
    )?;
    if domains::get(state.pool(), &domain_id).await?.is_none() {
        return Err(ApiError::not_found(format!(
            "Could not find domain: {domain_id}."
        )));
    }
    let group = Group {
        id: crate::db::new_id(),
        name,
        domain_id,
        description: opt_str(&input, "description").unwrap_or_default(),
    };
    groups::insert(state.pool(), &group).await?;
    tracing::info!(group_id = %group.id, "created group");
    Ok((
        StatusCode::CREATED,
        Json(json!({ "group": render(&state, &group) })),
    ))
}

async fn show(
    State(state): State<IdentityState>,
    ctx: RequestContext,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    authorize(
        &state,
        &ctx,
        "identity:get_group",
        &json!({"group": {"id": id}}),
    )?;
    let group = find(&state, &id).await?;
    Ok(Json(json!({ "group": render(&state, &group) })))
}

async fn update(
    State(state): State<IdentityState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<GroupBody>,
) -> Result<Json<Value>, ApiError> {
    authorize(
        &state,
        &ctx,
        "identity:update_group",
        &json!({"group": {"id": id}}),
    )?;
    let mut group = find(&state, &id).await?;
    authorize(&state, &ctx, "identity:update_group", &target(&group))?;
    let input = body.group;
    if input
        .get("domain_id")
        .and_then(Value::as_str)
        .is_some_and(|d| d != group.domain_id)
    {
        return Err(ApiError::bad_request(
            "Invalid input for field 'group.domain_id': a group cannot move to another domain.",
        ));
    }
    if let Some(name) = opt_str(&input, "name") {
        let name = name.trim().to_owned();
        if name.is_empty() {
            return Err(ApiError::bad_request(
                "Invalid input for field 'group.name': the name may not be blank.",
            ));
        }
        group.name = name;
    }
    if let Some(description) = input.get("description") {
        group.description = description.as_str().unwrap_or_default().to_owned();
    }
    groups::update(state.pool(), &group).await?;
    Ok(Json(json!({ "group": render(&state, &group) })))
}

async fn remove(
    State(state): State<IdentityState>,
    ctx: RequestContext,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    authorize(
        &state,
        &ctx,
        "identity:delete_group",
        &json!({"group": {"id": id}}),
    )?;
    let group = find(&state, &id).await?;
    authorize(&state, &ctx, "identity:delete_group", &target(&group))?;
    // Unlike Keystone, no revocation event is needed for the members: token
    // validation recomputes roles from the current memberships.
    groups::delete(state.pool(), &id).await?;
    tracing::info!(group_id = %id, "deleted group with its memberships and assignments");
    Ok(StatusCode::NO_CONTENT)
}

async fn list_members(
    State(state): State<IdentityState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    query: QueryMap,
) -> Result<Json<Value>, ApiError> {
    authorize(
        &state,
        &ctx,
        "identity:list_users_in_group",
        &json!({"group": {"id": id}}),
    )?;
    find(&state, &id).await?;
    let enabled = bool_param(&query, "enabled")?;
    let member_ids = groups::user_ids_in_group(state.pool(), &id).await?;
    let mut items = Vec::new();
    for user in users::list(state.pool(), &users::UserFilter::default()).await? {
        let wanted = member_ids.contains(&user.id)
            && query.get("name").is_none_or(|n| *n == user.name)
            && query.get("domain_id").is_none_or(|d| *d == user.domain_id)
            && enabled.is_none_or(|e| e == user.enabled);
        if wanted {
            items.push(super::users::render(&state, &user));
        }
    }
    Ok(Json(list_body(
        &state,
        "users",
        &format!("groups/{id}/users"),
        items,
    )))
}

/// Finds the group, then the user, so that 404 names the first missing one.
async fn find_group_and_user(
    state: &Identity,
    group_id: &str,
    user_id: &str,
) -> Result<(Group, users::User), ApiError> {
    let group = find(state, group_id).await?;
    let user = super::users::find(state, user_id).await?;
    Ok((group, user))
}

fn membership_target(group_id: &str, user_id: &str) -> Value {
    json!({"group": {"id": group_id}, "user": {"id": user_id}})
}

fn not_a_member(group_id: &str, user_id: &str) -> ApiError {
    ApiError::not_found(format!("User '{user_id}' not found in group '{group_id}'."))
}

async fn check_member(
    State(state): State<IdentityState>,
    ctx: RequestContext,
    Path((group_id, user_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    authorize(
        &state,
        &ctx,
        "identity:check_user_in_group",
        &membership_target(&group_id, &user_id),
    )?;
    find_group_and_user(&state, &group_id, &user_id).await?;
    if !groups::is_member(state.pool(), &group_id, &user_id).await? {
        return Err(not_a_member(&group_id, &user_id));
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn add_member(
    State(state): State<IdentityState>,
    ctx: RequestContext,
    Path((group_id, user_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    authorize(
        &state,
        &ctx,
        "identity:add_user_to_group",
        &membership_target(&group_id, &user_id),
    )?;
    find_group_and_user(&state, &group_id, &user_id).await?;
    groups::add_member(state.pool(), &group_id, &user_id).await?;
    tracing::info!(group_id = %group_id, user_id = %user_id, "added user to group");
    Ok(StatusCode::NO_CONTENT)
}

async fn remove_member(
    State(state): State<IdentityState>,
    ctx: RequestContext,
    Path((group_id, user_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    authorize(
        &state,
        &ctx,
        "identity:remove_user_from_group",
        &membership_target(&group_id, &user_id),
    )?;
    if !groups::remove_member(state.pool(), &group_id, &user_id).await? {
        find_group_and_user(&state, &group_id, &user_id).await?;
        return Err(not_a_member(&group_id, &user_id));
    }
    // Existing tokens lose the group's roles at their next validation, which
    // recomputes roles, so no revocation event is needed.
    tracing::info!(group_id = %group_id, user_id = %user_id, "removed user from group");
    Ok(StatusCode::NO_CONTENT)
}

async fn list_for_user(
    State(state): State<IdentityState>,
    ctx: RequestContext,
    Path(user_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    authorize(
        &state,
        &ctx,
        "identity:list_groups_for_user",
        &json!({"user": {"id": user_id}}),
    )?;
    super::users::find(&state, &user_id).await?;
    let items = groups::groups_of_user(state.pool(), &user_id)
        .await?
        .iter()
        .map(|g| {
            let mut body = render(&state, g);
            // Keystone reports when a federated membership expires; local
            // memberships never do.
            body["membership_expires_at"] = Value::Null;
            body
        })
        .collect();
    Ok(Json(list_body(
        &state,
        "groups",
        &format!("users/{user_id}/groups"),
        items,
    )))
}
