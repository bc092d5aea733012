//! Version discovery (`GET /`, `GET /versions`) and `/v2/info/*`, all but
//! the last unauthenticated.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use oxstack_core::{ApiError, RequestContext};
use serde_json::{json, Value};

use super::ImageState;
use crate::ops::import::IMPORT_METHODS;

/// The versions Glance lists when neither multiple stores nor the image
/// cache are enabled, newest first. Clients pick the CURRENT one; 2.8 to
/// 2.13 (multiple stores) and 2.14 to 2.16 (cache API) are left out, as
/// Glance leaves them out in that configuration.
const VERSIONS: &[(&str, &str)] = &[
    ("v2.17", "CURRENT"),
    ("v2.15", "SUPPORTED"),
    ("v2.9", "SUPPORTED"),
    ("v2.7", "SUPPORTED"),
    ("v2.6", "SUPPORTED"),
    ("v2.5", "SUPPORTED"),
    ("v2.4", "SUPPORTED"),
    ("v2.3", "SUPPORTED"),
    ("v2.2", "SUPPORTED"),
    ("v2.1", "SUPPORTED"),
    ("v2.0", "SUPPORTED"),
];

pub fn routes() -> Router<ImageState> {
    Router::new()
        .route("/", get(root))
        .route("/versions", get(versions))
        .route("/v2/info/import", get(info_import))
        .route("/v2/info/stores", get(info_stores))
}

/// Returns the version list, with self links under the image endpoint.
pub fn version_document(public_url: &str) -> Value {
    let href = format!("{public_url}/image/v2/");
    let versions: Vec<Value> = VERSIONS
        .iter()
        .map(|(id, status)| json!({"id": id, "status": status, "links": [{"rel": "self", "href": href}]}))
        .collect();
    json!({ "versions": versions })
}

async fn root(State(state): State<ImageState>) -> Response {
    root_document(state.public_url.clone()).await
}

/// Returns the endpoint root document: 300 Multiple Choices with the version list,
/// as Glance does.
pub async fn root_document(public_url: String) -> Response {
    (
        StatusCode::MULTIPLE_CHOICES,
        Json(version_document(&public_url)),
    )
        .into_response()
}

async fn versions(State(state): State<ImageState>) -> Json<Value> {
    Json(version_document(&state.public_url))
}

async fn info_import(_ctx: RequestContext) -> Json<Value> {
    Json(json!({"import-methods": {
        "description": "Import methods available.",
        "type": "array",
        "value": IMPORT_METHODS,
    }}))
}

// Glance returns 404 here unless multiple stores are enabled, and Tempest
// takes the 404 to mean a single store.
async fn info_stores(_ctx: RequestContext) -> ApiError {
    ApiError::not_found("Multi backend is not supported at this site.")
}
