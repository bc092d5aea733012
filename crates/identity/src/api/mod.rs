//! The Identity v3 HTTP API: one module per resource, each with its routes,
//! request schemas and JSON shapes.

pub mod app_creds;
pub mod assignments;
pub mod auth;
pub mod catalog;
pub mod discovery;
pub mod domains;
pub mod groups;
pub mod projects;
pub mod roles;
pub mod users;
pub mod v2;

use std::collections::HashMap;

use axum::extract::Query;
use axum::Router;
use oxstack_core::ApiError;
use serde_json::{json, Value};

use std::sync::Arc;

use oxstack_core::{ServiceKind, TokenValidator};

use crate::token::LocalValidator;
use crate::IdentityState;

/// Builds the identity routes (`/v3/…` and `/v2.0/tokens`), relative to the
/// listener's root, with token authentication and Keystone's error bodies.
pub fn router(state: IdentityState) -> Router {
    Router::new()
        .merge(discovery::routes())
        .merge(auth::routes())
        .merge(domains::routes())
        .merge(projects::routes())
        .merge(users::routes())
        .merge(groups::routes())
        .merge(roles::routes())
        .merge(assignments::routes())
        .merge(catalog::routes())
        .merge(app_creds::routes())
        .merge(v2::routes())
        .fallback(|| async { ApiError::not_found("The resource could not be found.") })
        .with_state(state.clone())
        .layer(axum::middleware::from_fn(move |request, next| {
            let validator: Arc<dyn TokenValidator> = Arc::new(LocalValidator(state.clone()));
            oxstack_core::context::authenticate(validator, request, next)
        }))
        .layer(axum::middleware::from_fn(|request, next| {
            oxstack_core::error::render_errors(ServiceKind::Identity, request, next)
        }))
}

/// Query parameters as a multimap-free map; the last value of a repeated
/// key wins.
pub type QueryMap = Query<HashMap<String, String>>;

/// Builds the `links` object of a resource.
pub fn self_link(state: &crate::Identity, path: &str) -> Value {
    json!({ "self": format!("{}/v3/{path}", state.public_url) })
}

/// Builds the `links` object of a collection.
pub fn collection_links(state: &crate::Identity, path: &str) -> Value {
    json!({ "self": format!("{}/v3/{path}", state.public_url), "previous": null, "next": null })
}

/// Renders a list body, truncating to the configured `list_limit` as
/// Keystone does.
pub fn list_body(state: &crate::Identity, key: &str, path: &str, mut items: Vec<Value>) -> Value {
    let mut body = json!({ "links": collection_links(state, path) });
    if let Some(limit) = state.config.list_limit {
        if items.len() > limit {
            items.truncate(limit);
            body["truncated"] = json!(true);
        }
    }
    body[key] = Value::Array(items);
    body
}

/// Parses a boolean filter (`enabled=false`, `is_domain=0`).
pub fn bool_param(query: &HashMap<String, String>, key: &str) -> Result<Option<bool>, ApiError> {
    let Some(value) = query.get(key) else {
        return Ok(None);
    };
    match value.to_ascii_lowercase().as_str() {
        "" | "1" | "true" | "yes" | "on" => Ok(Some(true)),
        "0" | "false" | "no" | "off" => Ok(Some(false)),
        _ => Err(ApiError::bad_request(format!(
            "Invalid value '{value}' for query parameter '{key}': expected true or false."
        ))),
    }
}

/// Reads optional string fields, returning `None` for JSON null.
pub fn opt_str(body: &Value, key: &str) -> Option<String> {
    body.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// Returns the JSON schema fragment for an optional description.
pub fn description_schema() -> Value {
    json!({"type": ["string", "null"], "maxLength": 65535})
}

/// Returns the JSON schema fragment for resource names (1 to 255 characters, as
/// Keystone limits them).
pub fn name_schema() -> Value {
    oxstack_core::validate::name_schema().clone()
}

/// Returns the JSON schema fragment for project and domain names, which Keystone
/// limits to 64 characters.
pub fn short_name_schema() -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": 64})
}

/// Returns the JSON schema fragment for a resource id in a body.
pub fn id_schema() -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": 64})
}

/// Returns the JSON schema fragment for tags (Keystone: up to 80 tags of at most
/// 255 characters, no `/` or `,`).
pub fn tags_schema() -> Value {
    json!({"type": "array", "maxItems": 80, "uniqueItems": true,
           "items": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[^,/]*$"}})
}
