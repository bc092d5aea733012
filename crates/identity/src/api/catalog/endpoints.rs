//! `/v3/endpoints`: the URLs of each service, per interface and region.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use oxstack_core::validate::JsonBody;
use oxstack_core::{body_schema, ApiError, RequestContext};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{missing_reference, require_matching_id};
use crate::api::{list_body, opt_str, self_link, QueryMap};
use crate::db::catalog::{self, Endpoint, Region};
use crate::policy::authorize;
use crate::{Identity, IdentityState};

const INTERFACES: [&str; 3] = ["admin", "internal", "public"];

/// Names Keystone substitutes in endpoint URLs written as `$(name)s`
/// (keystone/catalog/core.py, `format_url`); any other name is rejected.
const URL_SUBSTITUTIONS: [&str; 10] = [
    "tenant_id",
    "project_id",
    "user_id",
    "admin_token",
    "public_bind_host",
    "admin_bind_host",
    "compute_host",
    "compute_port",
    "admin_port",
    "public_port",
];

pub fn render(state: &Identity, endpoint: &Endpoint) -> Value {
    json!({
        "id": endpoint.id,
        "interface": endpoint.interface,
        "region_id": endpoint.region_id,
        // Keystone still returns the pre-3.2 name of the field.
        "region": endpoint.region_id,
        "service_id": endpoint.service_id,
        "url": endpoint.url,
        "enabled": endpoint.enabled,
        "links": self_link(state, &format!("endpoints/{}", endpoint.id)),
    })
}

#[derive(Deserialize)]
pub struct EndpointBody {
    endpoint: Value,
}

body_schema!(
    EndpointBody,
    json!({
        "type": "object",
        "required": ["endpoint"],
        "properties": {"endpoint": {
            "type": "object",
            "minProperties": 1,
            "properties": {
                "interface": {"type": "string", "enum": INTERFACES},
                "service_id": {"type": "string", "minLength": 1, "maxLength": 64},
                "region_id": {"type": ["string", "null"], "minLength": 1, "maxLength": 255},
                "region": {"type": ["string", "null"], "minLength": 1, "maxLength": 255},
                // Keystone's limit and pattern: a scheme, a colon, then anything.
                "url": {"type": "string", "maxLength": 225, "pattern": "^[a-zA-Z0-9+.-]+:.+"},
                "enabled": {"type": "boolean"}
            }
        }}
    })
);

async fn find(state: &Identity, id: &str) -> Result<Endpoint, ApiError> {
    catalog::get_endpoint(state.pool(), id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("Could not find endpoint: {id}.")))
}

pub(super) async fn list(
    State(state): State<IdentityState>,
    ctx: RequestContext,
    query: QueryMap,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &ctx, "identity:list_endpoints", &json!({}))?;
    if let Some(interface) = query.get("interface") {
        check_interface(interface)?;
    }
    let items = catalog::list_endpoints(state.pool())
        .await?
        .iter()
        .filter(|e| query.get("interface").is_none_or(|i| *i == e.interface))
        .filter(|e| query.get("service_id").is_none_or(|s| *s == e.service_id))
        .filter(|e| {
            query
                .get("region_id")
                .is_none_or(|r| Some(r.as_str()) == e.region_id.as_deref())
        })
        .map(|e| render(&state, e))
        .collect();
    Ok(Json(list_body(&state, "endpoints", "endpoints", items)))
}

fn check_interface(interface: &str) -> Result<(), ApiError> {
    if INTERFACES.contains(&interface) {
        return Ok(());
    }
    Err(ApiError::bad_request(format!(
        "Invalid input for field 'interface': '{interface}' is not one of admin, internal or public."
    )))
}

/// Checks the `$(name)s` substitutions in `url`, as Keystone's
/// `check_endpoint_url` does, so that a typo fails now and not when a token
/// is issued.
fn check_url(url: &str) -> Result<(), ApiError> {
    let mut rest = url;
    while let Some(start) = rest.find("$(") {
        let after = &rest[start + 2..];
        let Some(end) = after.find(")s") else {
            return Err(ApiError::bad_request(format!(
                "Invalid endpoint URL {url}: a '$(' substitution is not closed with ')s'."
            )));
        };
        let name = &after[..end];
        if !URL_SUBSTITUTIONS.contains(&name) {
            return Err(ApiError::bad_request(format!(
                "Invalid endpoint URL {url}: unknown substitution $({name})s; use one of {}.",
                URL_SUBSTITUTIONS.join(", ")
            )));
        }
        rest = &after[end + 2..];
    }
    Ok(())
}

/// Resolves the region an endpoint body names: `None` when it names none,
/// `Some(None)` when it sets `region_id` to null. `region_id` must exist
/// (400 otherwise). The pre-3.2 `region` field creates the region when it
/// is missing, as Keystone does for clients written against v2.
async fn endpoint_region(
    state: &Identity,
    input: &Value,
) -> Result<Option<Option<String>>, ApiError> {
    let region_id = input.get("region_id");
    let legacy = opt_str(input, "region");
    if let (None | Some(Value::Null), Some(region)) = (region_id, &legacy) {
        if catalog::get_region(state.pool(), region).await?.is_none() {
            let new_region = Region {
                id: region.clone(),
                description: String::new(),
                parent_region_id: None,
            };
            catalog::insert_region(state.pool(), &new_region).await?;
            tracing::info!(region_id = %region, "created region named by an endpoint's legacy region field");
        }
        return Ok(Some(Some(region.clone())));
    }
    match region_id {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(value) => {
            let id = value.as_str().unwrap_or_default();
            if catalog::get_region(state.pool(), id).await?.is_none() {
                return Err(missing_reference("endpoint region_id", "region table"));
            }
            Ok(Some(Some(id.to_owned())))
        }
    }
}

async fn check_service(state: &Identity, service_id: &str) -> Result<(), ApiError> {
    if catalog::get_service(state.pool(), service_id)
        .await?
        .is_none()
    {
        return Err(missing_reference("endpoint service_id", "service table"));
    }
    Ok(())
}

pub(super) async fn create(
    State(state): State<IdentityState>,
    ctx: RequestContext,
    JsonBody(body): JsonBody<EndpointBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    authorize(&state, &ctx, "identity:create_endpoint", &json!({}))?;
    let input = body.endpoint;
    let required = |field: &str| {
        opt_str(&input, field).ok_or_else(|| {
            ApiError::bad_request(format!(
                "Invalid input for field 'endpoint.{field}': the field is required."
            ))
        })
    };
    let interface = required("interface")?;
    let service_id = required("service_id")?;
    let url = required("url")?;
    check_url(&url)?;
    check_service(&state, &service_id).await?;
    let region_id = endpoint_region(&state, &input).await?.flatten();

    // Keystone ignores a client-chosen id here and always assigns one.
    let endpoint = Endpoint {
        id: crate::db::new_id(),
        service_id,
        interface,
        region_id,
        url,
        enabled: input
            .get("enabled")
            .and_then(Value::as_bool)
            .unwrap_or(true),
    };
    catalog::insert_endpoint(state.pool(), &endpoint).await?;
    tracing::info!(endpoint_id = %endpoint.id, service_id = %endpoint.service_id, "created endpoint");
    Ok((
        StatusCode::CREATED,
        Json(json!({ "endpoint": render(&state, &endpoint) })),
    ))
}

pub(super) async fn show(
    State(state): State<IdentityState>,
    ctx: RequestContext,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &ctx, "identity:get_endpoint", &json!({}))?;
    let endpoint = find(&state, &id).await?;
    Ok(Json(json!({ "endpoint": render(&state, &endpoint) })))
}

pub(super) async fn update(
    State(state): State<IdentityState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<EndpointBody>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &ctx, "identity:update_endpoint", &json!({}))?;
    let input = body.endpoint;
    require_matching_id(&input, &id)?;
    let mut endpoint = find(&state, &id).await?;
    if let Some(service_id) = opt_str(&input, "service_id") {
        check_service(&state, &service_id).await?;
        endpoint.service_id = service_id;
    }
    if let Some(region_id) = endpoint_region(&state, &input).await? {
        endpoint.region_id = region_id;
    }
    if let Some(interface) = opt_str(&input, "interface") {
        endpoint.interface = interface;
    }
    if let Some(url) = opt_str(&input, "url") {
        check_url(&url)?;
        endpoint.url = url;
    }
    if let Some(enabled) = input.get("enabled").and_then(Value::as_bool) {
        endpoint.enabled = enabled;
    }
    catalog::update_endpoint(state.pool(), &endpoint).await?;
    Ok(Json(json!({ "endpoint": render(&state, &endpoint) })))
}

pub(super) async fn remove(
    State(state): State<IdentityState>,
    ctx: RequestContext,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    authorize(&state, &ctx, "identity:delete_endpoint", &json!({}))?;
    find(&state, &id).await?;
    catalog::delete_endpoint(state.pool(), &id).await?;
    tracing::info!(endpoint_id = %id, "deleted endpoint");
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_substitutions_are_checked() {
        assert!(check_url("http://h:8080/v1/AUTH_$(project_id)s").is_ok());
        assert!(check_url("http://h:8774/v2.1/$(tenant_id)s/x/$(user_id)s").is_ok());
        assert!(check_url("http://h:9696").is_ok());
        assert!(check_url("http://h/$(project)s").is_err());
        assert!(check_url("http://h/$(project_id").is_err());
    }
}
