//! Prometheus metrics: request counts, latency histograms and errors per
//! service, route and status, served as text on `/metrics`.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::service::ServiceKind;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    service: String,
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LatencyLabels {
    service: String,
    method: String,
    route: String,
}

/// The metrics of one running API. Cloning shares the same counters.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
    requests: Family<RouteLabels, Counter>,
    errors: Family<RouteLabels, Counter>,
    latency: Family<LatencyLabels, Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("oxstack");
        let requests = Family::<RouteLabels, Counter>::default();
        let errors = Family::<RouteLabels, Counter>::default();
        let latency = Family::<LatencyLabels, Histogram>::new_with_constructor(|| {
            // 0.5 ms to ~16 s: API calls are fast; uploads are not.
            Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
                0.0005, 2.0, 16,
            ))
        });
        registry.register("http_requests", "HTTP requests served", requests.clone());
        registry.register(
            "http_request_errors",
            "HTTP requests answered with a 4xx or 5xx status",
            errors.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time from request to response headers",
            latency.clone(),
        );
        Metrics {
            registry: Arc::new(Mutex::new(registry)),
            requests,
            errors,
            latency,
        }
    }

    fn observe(&self, service: ServiceKind, method: &str, route: &str, status: u16, secs: f64) {
        let labels = RouteLabels {
            service: service.as_str().to_owned(),
            method: method.to_owned(),
            route: route.to_owned(),
            status,
        };
        self.requests.get_or_create(&labels).inc();
        if status >= 400 {
            self.errors.get_or_create(&labels).inc();
        }
        let latency = LatencyLabels {
            service: labels.service,
            method: labels.method,
            route: labels.route,
        };
        self.latency.get_or_create(&latency).observe(secs);
    }

    /// Renders every metric in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut text = String::new();
        let registry = self
            .registry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &registry);
        text
    }
}

/// Middleware recording one request of `service`. The route label is the
/// matched route template (`/v3/projects/{project_id}`), never the raw path,
/// so ids do not explode the label set.
pub async fn record(
    State((metrics, service)): State<(Metrics, ServiceKind)>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let response = next.run(request).await;
    let status = response.status().as_u16();
    metrics.observe(
        service,
        &method,
        &route,
        status,
        started.elapsed().as_secs_f64(),
    );
    response
}

/// Handler for `GET /metrics`.
pub async fn serve(State(metrics): State<Metrics>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.render(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observed_request_appears_in_text() {
        let metrics = Metrics::new();
        metrics.observe(ServiceKind::Identity, "POST", "/v3/auth/tokens", 201, 0.002);
        metrics.observe(ServiceKind::Identity, "POST", "/v3/auth/tokens", 401, 0.001);
        let text = metrics.render();
        assert!(text.contains("oxstack_http_requests_total{service=\"identity\",method=\"POST\",route=\"/v3/auth/tokens\",status=\"201\"} 1"), "{text}");
        assert!(text.contains("oxstack_http_request_errors_total{service=\"identity\",method=\"POST\",route=\"/v3/auth/tokens\",status=\"401\"} 1"), "{text}");
        assert!(text.contains("oxstack_http_request_duration_seconds_count{service=\"identity\",method=\"POST\",route=\"/v3/auth/tokens\"} 2"), "{text}");
    }
}
