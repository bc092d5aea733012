//! The one HTTP listener: every service under its path prefix, the root
//! version document, `/metrics`, and the layers every request passes
//! (request id outermost, then metrics).

use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use oxstack_compute::ComputeService;
use oxstack_core::metrics::{self, Metrics};
use oxstack_core::ServiceKind;
use oxstack_core::TokenValidator;
use oxstack_identity::token::LocalValidator;
use oxstack_identity::Identity;
use oxstack_image::ImageService;
use oxstack_network::NetworkService;
use oxstack_placement::PlacementService;

/// The services behind the listener.
pub struct Services {
    pub identity: Arc<Identity>,
    pub images: Arc<ImageService>,
    pub networks: Arc<NetworkService>,
    pub placement: Arc<PlacementService>,
    pub compute: Arc<ComputeService>,
}

/// Builds the application served on the listener.
pub fn app(services: Services, metrics: Metrics) -> Router {
    let Services {
        identity,
        images,
        networks,
        placement,
        compute,
    } = services;
    let public_url = identity.public_url.clone();
    let validator: Arc<dyn TokenValidator> = Arc::new(LocalValidator(identity.clone()));
    let identity_routes =
        oxstack_identity::api::router(identity).layer(axum::middleware::from_fn_with_state(
            (metrics.clone(), ServiceKind::Identity),
            metrics::record,
        ));
    let image_routes = oxstack_image::mount(images, validator.clone()).layer(
        axum::middleware::from_fn_with_state(
            (metrics.clone(), ServiceKind::Image),
            metrics::record,
        ),
    );
    let network_routes = oxstack_network::mount(networks, validator.clone()).layer(
        axum::middleware::from_fn_with_state(
            (metrics.clone(), ServiceKind::Network),
            metrics::record,
        ),
    );
    let compute_routes = oxstack_compute::mount(compute, validator.clone()).layer(
        axum::middleware::from_fn_with_state(
            (metrics.clone(), ServiceKind::Compute),
            metrics::record,
        ),
    );
    let placement_routes =
        oxstack_placement::mount(placement, validator).layer(axum::middleware::from_fn_with_state(
            (metrics.clone(), ServiceKind::Placement),
            metrics::record,
        ));
    let root = Router::new()
        .route("/", get(move || root_versions(public_url.clone())))
        .route("/metrics", get(metrics::serve))
        .with_state(metrics.clone())
        .layer(axum::middleware::from_fn_with_state(
            (metrics, ServiceKind::Root),
            metrics::record,
        ));
    root.merge(image_routes)
        .merge(network_routes)
        .merge(placement_routes)
        .merge(compute_routes)
        .merge(identity_routes)
        .layer(axum::middleware::from_fn(oxstack_core::request_id::assign))
}

async fn root_versions(public_url: String) -> axum::response::Response {
    oxstack_identity::api::discovery::root_versions(&public_url)
}
