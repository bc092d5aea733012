//! `/servers/{id}/metadata`: read, merge, replace, and per-key read, set
//! and delete of a server's metadata, with Nova's validation (keys of 1 to
//! 255 characters from `[a-zA-Z0-9-_:. ]`, string values up to 255) and
//! its `metadata_items` quota.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use oxstack_core::validate::Schema;
use oxstack_core::{ApiError, ErrorKind};
use serde_json::{json, Value};

use super::servers::{load_authorized, project_target};
use super::{db_error, parse_body, ComputeState};
use crate::policy::Caller;
use crate::quota;
use crate::server::state;
use crate::server::store::{self, Modified};
use crate::server::Server;

pub fn routes() -> Router<ComputeState> {
    Router::new()
        .route(
            "/servers/{id}/metadata",
            get(index).post(merge).put(replace),
        )
        .route(
            "/servers/{id}/metadata/{key}",
            get(show).put(set_item).delete(delete_item),
        )
}

fn metadata_value() -> Value {
    json!({
        "type": "object",
        "patternProperties": {"^[a-zA-Z0-9-_:. ]{1,255}$": {"type": "string", "maxLength": 255}},
        "additionalProperties": false
    })
}

fn metadata_schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        Schema::compile(&json!({
            "type": "object",
            "properties": {"metadata": metadata_value()},
            "required": ["metadata"],
            "additionalProperties": false
        }))
    })
}

fn item_schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let mut meta = metadata_value();
        meta["minProperties"] = json!(1);
        meta["maxProperties"] = json!(1);
        Schema::compile(&json!({
            "type": "object",
            "properties": {"meta": meta},
            "required": ["meta"],
            "additionalProperties": false
        }))
    })
}

fn string_map(value: &Value) -> BTreeMap<String, String> {
    value
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// Loads server `id` and checks its `server-metadata` rule; Nova checks
/// these against the server's project only.
async fn load_for_metadata(
    state: &ComputeState,
    caller: &Caller,
    id: &str,
    rule: &str,
) -> Result<Server, ApiError> {
    let rule = format!("os_compute_api:server-metadata:{rule}");
    load_authorized(state, caller, id, &rule, project_target).await
}

async fn index(
    State(state): State<ComputeState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let server = load_for_metadata(&state, &caller, &id, "index").await?;
    Ok(Json(json!({ "metadata": server.metadata })))
}

async fn show(
    State(state): State<ComputeState>,
    caller: Caller,
    Path((id, key)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let server = load_for_metadata(&state, &caller, &id, "show").await?;
    let value = server
        .metadata
        .get(&key)
        .ok_or_else(|| ApiError::not_found("Metadata item was not found"))?;
    Ok(Json(json!({ "meta": { key: value } })))
}

/// A change a write makes to the metadata.
enum Change {
    Merge(BTreeMap<String, String>),
    Replace(BTreeMap<String, String>),
    Delete(String),
}

/// The reason a metadata write is rejected.
enum Rejection {
    State(state::Refusal),
    Quota(i64),
    MissingKey,
}

/// Applies `change` under the server's revision check, with Nova's state,
/// lock and quota rules, and returns the metadata as stored.
async fn write(
    state: &ComputeState,
    caller: &Caller,
    server: &Server,
    change: Change,
) -> Result<BTreeMap<String, String>, ApiError> {
    let limits = quota::limits(state, &server.project_id, None).await?;
    let limit = limits.get("metadata_items").copied().unwrap_or(-1);
    let is_admin = caller.is_admin();
    let action = if matches!(change, Change::Delete(_)) {
        "delete metadata"
    } else {
        "update metadata"
    };
    let outcome = store::modify(state.pool(), &server.id, |current| {
        state::check_metadata_change(current, action, is_admin).map_err(Rejection::State)?;
        match &change {
            Change::Merge(items) => current.metadata.extend(items.clone()),
            Change::Replace(items) => current.metadata = items.clone(),
            Change::Delete(key) => {
                current.metadata.remove(key).ok_or(Rejection::MissingKey)?;
            }
        }
        if limit >= 0 && current.metadata.len() as i64 > limit {
            return Err(Rejection::Quota(limit));
        }
        Ok(())
    })
    .await
    .map_err(db_error)?;
    match outcome {
        Modified::Saved(saved) => {
            tracing::info!(server_id = %server.id, action, "server metadata changed");
            Ok(saved.metadata)
        }
        Modified::NotFound => Err(ApiError::not_found("Server does not exist")),
        Modified::Refused(Rejection::State(refusal)) => Err(ApiError::conflict(refusal.message())),
        Modified::Refused(Rejection::Quota(limit)) => Err(ApiError::new(
            ErrorKind::QuotaExceeded,
            format!("Maximum number of metadata items exceeds {limit}"),
        )),
        Modified::Refused(Rejection::MissingKey) => {
            Err(ApiError::not_found("Metadata item was not found"))
        }
    }
}

async fn merge(
    State(state): State<ComputeState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    write_all(&state, &caller, &id, &body, "create", Change::Merge).await
}

async fn replace(
    State(state): State<ComputeState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    write_all(&state, &caller, &id, &body, "update_all", Change::Replace).await
}

/// The body of `POST` (merge) and `PUT` (replace) on the whole metadata:
/// they differ only in their policy rule and in what the given items do
/// to the stored ones.
async fn write_all(
    state: &ComputeState,
    caller: &Caller,
    id: &str,
    body: &Bytes,
    rule: &str,
    change: fn(BTreeMap<String, String>) -> Change,
) -> Result<Json<Value>, ApiError> {
    let server = load_for_metadata(state, caller, id, rule).await?;
    let body = parse_body(body)?;
    metadata_schema().check(&body)?;
    let metadata = write(
        state,
        caller,
        &server,
        change(string_map(&body["metadata"])),
    )
    .await?;
    Ok(Json(json!({ "metadata": metadata })))
}

async fn set_item(
    State(state): State<ComputeState>,
    caller: Caller,
    Path((id, key)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let server = load_for_metadata(&state, &caller, &id, "update").await?;
    let body = parse_body(&body)?;
    item_schema().check(&body)?;
    let item = string_map(&body["meta"]);
    if !item.contains_key(&key) {
        return Err(ApiError::bad_request("Request body and URI mismatch"));
    }
    write(&state, &caller, &server, Change::Merge(item.clone())).await?;
    Ok(Json(json!({ "meta": item })))
}

async fn delete_item(
    State(state): State<ComputeState>,
    caller: Caller,
    Path((id, key)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let server = load_for_metadata(&state, &caller, &id, "delete").await?;
    if !server.metadata.contains_key(&key) {
        return Err(ApiError::not_found("Metadata item was not found"));
    }
    write(&state, &caller, &server, Change::Delete(key)).await?;
    Ok(StatusCode::NO_CONTENT)
}
