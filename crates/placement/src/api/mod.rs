//! The Placement HTTP API: one module per resource. Paths are relative to
//! the placement endpoint root; the binary nests this router under
//! `/placement`.

pub mod aggregates;
pub mod allocation_candidates;
pub mod allocations;
pub mod errors;
pub mod inventories;
pub mod query;
pub mod resource_classes;
pub mod resource_providers;
pub mod root;
pub mod traits;
pub mod usages;

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use oxstack_core::microversion::{Microversion, VersionRange};
use oxstack_core::{ApiError, ErrorKind, RequestContext, TokenValidator};

use crate::PlacementService;

/// Shared handle passed to every handler.
pub type PlacementState = Arc<PlacementService>;

/// The microversions served. Each version up to `max` is implemented
/// whole; nested allocation candidates (1.29) and later are not.
pub const VERSIONS: VersionRange = VersionRange {
    service: "placement",
    legacy_header: None,
    min: Microversion::new(1, 0),
    max: Microversion::new(1, 28),
};

/// Builds the placement routes with token authentication, microversion
/// negotiation and placement's error bodies.
pub fn router(state: PlacementState, validator: Arc<dyn TokenValidator>) -> Router {
    let router = Router::new()
        .merge(root::routes())
        .merge(resource_providers::routes())
        .merge(inventories::routes())
        .merge(aggregates::routes())
        .merge(traits::routes())
        .merge(resource_classes::routes())
        .merge(allocations::routes())
        .merge(usages::routes())
        .merge(allocation_candidates::routes())
        .fallback(|| async { ApiError::not_found("The resource could not be found.") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                ErrorKind::MethodNotAllowed,
                "The method specified is not allowed for this resource.",
            )
        })
        .with_state(state)
        .layer(axum::middleware::from_fn(move |request, next| {
            oxstack_core::context::authenticate(validator.clone(), request, next)
        }));
    with_placement_layers(router)
}

/// Wraps `router` in microversion negotiation, the cache headers and
/// placement's error bodies.
fn with_placement_layers(router: Router) -> Router {
    router
        .layer(axum::middleware::from_fn(cache_headers))
        .layer(axum::middleware::from_fn(|request, next| {
            oxstack_core::microversion::negotiate(VERSIONS, request, next)
        }))
        .layer(axum::middleware::from_fn(errors::render_errors))
}

/// Returns the placement API mounted at `/placement`, plus `/placement/`,
/// because axum 0.8's `nest` does not match the trailing slash.
pub fn mount(state: PlacementState, validator: Arc<dyn TokenValidator>) -> Router {
    let root = Router::new()
        .route("/placement/", axum::routing::get(root::versions))
        .with_state(state.clone());
    Router::new()
        .merge(with_placement_layers(root))
        .nest("/placement", router(state, validator))
}

/// Returns 404 below microversion `1.minor`, as OpenStack Placement returns for a
/// route or method that does not exist yet at the requested version.
pub fn require(version: Microversion, minor: u32) -> Result<(), ApiError> {
    if version.at_least(1, minor) {
        return Ok(());
    }
    Err(ApiError::not_found(format!(
        "The resource could not be found: it needs microversion 1.{minor} or later; send OpenStack-API-Version: placement 1.{minor}."
    )))
}

/// Returns the path of `relative` under the placement endpoint, as links
/// in placement's bodies are written.
pub fn link(relative: &str) -> String {
    format!("/placement/{relative}")
}

/// Adds `Cache-Control: no-cache` and `Last-Modified` to successful
/// responses with a body from microversion 1.15 on, so that no proxy
/// caches them.
// NOTE: unless the handler set `Last-Modified` from the resource, it is the
// time of the response, which placement also uses for collections.
async fn cache_headers(request: Request, next: Next) -> Response {
    let version = request.extensions().get::<Microversion>().copied();
    let mut response = next.run(request).await;
    let add_headers = version.is_some_and(|v| v.at_least(1, 15))
        && response.status().is_success()
        && response.status() != axum::http::StatusCode::NO_CONTENT;
    if add_headers {
        let stamp = chrono::Utc::now()
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        if !headers.contains_key(header::LAST_MODIFIED) {
            if let Ok(value) = HeaderValue::from_str(&stamp) {
                headers.insert(header::LAST_MODIFIED, value);
            }
        }
    }
    response
}

/// Authorises `action` for the caller of `ctx`.
pub fn authorize(
    state: &PlacementService,
    ctx: &RequestContext,
    action: &str,
) -> Result<(), ApiError> {
    crate::policy::authorize(&state.policy, ctx, action)
}

/// Fails with 400 unless every name in `names` exists as a `kind`, as
/// placement checks the `resources` and `required` filters.
pub async fn check_names_exist(
    state: &PlacementService,
    kind: crate::catalog::NameKind,
    names: &[String],
) -> Result<(), ApiError> {
    for name in names {
        if !state.name_exists(kind, name).await? {
            return Err(ApiError::bad_request(format!(
                "Invalid query string parameters: No such {} {name}.",
                kind.noun()
            ))
            .with_type(crate::error::CODE_QUERY_BAD_VALUE));
        }
    }
    Ok(())
}

/// Formats unix seconds as an HTTP date (`Fri, 04 Dec 2026 23:00:00 GMT`).
pub fn http_date(unix_seconds: i64) -> String {
    oxstack_core::time::from_unix(unix_seconds)
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}
