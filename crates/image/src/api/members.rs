//! `/v2/images/{id}/members`: sharing images with other projects.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use oxstack_core::ApiError;
use serde_json::{json, Value};

use super::{image_id, render, ImageState};
use crate::model::MemberStatus;
use crate::ops;
use crate::policy::Caller;

pub fn routes() -> Router<ImageState> {
    Router::new()
        .route("/v2/images/{image_id}/members", get(list).post(create))
        .route(
            "/v2/images/{image_id}/members/{member_id}",
            get(show).put(update).delete(remove),
        )
}

async fn create(
    State(state): State<ImageState>,
    caller: Caller,
    Path(id): Path<String>,
    request: axum::extract::Request,
) -> Result<Json<Value>, ApiError> {
    let body = oxstack_core::validate::read_json(request, &state).await?;
    let member_id = match body.get("member") {
        None => return Err(ApiError::bad_request("Member to be added not specified")),
        Some(Value::String(member)) if !member.is_empty() => member.clone(),
        Some(Value::String(_)) => return Err(ApiError::bad_request("Member can't be empty")),
        Some(_) => {
            return Err(ApiError::bad_request(
                "Expected a member in the form: {\"member\": \"project_id\"}",
            ))
        }
    };
    let member = ops::members::add(&state, &caller, &image_id(id), &member_id).await?;
    Ok(Json(render::member(&member)))
}

async fn list(
    State(state): State<ImageState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let members = ops::members::list(&state, &caller, &image_id(id)).await?;
    let members: Vec<Value> = members.iter().map(render::member).collect();
    Ok(Json(
        json!({"members": members, "schema": "/v2/schemas/members"}),
    ))
}

async fn show(
    State(state): State<ImageState>,
    caller: Caller,
    Path((id, member_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let member = ops::members::show(&state, &caller, &image_id(id), &member_id).await?;
    Ok(Json(render::member(&member)))
}

async fn update(
    State(state): State<ImageState>,
    caller: Caller,
    Path((id, member_id)): Path<(String, String)>,
    request: axum::extract::Request,
) -> Result<Json<Value>, ApiError> {
    let body = oxstack_core::validate::read_json(request, &state).await?;
    let status = match body.get("status") {
        None => return Err(ApiError::bad_request("Status not specified")),
        Some(Value::String(status)) => status
            .parse::<MemberStatus>()
            .map_err(|error| ApiError::bad_request(format!("Incorrect request: {error}")))?,
        Some(_) => {
            return Err(ApiError::bad_request(
                "Expected a status in the form: {\"status\": \"status\"}",
            ))
        }
    };
    let member =
        ops::members::set_status(&state, &caller, &image_id(id), &member_id, status).await?;
    Ok(Json(render::member(&member)))
}

async fn remove(
    State(state): State<ImageState>,
    caller: Caller,
    Path((id, member_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    ops::members::remove(&state, &caller, &image_id(id), &member_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
