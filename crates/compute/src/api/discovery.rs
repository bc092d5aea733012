//! Version discovery: the versions list at the endpoint root and the
//! documents of v2.0 and v2.1, served without a token. Clients read the
//! v2.1 document's `version` as the maximum microversion, and Tempest
//! follows every `self` link, so each one leads to its own document.

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::ComputeState;
use crate::version::{MAX, MIN};

/// Routes of the versions list and the documents, with their full paths:
/// `/compute` and `/compute/`, `/compute/v2` and `/compute/v2/`, and
/// `/compute/v2.1/` (the v2.1 router serves `/compute/v2.1`).
pub fn routes(state: ComputeState) -> Router {
    let root = state.clone();
    let root_slash = state.clone();
    let v2 = state.clone();
    let v2_slash = state.clone();
    let v21_slash = state;
    Router::new()
        .route("/compute", get(move || versions(root.clone())))
        .route("/compute/", get(move || versions(root_slash.clone())))
        .route("/compute/v2", get(move || v2_document(v2.clone())))
        .route("/compute/v2/", get(move || v2_document(v2_slash.clone())))
        .route(
            "/compute/v2.1/",
            get(move || v21_document(v21_slash.clone())),
        )
}

/// Returns the `GET /compute/` versions list, v2.0 first as Tempest requires.
pub async fn versions(state: ComputeState) -> Json<Value> {
    let mut v20 = v20_entry(&state);
    let mut v21 = v21_entry(&state);
    for entry in [&mut v20, &mut v21] {
        if let Some(object) = entry.as_object_mut() {
            object.remove("media-types");
            object.insert("links".into(), json!([object["links"][0].clone()]));
        }
    }
    Json(json!({ "versions": [v20, v21] }))
}

/// Returns the `GET /compute/v2.1` document.
pub async fn v21_document(state: ComputeState) -> Json<Value> {
    Json(json!({ "version": v21_entry(&state) }))
}

async fn v2_document(state: ComputeState) -> Json<Value> {
    Json(json!({ "version": v20_entry(&state) }))
}

fn v21_entry(state: &ComputeState) -> Value {
    json!({
        "id": "v2.1",
        "status": "CURRENT",
        "version": MAX.to_string(),
        "min_version": MIN.to_string(),
        "updated": "2013-07-23T11:33:21Z",
        "links": links(&format!("{}/compute/v2.1/", state.public_url)),
        "media-types": [{
            "base": "application/json",
            "type": "application/vnd.openstack.compute+json;version=2.1",
        }],
    })
}

// v2.0 is the pre-microversion API; its document has empty version fields,
// as Nova's does.
fn v20_entry(state: &ComputeState) -> Value {
    json!({
        "id": "v2.0",
        "status": "SUPPORTED",
        "version": "",
        "min_version": "",
        "updated": "2011-01-21T11:33:21Z",
        "links": links(&format!("{}/compute/v2/", state.public_url)),
        "media-types": [{
            "base": "application/json",
            "type": "application/vnd.openstack.compute+json;version=2",
        }],
    })
}

fn links(self_href: &str) -> Value {
    json!([
        {"rel": "self", "href": self_href},
        {"rel": "describedby", "type": "text/html", "href": "http://docs.openstack.org/"},
    ])
}
