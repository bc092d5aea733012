//! The Compute v2.1 HTTP API: one module per resource. Paths are relative
//! to the compute endpoint root, and [`mount`] nests them under `/compute`.

pub mod aggregates;
pub mod availability_zones;
pub mod diagnostics;
pub mod discovery;
pub mod extensions;
pub mod external_events;
pub mod extra_specs;
pub mod flavor_access;
pub mod flavor_input;
pub mod flavor_view;
pub mod flavors;
pub mod hosts;
pub mod hypervisors;
pub mod images;
pub mod instance_actions;
pub mod keypair_input;
pub mod keypairs;
pub mod limits;
pub mod migrations;
pub mod quota_classes;
pub mod quota_sets;
pub mod server_actions;
pub mod server_filters;
pub mod server_groups;
pub mod server_input;
pub mod server_interfaces;
pub mod server_metadata;
pub mod server_password;
pub mod server_security_groups;
pub mod server_tags;
pub mod server_view;
pub mod servers;
pub mod servers_create;
pub mod services;
pub mod simple_tenant_usage;
pub mod usage_audit;

use std::sync::Arc;

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use axum::Router;
use oxstack_core::microversion::Microversion;
use oxstack_core::{ApiError, ErrorKind, RequestContext, ServiceKind, TokenValidator};

use crate::policy::Caller;
use crate::ComputeService;

/// Shared handle passed to every handler.
pub type ComputeState = Arc<ComputeService>;

/// Builds the `/v2.1` routes: microversion negotiation on each of them,
/// token authentication and Nova's error bodies.
fn v21_router(state: ComputeState) -> Router {
    let document = state.clone();
    Router::new()
        .route(
            "/",
            axum::routing::get(move || discovery::v21_document(document.clone())),
        )
        .merge(flavors::routes())
        .merge(flavor_access::routes())
        .merge(extra_specs::routes())
        .merge(keypairs::routes())
        .merge(limits::routes())
        .merge(quota_sets::routes())
        .merge(quota_classes::routes())
        .merge(availability_zones::routes())
        .merge(servers::routes())
        .merge(server_metadata::routes())
        .merge(server_tags::routes())
        .merge(server_interfaces::routes())
        .merge(instance_actions::routes())
        .merge(hypervisors::routes())
        .merge(services::routes())
        .merge(server_groups::routes())
        .merge(aggregates::routes())
        .merge(server_security_groups::routes())
        .merge(simple_tenant_usage::routes())
        .merge(diagnostics::routes())
        .merge(external_events::routes())
        .merge(server_password::routes())
        .merge(migrations::routes())
        .merge(hosts::routes())
        .merge(usage_audit::routes())
        .merge(extensions::routes())
        .merge(images::routes())
        .fallback(|| async { ApiError::not_found("The resource could not be found.") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                ErrorKind::MethodNotAllowed,
                "The method is not allowed for this resource.",
            )
        })
        .with_state(state)
        .layer(axum::middleware::from_fn(|request, next| {
            oxstack_core::microversion::negotiate(crate::version::RANGE, request, next)
        }))
}

/// Returns the compute API mounted at `/compute`, for the binary to merge
/// into its application. Version documents need no token. The `/v2.1`
/// routes are nested one level deep: with axum 0.8, a fallback two `nest`
/// levels deep was not reached, and unknown paths got an empty 404.
pub fn mount(state: ComputeState, validator: Arc<dyn TokenValidator>) -> Router {
    let v21 = v21_router(state.clone())
        .layer(axum::middleware::from_fn(move |request, next| {
            oxstack_core::context::authenticate(validator.clone(), request, next)
        }))
        .layer(axum::middleware::from_fn(|request, next| {
            oxstack_core::error::render_errors(ServiceKind::Compute, request, next)
        }));
    Router::new()
        .merge(discovery::routes(state))
        .nest("/compute/v2.1", v21)
        .layer(axum::middleware::from_fn(echo_compute_request_id))
}

/// Adds Nova's `X-Compute-Request-Id`, the same id as
/// `x-openstack-request-id`, which older tools read.
async fn echo_compute_request_id(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let id = request
        .extensions()
        .get::<oxstack_core::request_id::RequestId>()
        .map(|id| id.0.clone());
    let mut response = next.run(request).await;
    if let Some(value) = id.and_then(|id| axum::http::HeaderValue::from_str(&id).ok()) {
        response.headers_mut().insert("x-compute-request-id", value);
    }
    response
}

impl FromRequestParts<ComputeState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ComputeState) -> Result<Self, ApiError> {
        let ctx = RequestContext::from_request_parts(parts, state).await?;
        Ok(Caller::new(&state.policy, ctx))
    }
}

/// The negotiated microversion of a `/v2.1` request.
pub struct Version(pub Microversion);

impl<S: Send + Sync> FromRequestParts<S> for Version {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        Ok(Version(
            parts
                .extensions
                .get::<Microversion>()
                .copied()
                .unwrap_or(crate::version::MIN),
        ))
    }
}

/// The query string as ordered pairs, repeated keys kept.
pub type QueryPairs = Query<Vec<(String, String)>>;

/// Checks policy `rule` for a request about no project's resource
/// (hypervisors, services, hosts, extensions): Nova gives those rules an
/// empty target, so only the caller's roles can satisfy them.
pub(crate) fn authorize_without_target(
    state: &ComputeState,
    caller: &Caller,
    rule: &str,
) -> Result<(), ApiError> {
    caller.authorize(&state.policy, rule, serde_json::json!({}))
}

/// Maps a database failure to a logged 500.
pub(crate) fn db_error(error: sqlx::Error) -> ApiError {
    oxstack_store::api_error(error)
}

/// Reads a JSON request body, turning malformed JSON into Nova's 400.
pub(crate) fn parse_body(bytes: &[u8]) -> Result<serde_json::Value, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|error| ApiError::bad_request(format!("Malformed request body: {error}")))
}
