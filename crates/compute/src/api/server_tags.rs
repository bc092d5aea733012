//! `/servers/{id}/tags` (2.26+): list, replace, check, add and remove a
//! server's tags. Tags are strings of 1 to 60 characters without `/` or
//! `,`, at most 50 per server. `/servers/{id}/ips`: the server's addresses,
//! all or for one network.

use std::sync::OnceLock;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use oxstack_core::validate::Schema;
use oxstack_core::ApiError;
use serde_json::{json, Value};

use super::server_input::{MAX_TAG_COUNT, MAX_TAG_LENGTH};
use super::server_view::addresses;
use super::servers::{load_authorized, ports_of, project_target};
use super::{db_error, parse_body, ComputeState, Version};
use crate::policy::Caller;
use crate::server::state;
use crate::server::store::{self, Modified};
use crate::server::Server;

pub fn routes() -> Router<ComputeState> {
    Router::new()
        .route(
            "/servers/{id}/tags",
            get(index).put(replace).delete(delete_all),
        )
        .route(
            "/servers/{id}/tags/{tag}",
            get(check).put(add).delete(remove),
        )
        .route("/servers/{id}/ips", get(ips))
        .route("/servers/{id}/ips/{network}", get(ips_of_network))
}

fn tags_schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        Schema::compile(&json!({
            "type": "object",
            "properties": {
                "tags": {
                    "type": "array",
                    "items": {"type": "string", "pattern": "^[^,/]*$", "minLength": 1, "maxLength": MAX_TAG_LENGTH},
                    "maxItems": MAX_TAG_COUNT
                }
            },
            "required": ["tags"],
            "additionalProperties": false
        }))
    })
}

/// Loads server `id` for a tag request: the microversion comes first, so
/// a tag URL before 2.26 is a 404 whatever the server, as in Nova.
async fn load_for_tags(
    state: &ComputeState,
    caller: &Caller,
    version: oxstack_core::microversion::Microversion,
    id: &str,
    rule: &str,
) -> Result<Server, ApiError> {
    require_tags_version(version)?;
    let rule = format!("os_compute_api:os-server-tags:{rule}");
    load_authorized(state, caller, id, &rule, project_target).await
}

/// Tags exist from 2.26; before it Nova has no such resource.
fn require_tags_version(version: oxstack_core::microversion::Microversion) -> Result<(), ApiError> {
    if version.at_least(2, 26) {
        Ok(())
    } else {
        Err(ApiError::not_found("The resource could not be found."))
    }
}

/// Changes the tags of `server` after Nova's vm state check.
async fn change_tags(
    state: &ComputeState,
    server: &Server,
    action: &'static str,
    change: impl Fn(&mut Vec<String>) -> Result<(), ApiError>,
) -> Result<Vec<String>, ApiError> {
    let outcome = store::modify(state.pool(), &server.id, |current| {
        state::check_tag_change(current, action)
            .map_err(|refusal| ApiError::conflict(refusal.message()))?;
        change(&mut current.tags)
    })
    .await
    .map_err(db_error)?;
    match outcome {
        Modified::Saved(saved) => {
            tracing::info!(server_id = %server.id, action, "server tags changed");
            Ok(saved.tags)
        }
        Modified::NotFound => Err(ApiError::not_found(format!(
            "Instance {} could not be found.",
            server.id
        ))),
        Modified::Refused(error) => Err(error),
    }
}

async fn index(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let server = load_for_tags(&state, &caller, version, &id, "index").await?;
    Ok(Json(json!({ "tags": server.tags })))
}

async fn replace(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let server = load_for_tags(&state, &caller, version, &id, "update_all").await?;
    let body = parse_body(&body)?;
    tags_schema().check(&body)?;
    let mut wanted: Vec<String> = Vec::new();
    for tag in body["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if !wanted.iter().any(|t| t == tag) {
            wanted.push(tag.to_owned());
        }
    }
    let tags = change_tags(&state, &server, "update tags", |tags| {
        *tags = wanted.clone();
        Ok(())
    })
    .await?;
    Ok(Json(json!({ "tags": tags })))
}

async fn delete_all(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let server = load_for_tags(&state, &caller, version, &id, "delete_all").await?;
    change_tags(&state, &server, "delete tags", |tags| {
        tags.clear();
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn check(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
    Path((id, tag)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let server = load_for_tags(&state, &caller, version, &id, "show").await?;
    if server.tags.contains(&tag) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "Server {id} has no tag '{tag}'"
        )))
    }
}

async fn add(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
    Path((id, tag)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let server = load_for_tags(&state, &caller, version, &id, "update").await?;
    state::check_tag_change(&server, "update tag")
        .map_err(|refusal| ApiError::conflict(refusal.message()))?;
    let length = tag.chars().count();
    if length == 0 || length > MAX_TAG_LENGTH || tag.contains('/') || tag.contains(',') {
        return Err(ApiError::bad_request(format!(
            "Tag '{tag}' is invalid. It must be a non empty string without characters '/' and ',' \
             and at most {MAX_TAG_LENGTH} characters long."
        )));
    }
    if server.tags.contains(&tag) {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    change_tags(&state, &server, "update tag", |tags| {
        if tags.contains(&tag) {
            return Ok(());
        }
        if tags.len() >= MAX_TAG_COUNT {
            return Err(ApiError::bad_request(format!(
                "The number of tags exceeded the per-server limit {MAX_TAG_COUNT}"
            )));
        }
        tags.push(tag.clone());
        Ok(())
    })
    .await?;
    let mut response = StatusCode::CREATED.into_response();
    if let Ok(location) = HeaderValue::from_str(&state.v21_url(&format!("servers/{id}/tags/{tag}")))
    {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

async fn remove(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
    Path((id, tag)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let server = load_for_tags(&state, &caller, version, &id, "delete").await?;
    let missing = || ApiError::not_found(format!("Instance {id} has no tag '{tag}'"));
    change_tags(&state, &server, "delete tag", |tags| {
        let before = tags.len();
        tags.retain(|t| *t != tag);
        if tags.len() == before {
            return Err(missing());
        }
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn ips(
    State(state): State<ComputeState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let server = load_authorized(
        &state,
        &caller,
        &id,
        "os_compute_api:ips:index",
        project_target,
    )
    .await?;
    let ports = ports_of(&state, &server).await;
    Ok(Json(json!({ "addresses": addresses(&ports, false) })))
}

async fn ips_of_network(
    State(state): State<ComputeState>,
    caller: Caller,
    Path((id, network)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let server = load_authorized(
        &state,
        &caller,
        &id,
        "os_compute_api:ips:show",
        project_target,
    )
    .await?;
    let ports = ports_of(&state, &server).await;
    let mut all = addresses(&ports, false);
    let entries = all
        .remove(&network)
        .ok_or_else(|| ApiError::not_found("Instance is not a member of specified network"))?;
    Ok(Json(json!({ network: entries })))
}
