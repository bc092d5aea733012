//! `/resource_providers/{uuid}/usages` and `/usages?project_id=`
//! (microversion 1.9).

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Extension, Json, Router};
use oxstack_core::microversion::Microversion;
use oxstack_core::{ApiError, RequestContext};
use serde_json::{json, Value};

use super::query::QueryParams;
use super::resource_providers::provider_id;
use super::{authorize, require, PlacementState};

pub fn routes() -> Router<PlacementState> {
    Router::new()
        .route("/resource_providers/{uuid}/usages", get(provider_usages))
        .route("/usages", get(project_usages))
}

async fn provider_usages(
    State(state): State<PlacementState>,
    ctx: RequestContext,
    Path(uuid): Path<String>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &ctx, "placement:resource_providers:usages")?;
    let (generation, usages) = state.provider_usages(&provider_id(&uuid)?).await?;
    Ok(Json(
        json!({"usages": usages, "resource_provider_generation": generation}),
    ))
}

async fn project_usages(
    State(state): State<PlacementState>,
    Extension(version): Extension<Microversion>,
    ctx: RequestContext,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    require(version, 9)?;
    authorize(&state, &ctx, "placement:usages")?;
    let params = QueryParams::new(pairs, &["project_id", "user_id"])?;
    let project = params.one("project_id")?.ok_or_else(|| {
        ApiError::bad_request(
            "Invalid query string parameters: 'project_id' is a required property.",
        )
    })?;
    let usages = state.usages(project, params.one("user_id")?).await?;
    Ok(Json(json!({ "usages": usages })))
}
