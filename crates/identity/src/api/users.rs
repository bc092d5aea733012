//! `/v3/users`, including password changes.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use oxstack_core::validate::JsonBody;
use oxstack_core::{body_schema, ApiError, RequestContext};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{bool_param, description_schema, list_body, name_schema, opt_str, self_link, QueryMap};
use crate::db::users::{self, User, UserFilter};
use crate::db::{domains, projects, revocations};
use crate::policy::authorize;
use crate::{Identity, IdentityState};

/// Attributes stored in their own columns; anything else goes to `extra`.
const KNOWN: &[&str] = &[
    "id",
    "name",
    "domain_id",
    "enabled",
    "default_project_id",
    "password",
    "description",
    "email",
    "options",
    "links",
];

pub fn routes() -> Router<IdentityState> {
    Router::new()
        .route("/v3/users", get(list).post(create))
        .route(
            "/v3/users/{user_id}",
            get(show).patch(update).delete(remove),
        )
        .route("/v3/users/{user_id}/password", post(change_password))
}

pub fn render(state: &Identity, user: &User) -> Value {
    let mut body = json!({
        "id": user.id,
        "name": user.name,
        "domain_id": user.domain_id,
        "enabled": user.enabled,
        "password_expires_at": null,
        "options": user.options,
        "links": self_link(state, &format!("users/{}", user.id)),
    });
    if let Some(project) = &user.default_project_id {
        body["default_project_id"] = json!(project);
    }
    if !user.description.is_empty() {
        body["description"] = json!(user.description);
    }
    if let Some(email) = &user.email {
        body["email"] = json!(email);
    }
    if let Some(extra) = user.extra.as_object() {
        for (key, value) in extra {
            body[key] = value.clone();
        }
    }
    body
}

#[derive(Deserialize)]
pub struct UserBody {
    user: Value,
}

body_schema!(
    UserBody,
    json!({
        "type": "object",
        "required": ["user"],
        "properties": {"user": {
            "type": "object",
            "properties": {
                "name": name_schema(),
                "domain_id": {"type": "string", "minLength": 1, "maxLength": 64},
                "default_project_id": {"type": ["string", "null"], "maxLength": 64},
                "enabled": {"type": "boolean"},
                "password": {"type": ["string", "null"], "maxLength": 4096},
                "description": description_schema(),
                "email": {"type": ["string", "null"], "maxLength": 255},
                "options": {"type": "object"}
            }
        }}
    })
);

pub async fn find(state: &Identity, id: &str) -> Result<User, ApiError> {
    users::get(state.pool(), id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("Could not find user: {id}.")))
}

fn extra_attributes(input: &Value) -> Value {
    let extra: Map<String, Value> = input
        .as_object()
        .map(|o| {
            o.iter()
                .filter(|(k, _)| !KNOWN.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    Value::Object(extra)
}

async fn list(
    State(state): State<IdentityState>,
    ctx: RequestContext,
    query: QueryMap,
) -> Result<Json<Value>, ApiError> {
    authorize(
        &state,
        &ctx,
        "identity:list_users",
        &json!({"domain_id": query.get("domain_id")}),
    )?;
    let filter = UserFilter {
        name: query.get("name").cloned(),
        domain_id: query.get("domain_id").cloned(),
        enabled: bool_param(&query, "enabled")?,
    };
    let items = users::list(state.pool(), &filter)
        .await?
        .iter()
        .map(|u| render(&state, u))
        .collect();
    Ok(Json(list_body(&state, "users", "users", items)))
}

async fn create(
    State(state): State<IdentityState>,
    ctx: RequestContext,
    JsonBody(body): JsonBody<UserBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let input = body.user;
    let name = opt_str(&input, "name").ok_or_else(|| {
        ApiError::bad_request("Invalid input for field 'user.name': the field is required.")
    })?;
    let domain_id = opt_str(&input, "domain_id")
        .or_else(|| ctx.auth.project_domain_id.clone())
        .unwrap_or_else(|| "default".to_owned());
    authorize(
        &state,
        &ctx,
        "identity:create_user",
        &json!({"user": {"domain_id": domain_id}}),
    )?;
    if domains::get(state.pool(), &domain_id).await?.is_none() {
        return Err(ApiError::not_found(format!(
            "Could not find domain: {domain_id}."
        )));
    }
    let default_project_id = opt_str(&input, "default_project_id");
    if let Some(project_id) = &default_project_id {
        if projects::get(state.pool(), project_id).await?.is_none() {
            return Err(ApiError::not_found(format!(
                "Could not find project: {project_id}."
            )));
        }
    }
    let password_hash = match opt_str(&input, "password") {
        Some(password) => Some(state.passwords.hash(&password).await?),
        None => None,
    };
    let user = User {
        id: crate::db::new_id(),
        name,
        domain_id,
        enabled: input
            .get("enabled")
            .and_then(Value::as_bool)
            .unwrap_or(true),
        default_project_id,
        password_changed_at: password_hash.as_ref().map(|_| crate::db::now()),
        password_hash,
        description: opt_str(&input, "description").unwrap_or_default(),
        email: opt_str(&input, "email"),
        options: input.get("options").cloned().unwrap_or(json!({})),
        extra: extra_attributes(&input),
    };
    users::insert(state.pool(), &user).await?;
    tracing::info!(user_id = %user.id, "created user");
    Ok((
        StatusCode::CREATED,
        Json(json!({ "user": render(&state, &user) })),
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
        "identity:get_user",
        &json!({"user": {"id": id}}),
    )?;
    let user = find(&state, &id).await?;
    Ok(Json(json!({ "user": render(&state, &user) })))
}

async fn update(
    State(state): State<IdentityState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<UserBody>,
) -> Result<Json<Value>, ApiError> {
    let mut user = find(&state, &id).await?;
    authorize(
        &state,
        &ctx,
        "identity:update_user",
        &json!({"user": {"id": id, "domain_id": user.domain_id}}),
    )?;
    let input = body.user;
    if input
        .get("domain_id")
        .and_then(Value::as_str)
        .is_some_and(|d| d != user.domain_id)
    {
        return Err(ApiError::bad_request(
            "Invalid input for field 'user.domain_id': a user cannot move to another domain.",
        ));
    }
    let was_enabled = user.enabled;
    let mut revoke_tokens = false;
    if let Some(name) = opt_str(&input, "name") {
        user.name = name;
    }
    if let Some(enabled) = input.get("enabled").and_then(Value::as_bool) {
        user.enabled = enabled;
        revoke_tokens |= was_enabled && !enabled;
    }
    if let Some(project) = input.get("default_project_id") {
        user.default_project_id = project.as_str().map(str::to_owned);
    }
    if let Some(password) = opt_str(&input, "password") {
        user.password_hash = Some(state.passwords.hash(&password).await?);
        user.password_changed_at = Some(crate::db::now());
        revoke_tokens = true;
    }
    if let Some(description) = input.get("description") {
        user.description = description.as_str().unwrap_or_default().to_owned();
    }
    if let Some(email) = input.get("email") {
        user.email = email.as_str().map(str::to_owned);
    }
    if let Some(options) = input.get("options") {
        user.options = options.clone();
    }
    if let (Some(extra), Some(new)) = (
        user.extra.as_object_mut(),
        extra_attributes(&input).as_object(),
    ) {
        extra.extend(new.clone());
    }
    users::update(state.pool(), &user).await?;
    if revoke_tokens {
        revocations::revoke_user(state.pool(), &user.id).await?;
    }
    Ok(Json(json!({ "user": render(&state, &user) })))
}

async fn remove(
    State(state): State<IdentityState>,
    ctx: RequestContext,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let user = find(&state, &id).await?;
    authorize(
        &state,
        &ctx,
        "identity:delete_user",
        &json!({"user": {"id": id, "domain_id": user.domain_id}}),
    )?;
    users::delete(state.pool(), &id).await?;
    revocations::revoke_user(state.pool(), &id).await?;
    tracing::info!(user_id = %id, "deleted user");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
pub struct PasswordBody {
    user: PasswordChange,
}

#[derive(Deserialize)]
struct PasswordChange {
    password: String,
    original_password: String,
}

body_schema!(
    PasswordBody,
    json!({
        "type": "object",
        "required": ["user"],
        "properties": {"user": {
            "type": "object",
            "required": ["password", "original_password"],
            "properties": {
                "password": {"type": "string", "minLength": 1, "maxLength": 4096},
                "original_password": {"type": "string", "maxLength": 4096}
            }
        }}
    })
);

async fn change_password(
    State(state): State<IdentityState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<PasswordBody>,
) -> Result<StatusCode, ApiError> {
    authorize(
        &state,
        &ctx,
        "identity:change_password",
        &json!({"user": {"id": id}}),
    )?;
    let mut user = find(&state, &id).await?;
    let current = user.password_hash.clone().unwrap_or_default();
    if !state
        .passwords
        .verify(&user.id, &body.user.original_password, &current)
        .await?
    {
        return Err(ApiError::unauthenticated(
            "The original password is not correct.",
        ));
    }
    user.password_hash = Some(state.passwords.hash(&body.user.password).await?);
    user.password_changed_at = Some(crate::db::now());
    users::update(state.pool(), &user).await?;
    revocations::revoke_user(state.pool(), &user.id).await?;
    tracing::info!(user_id = %user.id, "changed password");
    Ok(StatusCode::NO_CONTENT)
}
