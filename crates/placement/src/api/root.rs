//! The version document at the endpoint root, served without a token.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::{PlacementState, VERSIONS};

pub fn routes() -> Router<PlacementState> {
    Router::new().route("/", get(versions))
}

pub async fn versions(State(state): State<PlacementState>) -> Json<Value> {
    Json(json!({"versions": [{
        "id": "v1.0",
        "min_version": VERSIONS.min.to_string(),
        "max_version": VERSIONS.max.to_string(),
        "status": "CURRENT",
        "links": [{"rel": "self", "href": format!("{}/placement/", state.public_url)}],
    }]}))
}
