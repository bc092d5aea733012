//! `/traits`, `/traits/{name}` and `/resource_providers/{uuid}/traits`
//! (microversion 1.6).

use std::collections::BTreeSet;

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

use super::query::QueryParams;
use super::resource_providers::provider_id;
use super::{authorize, link, require, PlacementState};
use crate::catalog::{Created, NameKind};
use crate::model::is_custom_name;

pub fn routes() -> Router<PlacementState> {
    Router::new()
        .route("/traits", get(list))
        .route("/traits/{name}", get(show).put(create).delete(remove))
        .route(
            "/resource_providers/{uuid}/traits",
            get(provider_list)
                .put(provider_replace)
                .delete(provider_clear),
        )
}

async fn list(
    State(state): State<PlacementState>,
    Extension(version): Extension<Microversion>,
    ctx: RequestContext,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    require(version, 6)?;
    authorize(&state, &ctx, "placement:traits:list")?;
    let params = QueryParams::new(pairs, &["name", "associated"])?;
    let mut names = state.names_list(NameKind::Trait).await?;
    if let Some(filter) = params.one("name")? {
        if let Some(list) = filter.strip_prefix("in:") {
            let requested: BTreeSet<&str> = list.split(',').map(str::trim).collect();
            names.retain(|name| requested.contains(name.as_str()));
        } else if let Some(prefix) = filter.strip_prefix("startswith:") {
            names.retain(|name| name.starts_with(prefix));
        } else {
            return Err(ApiError::bad_request(format!(
                "Badly formatted name parameter. Expected name query string parameter in form: ?name=[in|startswith]:[name1,name2|prefix]. Got: \"{filter}\""
            )));
        }
    }
    if let Some(associated) = params.one("associated")? {
        let expected = match associated.to_ascii_lowercase().as_str() {
            "true" => true,
            "false" => false,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "The query parameter \"associated\" only accepts \"true\" or \"false\"; got \"{associated}\"."
                )))
            }
        };
        let in_use = state.traits_in_use().await?;
        names.retain(|name| in_use.contains(name) == expected);
    }
    Ok(Json(json!({ "traits": names })))
}

async fn show(
    State(state): State<PlacementState>,
    Extension(version): Extension<Microversion>,
    ctx: RequestContext,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    require(version, 6)?;
    authorize(&state, &ctx, "placement:traits:show")?;
    if !state.name_exists(NameKind::Trait, &name).await? {
        return Err(ApiError::not_found(format!("No such trait(s): {name}.")));
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn create(
    State(state): State<PlacementState>,
    Extension(version): Extension<Microversion>,
    ctx: RequestContext,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    require(version, 6)?;
    authorize(&state, &ctx, "placement:traits:update")?;
    if !is_custom_name(&name) {
        return Err(ApiError::bad_request(format!(
            "The trait {name} is invalid. A valid trait must be no longer than 255 characters, start with the prefix \"CUSTOM_\" and use following characters: \"A\"-\"Z\", \"0\"-\"9\" and \"_\""
        )));
    }
    let location = format!("{}{}", state.public_url, link(&format!("traits/{name}")));
    let status = match state.name_create(NameKind::Trait, &name).await? {
        Created::New => StatusCode::CREATED,
        Created::Existing => StatusCode::NO_CONTENT,
    };
    Ok((status, [(header::LOCATION, location)]).into_response())
}

async fn remove(
    State(state): State<PlacementState>,
    Extension(version): Extension<Microversion>,
    ctx: RequestContext,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    require(version, 6)?;
    authorize(&state, &ctx, "placement:traits:delete")?;
    state.name_delete(NameKind::Trait, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn render(generation: i64, traits: &BTreeSet<String>) -> Value {
    json!({"traits": traits, "resource_provider_generation": generation})
}

async fn provider_list(
    State(state): State<PlacementState>,
    Extension(version): Extension<Microversion>,
    ctx: RequestContext,
    Path(uuid): Path<String>,
) -> Result<Json<Value>, ApiError> {
    require(version, 6)?;
    authorize(&state, &ctx, "placement:resource_providers:traits:list")?;
    let (generation, traits) = state.provider_traits(&provider_id(&uuid)?).await?;
    Ok(Json(render(generation, &traits)))
}

#[derive(Deserialize)]
struct ReplaceBody {
    traits: BTreeSet<String>,
    resource_provider_generation: i64,
}

body_schema!(
    ReplaceBody,
    json!({
        "type": "object",
        "properties": {
            "traits": {
                "type": "array",
                "items": {"type": "string", "pattern": "^[A-Z0-9_]+$", "maxLength": 255},
                "uniqueItems": true
            },
            "resource_provider_generation": {"type": "integer"}
        },
        "required": ["traits", "resource_provider_generation"],
        "additionalProperties": false
    })
);

async fn provider_replace(
    State(state): State<PlacementState>,
    Extension(version): Extension<Microversion>,
    ctx: RequestContext,
    Path(uuid): Path<String>,
    JsonBody(body): JsonBody<ReplaceBody>,
) -> Result<Json<Value>, ApiError> {
    require(version, 6)?;
    authorize(&state, &ctx, "placement:resource_providers:traits:update")?;
    let provider = provider_id(&uuid)?;
    let generation = state
        .provider_traits_replace(
            &provider,
            Some(body.resource_provider_generation),
            &body.traits,
        )
        .await?;
    Ok(Json(render(generation, &body.traits)))
}

async fn provider_clear(
    State(state): State<PlacementState>,
    Extension(version): Extension<Microversion>,
    ctx: RequestContext,
    Path(uuid): Path<String>,
) -> Result<StatusCode, ApiError> {
    require(version, 6)?;
    authorize(&state, &ctx, "placement:resource_providers:traits:delete")?;
    state
        .provider_traits_replace(&provider_id(&uuid)?, None, &BTreeSet::new())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
