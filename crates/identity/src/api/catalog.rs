//! The service catalog's admin API: `/v3/services`, `/v3/endpoints` and
//! `/v3/regions`. Tokens and `/v3/auth/catalog` render the catalog itself
//! (`crate::token::render_catalog`).

mod endpoints;
mod regions;
mod services;

use axum::routing::get;
use axum::Router;
use oxstack_core::ApiError;
use serde_json::Value;

use crate::IdentityState;

pub fn routes() -> Router<IdentityState> {
    Router::new()
        .route("/v3/services", get(services::list).post(services::create))
        .route(
            "/v3/services/{service_id}",
            get(services::show)
                .patch(services::update)
                .delete(services::remove),
        )
        .route(
            "/v3/endpoints",
            get(endpoints::list).post(endpoints::create),
        )
        .route(
            "/v3/endpoints/{endpoint_id}",
            get(endpoints::show)
                .patch(endpoints::update)
                .delete(endpoints::remove),
        )
        .route("/v3/regions", get(regions::list).post(regions::create))
        .route(
            "/v3/regions/{region_id}",
            get(regions::show)
                .put(regions::create_with_id)
                .patch(regions::update)
                .delete(regions::remove),
        )
}

/// Keystone's `ValidationError` for a reference to a row that does not
/// exist, such as an endpoint naming an unknown service (400).
fn missing_reference(attribute: &str, target: &str) -> ApiError {
    ApiError::bad_request(format!(
        "Expecting to find {attribute} in {target}. The server could not comply with the request \
         since it is either malformed or otherwise incorrect. The client is assumed to be in error."
    ))
}

/// Rejects an update body whose `id` differs from the one in the path, as
/// Keystone does (400).
fn require_matching_id(input: &Value, path_id: &str) -> Result<(), ApiError> {
    match input.get("id").and_then(Value::as_str) {
        Some(id) if id != path_id => Err(ApiError::bad_request(format!(
            "Cannot change ID: the body names {id} but the URL names {path_id}."
        ))),
        _ => Ok(()),
    }
}
