//! The Networking v2.0 HTTP API: one module per resource. Paths are
//! relative to the network endpoint root; the binary nests this router
//! under `/networking`.

pub mod agents;
pub mod body;
pub mod bulk;
pub mod discovery;
pub mod extensions;
pub mod floatingip_association;
pub mod floatingips;
pub mod networks;
pub mod port_addresses;
pub mod port_input;
pub mod port_rules;
pub mod port_update;
pub mod ports;
pub mod query;
pub mod quotas;
pub mod router_gateway;
pub mod router_interfaces;
pub mod routers;
pub mod security_group_rules;
pub mod security_groups;
pub mod service_ports;
pub mod sg_rule_input;
pub mod subnet_input;
pub mod subnets;
pub mod tags;

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::Router;
use oxstack_core::{ApiError, RequestContext, ServiceKind, TokenValidator};

use crate::policy::Caller;
use crate::NetworkService;

/// Shared handle passed to every handler.
pub type NetworkState = Arc<NetworkService>;

/// Builds the network routes with token authentication and Neutron's error
/// bodies (`{"NeutronError": {"type", "message", "detail"}}`).
pub fn router(state: NetworkState, validator: Arc<dyn TokenValidator>) -> Router {
    let notifier = state.clone();
    Router::new()
        .merge(discovery::routes())
        .merge(extensions::routes())
        .merge(networks::routes())
        .merge(subnets::routes())
        .merge(ports::routes())
        .merge(security_groups::routes())
        .merge(security_group_rules::routes())
        .merge(routers::routes())
        .merge(floatingips::routes())
        .merge(quotas::routes())
        .merge(agents::routes())
        .merge(tags::routes())
        .fallback(|| async { ApiError::not_found("The resource could not be found.") })
        .with_state(state)
        .layer(axum::middleware::from_fn(move |request, next| {
            notify_after_write(notifier.clone(), request, next)
        }))
        .layer(axum::middleware::from_fn(move |request, next| {
            oxstack_core::context::authenticate(validator.clone(), request, next)
        }))
        .layer(axum::middleware::from_fn(|request, next| {
            oxstack_core::error::render_errors(ServiceKind::Network, request, next)
        }))
}

/// Returns the network API mounted at `/networking`, for the binary to
/// merge into its application. It adds `/networking/` beside
/// `nest("/networking", …)`, because axum 0.8's `nest` does not match the
/// trailing slash.
pub fn mount(state: NetworkState, validator: Arc<dyn TokenValidator>) -> Router {
    let public_url = state.public_url.clone();
    Router::new()
        .route(
            "/networking/",
            axum::routing::get(move || discovery::versions(public_url.clone())),
        )
        .nest("/networking", router(state, validator))
}

impl FromRequestParts<NetworkState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &NetworkState) -> Result<Self, ApiError> {
        let ctx = RequestContext::from_request_parts(parts, state).await?;
        Ok(Caller::new(&state.policy, &ctx))
    }
}

/// Tells the network agents after every successful write request, so they
/// reconcile at once instead of at their next periodic check.
async fn notify_after_write(
    state: NetworkState,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let method = request.method().clone();
    let response = next.run(request).await;
    let is_write = !matches!(method, axum::http::Method::GET | axum::http::Method::HEAD);
    if is_write && response.status().is_success() {
        state.notify_change();
    }
    response
}

/// Maps a database failure to a logged 500.
pub(crate) fn db_error(error: sqlx::Error) -> ApiError {
    oxstack_store::api_error(error)
}
