//! Version discovery: `GET /`, `GET /v3` and `GET /v2.0`, unauthenticated,
//! with self links at the public URL (the token POST goes to the self link).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::IdentityState;

const V3_UPDATED: &str = "2024-04-01T00:00:00Z";

pub fn routes() -> Router<IdentityState> {
    Router::new().route("/v3", get(v3)).route("/v3/", get(v3))
}

/// The v3 version entry.
pub fn v3_entry(public_url: &str) -> Value {
    json!({
        "id": "v3.14",
        "status": "stable",
        "updated": V3_UPDATED,
        "links": [{"rel": "self", "href": format!("{public_url}/v3/")}],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}]
    })
}

async fn v3(State(state): State<IdentityState>) -> Json<Value> {
    Json(json!({ "version": v3_entry(&state.public_url) }))
}

/// `GET /`: the identity version list, 300 Multiple Choices as Keystone
/// returns it, for clients whose auth URL has no version.
pub fn root_versions(public_url: &str) -> Response {
    let body = json!({ "versions": { "values": [v3_entry(public_url)] } });
    (StatusCode::MULTIPLE_CHOICES, Json(body)).into_response()
}
