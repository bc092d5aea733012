//! `/resource_providers/{uuid}/aggregates` (microversion 1.1), with the
//! provider generation in bodies from 1.19.

use std::collections::BTreeSet;

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Extension, Json, Router};
use oxstack_core::microversion::Microversion;
use oxstack_core::validate::{read_json, Schema};
use oxstack_core::{ApiError, RequestContext};
use serde_json::{json, Value};

use super::resource_providers::provider_id;
use super::{authorize, require, PlacementState};
use crate::model::normalize_uuid;

pub fn routes() -> Router<PlacementState> {
    Router::new().route(
        "/resource_providers/{uuid}/aggregates",
        get(list).put(replace),
    )
}

fn render(version: Microversion, generation: i64, aggregates: &BTreeSet<String>) -> Value {
    let mut body = json!({ "aggregates": aggregates });
    if version.at_least(1, 19) {
        body["resource_provider_generation"] = generation.into();
    }
    body
}

async fn list(
    State(state): State<PlacementState>,
    Extension(version): Extension<Microversion>,
    ctx: RequestContext,
    Path(uuid): Path<String>,
) -> Result<Json<Value>, ApiError> {
    require(version, 1)?;
    authorize(&state, &ctx, "placement:resource_providers:aggregates:list")?;
    let (generation, aggregates) = state.provider_aggregates(&provider_id(&uuid)?).await?;
    Ok(Json(render(version, generation, &aggregates)))
}

/// Takes a bare list of UUIDs before 1.19, and `{"aggregates": [...],
/// "resource_provider_generation": N}` from 1.19.
async fn replace(
    State(state): State<PlacementState>,
    Extension(version): Extension<Microversion>,
    ctx: RequestContext,
    Path(uuid): Path<String>,
    request: axum::extract::Request,
) -> Result<Json<Value>, ApiError> {
    require(version, 1)?;
    authorize(
        &state,
        &ctx,
        "placement:resource_providers:aggregates:update",
    )?;
    let provider = provider_id(&uuid)?;
    let body = read_json(request, &()).await?;
    let list_schema = json!({"type": "array", "items": {"type": "string", "format": "uuid"}, "uniqueItems": true});
    let (list, generation) = if version.at_least(1, 19) {
        Schema::compile(&json!({
            "type": "object",
            "properties": {
                "aggregates": list_schema,
                "resource_provider_generation": {"type": "integer"}
            },
            "required": ["aggregates", "resource_provider_generation"],
            "additionalProperties": false
        }))
        .check(&body)?;
        (
            body["aggregates"].clone(),
            body["resource_provider_generation"].as_i64(),
        )
    } else {
        Schema::compile(&list_schema).check(&body)?;
        (body, None)
    };
    let mut aggregates = BTreeSet::new();
    for item in list.as_array().into_iter().flatten() {
        let text = item.as_str().unwrap_or_default();
        let uuid = normalize_uuid(text)
            .ok_or_else(|| ApiError::bad_request(format!("Invalid aggregate UUID '{text}'.")))?;
        aggregates.insert(uuid);
    }
    let generation = state
        .provider_aggregates_replace(&provider, generation, &aggregates)
        .await?;
    Ok(Json(render(version, generation, &aggregates)))
}
