//! Version discovery: the versions document at the endpoint root and the
//! resource list at `/v2.0/`. Both are served without a token.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::NetworkState;

/// The collections this service serves, as `(resource, collection)`.
pub const RESOURCES: &[(&str, &str)] = &[
    ("network", "networks"),
    ("subnet", "subnets"),
    ("port", "ports"),
    ("security_group", "security-groups"),
    ("security_group_rule", "security-group-rules"),
    ("router", "routers"),
    ("floatingip", "floatingips"),
    ("quota", "quotas"),
    ("agent", "agents"),
];

pub fn routes() -> Router<NetworkState> {
    Router::new()
        .route(
            "/",
            get(|State(state): State<NetworkState>| versions(state.public_url.clone())),
        )
        .route("/v2.0", get(resources))
        .route("/v2.0/", get(resources))
}

/// Returns the versions document; `public_url` is the cloud's base URL.
pub async fn versions(public_url: String) -> Json<Value> {
    Json(json!({"versions": [{
        "id": "v2.0",
        "status": "CURRENT",
        "links": [{"rel": "self", "href": format!("{public_url}/networking/v2.0/")}],
    }]}))
}

async fn resources(State(state): State<NetworkState>) -> Json<Value> {
    let resources: Vec<Value> = RESOURCES
        .iter()
        .map(|(name, collection)| {
            json!({
                "name": name,
                "collection": collection,
                "links": [{"rel": "self", "href": state.v2_url(collection)}],
            })
        })
        .collect();
    Json(json!({ "resources": resources }))
}
