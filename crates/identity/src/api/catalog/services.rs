//! `/v3/services`: the services listed in the catalog.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use oxstack_core::validate::JsonBody;
use oxstack_core::{body_schema, ApiError, RequestContext};
use serde::Deserialize;
use serde_json::{json, Value};

use super::require_matching_id;
use crate::api::{description_schema, list_body, name_schema, opt_str, self_link, QueryMap};
use crate::db::catalog::{self, Service};
use crate::policy::authorize;
use crate::{Identity, IdentityState};

pub fn render(state: &Identity, service: &Service) -> Value {
    json!({
        "id": service.id,
        "type": service.service_type,
        "name": service.name,
        "description": service.description,
        "enabled": service.enabled,
        "links": self_link(state, &format!("services/{}", service.id)),
    })
}

// NOTE: Keystone stores attributes outside this schema and returns them.
// OxStack accepts them but does not store them.
#[derive(Deserialize)]
pub struct ServiceBody {
    service: Value,
}

body_schema!(
    ServiceBody,
    json!({
        "type": "object",
        "required": ["service"],
        "properties": {"service": {
            "type": "object",
            "minProperties": 1,
            "properties": {
                "type": {"type": "string", "minLength": 1, "maxLength": 255},
                "name": name_schema(),
                "description": description_schema(),
                "enabled": {"type": "boolean"}
            }
        }}
    })
);

async fn find(state: &Identity, id: &str) -> Result<Service, ApiError> {
    catalog::get_service(state.pool(), id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("Could not find service: {id}.")))
}

pub(super) async fn list(
    State(state): State<IdentityState>,
    ctx: RequestContext,
    query: QueryMap,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &ctx, "identity:list_services", &json!({}))?;
    let items = catalog::list_services(state.pool())
        .await?
        .iter()
        .filter(|s| query.get("type").is_none_or(|t| *t == s.service_type))
        .filter(|s| query.get("name").is_none_or(|n| *n == s.name))
        .map(|s| render(&state, s))
        .collect();
    Ok(Json(list_body(&state, "services", "services", items)))
}

pub(super) async fn create(
    State(state): State<IdentityState>,
    ctx: RequestContext,
    JsonBody(body): JsonBody<ServiceBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    authorize(&state, &ctx, "identity:create_service", &json!({}))?;
    let input = body.service;
    let service_type = opt_str(&input, "type").ok_or_else(|| {
        ApiError::bad_request("Invalid input for field 'service.type': the field is required.")
    })?;
    // Keystone ignores a client-chosen id here and always assigns one.
    let service = Service {
        id: crate::db::new_id(),
        service_type,
        name: opt_str(&input, "name").unwrap_or_default(),
        description: opt_str(&input, "description").unwrap_or_default(),
        enabled: input
            .get("enabled")
            .and_then(Value::as_bool)
            .unwrap_or(true),
    };
    catalog::insert_service(state.pool(), &service).await?;
    tracing::info!(service_id = %service.id, service_type = %service.service_type, "created service");
    Ok((
        StatusCode::CREATED,
        Json(json!({ "service": render(&state, &service) })),
    ))
}

pub(super) async fn show(
    State(state): State<IdentityState>,
    ctx: RequestContext,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &ctx, "identity:get_service", &json!({}))?;
    let service = find(&state, &id).await?;
    Ok(Json(json!({ "service": render(&state, &service) })))
}

pub(super) async fn update(
    State(state): State<IdentityState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ServiceBody>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &ctx, "identity:update_service", &json!({}))?;
    let input = body.service;
    require_matching_id(&input, &id)?;
    let mut service = find(&state, &id).await?;
    if let Some(service_type) = opt_str(&input, "type") {
        service.service_type = service_type;
    }
    if let Some(name) = opt_str(&input, "name") {
        service.name = name;
    }
    if let Some(description) = input.get("description") {
        service.description = description.as_str().unwrap_or_default().to_owned();
    }
    if let Some(enabled) = input.get("enabled").and_then(Value::as_bool) {
        service.enabled = enabled;
    }
    catalog::update_service(state.pool(), &service).await?;
    Ok(Json(json!({ "service": render(&state, &service) })))
}

/// Deletes the service and, as Keystone does, its endpoints.
pub(super) async fn remove(
    State(state): State<IdentityState>,
    ctx: RequestContext,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    authorize(&state, &ctx, "identity:delete_service", &json!({}))?;
    find(&state, &id).await?;
    catalog::delete_service(state.pool(), &id).await?;
    tracing::info!(service_id = %id, "deleted service");
    Ok(StatusCode::NO_CONTENT)
}
