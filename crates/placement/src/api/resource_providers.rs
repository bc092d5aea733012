//! `/resource_providers` and `/resource_providers/{uuid}`.

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use oxstack_core::microversion::Microversion;
use oxstack_core::validate::JsonBody;
use oxstack_core::{body_schema, ApiError, RequestContext};
use serde::Deserialize;
use serde_json::{json, Value};

use super::query::{parse_member_of_all, parse_required, parse_resources, QueryParams};
use super::{authorize, check_names_exist, http_date, link, PlacementState};
use crate::catalog::NameKind;
use crate::model::{normalize_uuid, Provider, ProviderId};
use crate::providers::ProviderFilter;

pub fn routes() -> Router<PlacementState> {
    Router::new()
        .route("/resource_providers", get(list).post(create))
        .route(
            "/resource_providers/{uuid}",
            get(show).put(update).delete(remove),
        )
}

/// Renders a provider as placement shows it at `version`.
pub fn render(provider: &Provider, version: Microversion) -> Value {
    let base = link(&format!("resource_providers/{}", provider.uuid));
    let mut links = vec![
        json!({"rel": "self", "href": base}),
        json!({"rel": "inventories", "href": format!("{base}/inventories")}),
        json!({"rel": "usages", "href": format!("{base}/usages")}),
    ];
    if version.at_least(1, 1) {
        links.push(json!({"rel": "aggregates", "href": format!("{base}/aggregates")}));
    }
    if version.at_least(1, 6) {
        links.push(json!({"rel": "traits", "href": format!("{base}/traits")}));
    }
    if version.at_least(1, 11) {
        links.push(json!({"rel": "allocations", "href": format!("{base}/allocations")}));
    }
    let mut body = json!({
        "uuid": provider.uuid,
        "name": provider.name,
        "generation": provider.generation,
        "links": links,
    });
    if version.at_least(1, 14) {
        body["parent_provider_uuid"] = json!(provider.parent_uuid);
        body["root_provider_uuid"] = json!(provider.root_uuid);
    }
    body
}

/// Parses the `{uuid}` of a path; a malformed one cannot name a provider.
pub fn provider_id(text: &str) -> Result<ProviderId, ApiError> {
    normalize_uuid(text)
        .map(ProviderId)
        .ok_or_else(|| ApiError::not_found(format!("No resource provider with uuid {text} found.")))
}

async fn list(
    State(state): State<PlacementState>,
    Extension(version): Extension<Microversion>,
    ctx: RequestContext,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &ctx, "placement:resource_providers:list")?;
    let mut allowed = vec!["name", "uuid"];
    for (minor, key) in [
        (3, "member_of"),
        (4, "resources"),
        (14, "in_tree"),
        (18, "required"),
    ] {
        if version.at_least(1, minor) {
            allowed.push(key);
        }
    }
    let params = QueryParams::new(pairs, &allowed)?;

    let mut filter = ProviderFilter {
        name: params.one("name")?.map(str::to_owned),
        member_of: parse_member_of_all(&params, version.at_least(1, 24))?,
        ..ProviderFilter::default()
    };
    if let Some(uuid) = params.one("uuid")? {
        filter.uuid = Some(ProviderId(normalize_uuid(uuid).ok_or_else(|| {
            ApiError::bad_request(format!(
                "Invalid query string parameters: '{uuid}' is not a 'uuid'."
            ))
        })?));
    }
    if let Some(resources) = params.one("resources")? {
        filter.resources = parse_resources(resources)?;
    }
    if let Some(tree) = params.one("in_tree")? {
        filter.in_tree = Some(ProviderId(normalize_uuid(tree).ok_or_else(|| {
            ApiError::bad_request(format!(
                "Invalid query string parameters: '{tree}' is not a 'uuid'."
            ))
        })?));
    }
    if let Some(required) = params.one("required")? {
        (filter.required, filter.forbidden) = parse_required(required, version.at_least(1, 22))?;
    }
    let classes: Vec<String> = filter.resources.keys().cloned().collect();
    check_names_exist(&state, NameKind::ResourceClass, &classes).await?;
    let traits = [filter.required.clone(), filter.forbidden.clone()].concat();
    check_names_exist(&state, NameKind::Trait, &traits).await?;

    let providers = state.provider_list(&filter).await?;
    let rendered: Vec<Value> = providers.iter().map(|p| render(p, version)).collect();
    Ok(Json(json!({ "resource_providers": rendered })))
}

#[derive(Deserialize)]
struct CreateBody {
    name: String,
    uuid: Option<String>,
    parent_provider_uuid: Option<String>,
}

body_schema!(
    CreateBody,
    json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 200},
            "uuid": {"type": "string", "format": "uuid"},
            "parent_provider_uuid": {"type": ["string", "null"], "format": "uuid"}
        },
        "required": ["name"],
        "additionalProperties": false
    })
);

async fn create(
    State(state): State<PlacementState>,
    Extension(version): Extension<Microversion>,
    ctx: RequestContext,
    JsonBody(body): JsonBody<CreateBody>,
) -> Result<Response, ApiError> {
    authorize(&state, &ctx, "placement:resource_providers:create")?;
    let uuid = body.uuid.as_deref().map(parse_body_uuid).transpose()?;
    let parent = match body.parent_provider_uuid.as_deref() {
        Some(_) if !version.at_least(1, 14) => {
            return Err(ApiError::bad_request(
                "Additional properties are not allowed ('parent_provider_uuid' was unexpected); it needs microversion 1.14.",
            ))
        }
        Some(text) => Some(parse_body_uuid(text)?),
        None => None,
    };
    let provider = state.provider_create(uuid, &body.name, parent).await?;
    let location = format!(
        "{}{}",
        state.public_url,
        link(&format!("resource_providers/{}", provider.uuid))
    );
    let headers = [(header::LOCATION, location)];
    if version.at_least(1, 20) {
        return Ok((StatusCode::OK, headers, Json(render(&provider, version))).into_response());
    }
    Ok((StatusCode::CREATED, headers).into_response())
}

fn parse_body_uuid(text: &str) -> Result<ProviderId, ApiError> {
    normalize_uuid(text)
        .map(ProviderId)
        .ok_or_else(|| ApiError::bad_request(format!("'{text}' is not a 'uuid'.")))
}

async fn show(
    State(state): State<PlacementState>,
    Extension(version): Extension<Microversion>,
    ctx: RequestContext,
    Path(uuid): Path<String>,
) -> Result<Response, ApiError> {
    authorize(&state, &ctx, "placement:resource_providers:show")?;
    let provider = state.provider_get(&provider_id(&uuid)?).await?;
    let body = Json(render(&provider, version));
    if !version.at_least(1, 15) {
        return Ok(body.into_response());
    }
    let modified = [(header::LAST_MODIFIED, http_date(provider.updated_at))];
    Ok((modified, body).into_response())
}

#[derive(Deserialize)]
struct UpdateBody {
    name: String,
    #[serde(default, deserialize_with = "present")]
    parent_provider_uuid: Option<Option<String>>,
}

/// Tells a field sent as `null` (`Some(None)`) from a missing one (`None`).
fn present<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}

body_schema!(
    UpdateBody,
    json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 200},
            "parent_provider_uuid": {"type": ["string", "null"], "format": "uuid"}
        },
        "required": ["name"],
        "additionalProperties": false
    })
);

async fn update(
    State(state): State<PlacementState>,
    Extension(version): Extension<Microversion>,
    ctx: RequestContext,
    Path(uuid): Path<String>,
    JsonBody(body): JsonBody<UpdateBody>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &ctx, "placement:resource_providers:update")?;
    let uuid = provider_id(&uuid)?;
    let parent = match body.parent_provider_uuid {
        Some(_) if !version.at_least(1, 14) => {
            return Err(ApiError::bad_request(
                "Additional properties are not allowed ('parent_provider_uuid' was unexpected); it needs microversion 1.14.",
            ))
        }
        Some(Some(text)) => Some(Some(parse_body_uuid(&text)?)),
        Some(None) => Some(None),
        None => None,
    };
    let provider = state.provider_update(&uuid, &body.name, parent).await?;
    Ok(Json(render(&provider, version)))
}

async fn remove(
    State(state): State<PlacementState>,
    ctx: RequestContext,
    Path(uuid): Path<String>,
) -> Result<StatusCode, ApiError> {
    authorize(&state, &ctx, "placement:resource_providers:delete")?;
    state.provider_delete(&provider_id(&uuid)?).await?;
    Ok(StatusCode::NO_CONTENT)
}
