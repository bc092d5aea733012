//! `/v3/domains`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use oxstack_core::validate::JsonBody;
use oxstack_core::{body_schema, ApiError, RequestContext};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{
    bool_param, description_schema, list_body, opt_str, self_link, short_name_schema, tags_schema,
    QueryMap,
};
use crate::db::domains::Domain;
use crate::db::{domains, revocations, users};
use crate::policy::authorize;
use crate::{Identity, IdentityState};

pub fn routes() -> Router<IdentityState> {
    Router::new()
        .route("/v3/domains", get(list).post(create))
        .route(
            "/v3/domains/{domain_id}",
            get(show).patch(update).delete(remove),
        )
}

pub fn render(state: &Identity, domain: &Domain) -> Value {
    json!({
        "id": domain.id,
        "name": domain.name,
        "description": domain.description,
        "enabled": domain.enabled,
        "tags": domain.tags,
        "options": domain.options,
        "links": self_link(state, &format!("domains/{}", domain.id)),
    })
}

#[derive(Deserialize)]
pub struct DomainBody {
    domain: Value,
}

body_schema!(
    DomainBody,
    json!({
        "type": "object",
        "required": ["domain"],
        "properties": {"domain": {
            "type": "object",
            "properties": {
                "name": short_name_schema(),
                "description": description_schema(),
                "enabled": {"type": "boolean"},
                "tags": tags_schema(),
                "options": {"type": "object"},
                "explicit_domain_id": {"type": "string", "pattern": "^[a-zA-Z0-9_-]{1,64}$"}
            }
        }}
    })
);

/// Finds a domain by id, or returns a 404 that names the id.
pub async fn find(state: &Identity, id: &str) -> Result<Domain, ApiError> {
    domains::get(state.pool(), id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("Could not find domain: {id}.")))
}

async fn list(
    State(state): State<IdentityState>,
    ctx: RequestContext,
    query: QueryMap,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &ctx, "identity:list_domains", &json!({}))?;
    let enabled = bool_param(&query, "enabled")?;
    let items = domains::list(state.pool())
        .await?
        .into_iter()
        .filter(|d| query.get("name").is_none_or(|n| *n == d.name))
        .filter(|d| enabled.is_none_or(|e| e == d.enabled))
        .map(|d| render(&state, &d))
        .collect();
    Ok(Json(list_body(&state, "domains", "domains", items)))
}

async fn create(
    State(state): State<IdentityState>,
    ctx: RequestContext,
    JsonBody(body): JsonBody<DomainBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    authorize(&state, &ctx, "identity:create_domain", &json!({}))?;
    let input = body.domain;
    let name = opt_str(&input, "name").ok_or_else(|| {
        ApiError::bad_request("Invalid input for field 'domain.name': the field is required.")
    })?;
    let domain = Domain {
        id: opt_str(&input, "explicit_domain_id").unwrap_or_else(crate::db::new_id),
        name,
        description: opt_str(&input, "description").unwrap_or_default(),
        enabled: input
            .get("enabled")
            .and_then(Value::as_bool)
            .unwrap_or(true),
        tags: input.get("tags").cloned().unwrap_or(json!([])),
        options: input.get("options").cloned().unwrap_or(json!({})),
    };
    domains::insert(state.pool(), &domain).await?;
    tracing::info!(domain_id = %domain.id, "created domain");
    Ok((
        StatusCode::CREATED,
        Json(json!({ "domain": render(&state, &domain) })),
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
        "identity:get_domain",
        &json!({"domain": {"id": id}}),
    )?;
    let domain = find(&state, &id).await?;
    Ok(Json(json!({ "domain": render(&state, &domain) })))
}

async fn update(
    State(state): State<IdentityState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<DomainBody>,
) -> Result<Json<Value>, ApiError> {
    authorize(
        &state,
        &ctx,
        "identity:update_domain",
        &json!({"domain": {"id": id}}),
    )?;
    let mut domain = find(&state, &id).await?;
    let input = body.domain;
    if let Some(name) = opt_str(&input, "name") {
        domain.name = name;
    }
    if let Some(description) = input.get("description") {
        domain.description = description.as_str().unwrap_or_default().to_owned();
    }
    if let Some(enabled) = input.get("enabled").and_then(Value::as_bool) {
        domain.enabled = enabled;
    }
    if let Some(tags) = input.get("tags") {
        domain.tags = tags.clone();
    }
    if let Some(options) = input.get("options") {
        domain.options = options.clone();
    }
    domains::update(state.pool(), &domain).await?;
    Ok(Json(json!({ "domain": render(&state, &domain) })))
}

async fn remove(
    State(state): State<IdentityState>,
    ctx: RequestContext,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    authorize(
        &state,
        &ctx,
        "identity:delete_domain",
        &json!({"domain": {"id": id}}),
    )?;
    let domain = find(&state, &id).await?;
    if domain.enabled {
        return Err(ApiError::forbidden(format!(
            "Cannot delete a domain that is enabled, please disable it first: {}.",
            domain.id
        )));
    }
    let pool = state.pool();
    let users = users::list(
        pool,
        &users::UserFilter {
            domain_id: Some(id.clone()),
            ..Default::default()
        },
    )
    .await?;
    domains::delete(pool, &id).await?;
    // Tokens of the deleted users already fail validation; the events
    // keep them failing should a user with the same id ever return.
    for user in users {
        revocations::revoke_user(pool, &user.id).await?;
    }
    tracing::info!(domain_id = %id, "deleted domain");
    Ok(StatusCode::NO_CONTENT)
}
