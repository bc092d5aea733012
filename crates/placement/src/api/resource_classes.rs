//! `/resource_classes` and `/resource_classes/{name}`. Custom classes can
//! be created from microversion 1.2; `PUT` renames before 1.7 and creates
//! from 1.7.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use oxstack_core::microversion::Microversion;
use oxstack_core::validate::{read_json, JsonBody, Schema};
use oxstack_core::{body_schema, ApiError, RequestContext};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{authorize, link, require, PlacementState};
use crate::catalog::{Created, NameKind};
use crate::model::is_custom_name;

pub fn routes() -> Router<PlacementState> {
    Router::new()
        .route("/resource_classes", get(list).post(create))
        .route(
            "/resource_classes/{name}",
            get(show).put(update).delete(remove),
        )
}

fn render(name: &str) -> Value {
    json!({
        "name": name,
        "links": [{"rel": "self", "href": link(&format!("resource_classes/{name}"))}],
    })
}

fn check_custom(name: &str) -> Result<(), ApiError> {
    if is_custom_name(name) {
        return Ok(());
    }
    Err(ApiError::bad_request(format!(
        "Invalid resource class name '{name}': a custom resource class must start with CUSTOM_ and contain only A-Z, 0-9 and _."
    )))
}

fn location(state: &PlacementState, name: &str) -> String {
    format!(
        "{}{}",
        state.public_url,
        link(&format!("resource_classes/{name}"))
    )
}

async fn list(
    State(state): State<PlacementState>,
    Extension(version): Extension<Microversion>,
    ctx: RequestContext,
) -> Result<Json<Value>, ApiError> {
    require(version, 2)?;
    authorize(&state, &ctx, "placement:resource_classes:list")?;
    let names = state.names_list(NameKind::ResourceClass).await?;
    let rendered: Vec<Value> = names.iter().map(|name| render(name)).collect();
    Ok(Json(json!({ "resource_classes": rendered })))
}

#[derive(Deserialize)]
struct NameBody {
    name: String,
}

body_schema!(
    NameBody,
    json!({
        "type": "object",
        "properties": {"name": {"type": "string", "pattern": "^CUSTOM_[A-Z0-9_]+$", "maxLength": 255}},
        "required": ["name"],
        "additionalProperties": false
    })
);

async fn create(
    State(state): State<PlacementState>,
    Extension(version): Extension<Microversion>,
    ctx: RequestContext,
    JsonBody(body): JsonBody<NameBody>,
) -> Result<Response, ApiError> {
    require(version, 2)?;
    authorize(&state, &ctx, "placement:resource_classes:create")?;
    check_custom(&body.name)?;
    if state
        .name_create(NameKind::ResourceClass, &body.name)
        .await?
        == Created::Existing
    {
        return Err(ApiError::conflict(format!(
            "Conflicting resource class already exists: {}",
            body.name
        ))
        .with_type(crate::error::CODE_DUPLICATE_NAME));
    }
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location(&state, &body.name))],
    )
        .into_response())
}

async fn show(
    State(state): State<PlacementState>,
    Extension(version): Extension<Microversion>,
    ctx: RequestContext,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    require(version, 2)?;
    authorize(&state, &ctx, "placement:resource_classes:show")?;
    if !state.name_exists(NameKind::ResourceClass, &name).await? {
        return Err(ApiError::not_found(format!(
            "No such resource class {name}."
        )));
    }
    Ok(Json(render(&name)))
}

async fn update(
    State(state): State<PlacementState>,
    Extension(version): Extension<Microversion>,
    ctx: RequestContext,
    Path(name): Path<String>,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    require(version, 2)?;
    authorize(&state, &ctx, "placement:resource_classes:update")?;
    if version.at_least(1, 7) {
        check_custom(&name)?;
        let status = match state.name_create(NameKind::ResourceClass, &name).await? {
            Created::New => StatusCode::CREATED,
            Created::Existing => StatusCode::NO_CONTENT,
        };
        return Ok((status, [(header::LOCATION, location(&state, &name))]).into_response());
    }
    let body = read_json(request, &()).await?;
    static SCHEMA: std::sync::OnceLock<Schema> = std::sync::OnceLock::new();
    SCHEMA
        .get_or_init(|| Schema::compile(&json!({
            "type": "object",
            "properties": {"name": {"type": "string", "pattern": "^CUSTOM_[A-Z0-9_]+$", "maxLength": 255}},
            "required": ["name"],
            "additionalProperties": false
        })))
        .check(&body)?;
    let new_name = body["name"].as_str().unwrap_or_default().to_owned();
    check_custom(&new_name)?;
    state.resource_class_rename(&name, &new_name).await?;
    Ok(Json(render(&new_name)).into_response())
}

async fn remove(
    State(state): State<PlacementState>,
    Extension(version): Extension<Microversion>,
    ctx: RequestContext,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    require(version, 2)?;
    authorize(&state, &ctx, "placement:resource_classes:delete")?;
    state.name_delete(NameKind::ResourceClass, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
