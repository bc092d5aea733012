//! The one HTTP listener: every service under its path prefix, the root
//! version document, `/metrics`, and the layers every request passes
//! (request id outermost, then metrics).

use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use oxstack_core::metrics::{self, Metrics};
use oxstack_core::ServiceKind;
use oxstack_identity::Identity;

/// Builds the application served on the listener.
pub fn app(identity: Arc<Identity>, metrics: Metrics) -> Router {
    let public_url = identity.public_url.clone();
    let identity_routes = oxstack_identity::api::router(identity)
        .layer(axum::middleware::from_fn_with_state((metrics.clone(), ServiceKind::Identity), metrics::record));
    let root = Router::new()
        .route("/", get(move || root_versions(public_url.clone())))
        .route("/metrics", get(metrics::serve))
        .with_state(metrics.clone())
        .layer(axum::middleware::from_fn_with_state((metrics, ServiceKind::Root), metrics::record));
    root.merge(identity_routes)
        .layer(axum::middleware::from_fn(oxstack_core::request_id::assign))
}

async fn root_versions(public_url: String) -> axum::response::Response {
    oxstack_identity::api::discovery::root_versions(&public_url)
}

