//! The metadata HTTP API that guests reach at `http://169.254.169.254`
//! through the network agent's proxy.
//!
//! The proxy in a DHCP or router namespace adds `X-Forwarded-For` (the
//! guest's fixed address) and `X-Neutron-Network-ID` or
//! `X-Neutron-Router-ID`, as Neutron's metadata proxy does. This API finds
//! the port with that address on that network (or on one of the router's
//! networks), and the port's device is the server whose metadata it
//! returns.
//!
//! It also accepts requests as Neutron's metadata agent sends them to
//! Nova, signed with a shared secret ([`metadata_router_with_secret`]).
//!
//! The proxy's headers are trusted as they are, so the listener must be
//! reachable only by the proxy (bind it to a loopback address), never by
//! guests or users directly.

use std::net::IpAddr;
use std::sync::Arc;

use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::content::{ec2_versions_listing, InstanceMetadata};
use crate::external::PortInfo;
use crate::server::{store, Server};
use crate::ComputeService;

const FORWARDED_FOR: &str = "x-forwarded-for";
const NETWORK_ID: &str = "x-neutron-network-id";
const ROUTER_ID: &str = "x-neutron-router-id";
const INSTANCE_ID: &str = "x-instance-id";
const TENANT_ID: &str = "x-tenant-id";
const SIGNATURE: &str = "x-instance-id-signature";

/// Builds the metadata API's router. It serves `GET` and `HEAD` on every
/// path of Nova's metadata service: `/`, `/openstack`,
/// `/openstack/<version>/…`, `/<ec2 version>/meta-data/…` and
/// `/<ec2 version>/user-data`. Serve it on its own listener with
/// [`serve_metadata`], not under the cloud's public URL: it trusts the
/// proxy's headers. Requests signed with `X-Instance-ID-Signature` are
/// rejected; [`metadata_router_with_secret`] accepts them.
pub fn metadata_router(service: Arc<ComputeService>) -> Router {
    metadata_router_with_secret(service, None)
}

/// Builds the metadata API's router like [`metadata_router`], which also
/// accepts requests as Neutron's metadata agent sends them to Nova. Such a
/// request names the server in `X-Instance-ID` and its project in
/// `X-Tenant-ID`. `X-Instance-ID-Signature` is the hex HMAC-SHA256 of the
/// instance id keyed with `shared_secret`, Nova's
/// `metadata_proxy_shared_secret` (see [`proxy_signature`]).
pub fn metadata_router_with_secret(
    service: Arc<ComputeService>,
    shared_secret: Option<String>,
) -> Router {
    let state = Arc::new(MetadataState {
        service,
        shared_secret,
    });
    Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap| {
        let state = state.clone();
        async move { handle(&state, &method, &uri, &headers).await }
    })
}

/// Serves the metadata API on `listener` until the listener fails.
///
/// ```ignore
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8775").await?;
/// tokio::spawn(oxstack_compute::metadata::serve_metadata(compute.clone(), listener));
/// ```
///
/// 8775 is Nova's metadata port. Bind a loopback address: the API trusts
/// `X-Forwarded-For` and `X-Neutron-*` from any client that connects.
pub async fn serve_metadata(
    service: Arc<ComputeService>,
    listener: tokio::net::TcpListener,
) -> std::io::Result<()> {
    if let Ok(address) = listener.local_addr() {
        tracing::info!(%address, "metadata API listening");
    }
    axum::serve(listener, metadata_router(service)).await
}

/// Returns the value of `X-Instance-ID-Signature` for `instance_id`: the
/// HMAC-SHA256 (RFC 2104) of the id keyed with `shared_secret`, as
/// lowercase hex, as Neutron's metadata agent computes it.
pub fn proxy_signature(shared_secret: &str, instance_id: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(shared_secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(instance_id.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

struct MetadataState {
    service: Arc<ComputeService>,
    /// Key of `X-Instance-ID-Signature`; `None` rejects signed requests.
    shared_secret: Option<String>,
}

/// A request the API cannot serve: the status and a plain-text message.
struct Rejection {
    status: StatusCode,
    message: String,
}

impl Rejection {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Rejection {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        text(self.status, self.message)
    }
}

async fn handle(
    state: &MetadataState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Response {
    if method != Method::GET && method != Method::HEAD {
        let mut response = text(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("The metadata API accepts GET and HEAD, not {method}."),
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }

    let path = uri.path();
    // Nova returns the version list without identifying the instance.
    if path
        .split('/')
        .all(|token| token.is_empty() || token == ".")
    {
        return text(StatusCode::OK, ec2_versions_listing().join("\n"));
    }

    let (server, ports) = match identify(state, headers).await {
        Ok(found) => found,
        Err(rejection) => return rejection.into_response(),
    };
    match InstanceMetadata::new(&server, &ports).lookup(path) {
        Some(item) => {
            let content_type = item.content_type();
            ([(header::CONTENT_TYPE, content_type)], item.into_bytes()).into_response()
        }
        None => {
            tracing::debug!(server_id = %server.id, path, "metadata path not found");
            text(
                StatusCode::NOT_FOUND,
                format!("The metadata path {path} was not found."),
            )
        }
    }
}

/// Finds the server that sent the request and its ports in NIC order.
/// Rejects missing or invalid headers with 400, a wrong signature with
/// 403, an unknown instance with 404, and a failed service with 503.
async fn identify(
    state: &MetadataState,
    headers: &HeaderMap,
) -> Result<(Server, Vec<PortInfo>), Rejection> {
    let service = &state.service;
    let server = if headers.contains_key(INSTANCE_ID) {
        server_by_signed_id(state, headers).await?
    } else {
        server_by_address(service, headers).await?
    };

    let ports = service
        .backends
        .networks
        .ports_for_device(&server.id, &server.project_id)
        .await
        .map_err(|error| unavailable("the network service", &error.to_string()))?;
    let ports = in_nic_order(&server, ports);
    Ok((server, ports))
}

/// Finds the server with the port that has the `X-Forwarded-For` address
/// on the network the proxy names.
async fn server_by_address(
    service: &ComputeService,
    headers: &HeaderMap,
) -> Result<Server, Rejection> {
    let address = forwarded_address(headers)?;
    let networks = networks_to_search(service, headers).await?;

    let mut found = None;
    for network_id in &networks {
        let port = service
            .backends
            .networks
            .port_by_ip(network_id, &address)
            .await
            .map_err(|error| unavailable("the network service", &error.to_string()))?;
        if let Some(port) = port {
            found = Some(port);
            break;
        }
    }
    let not_found = || {
        tracing::info!(ip = %address, networks = ?networks, "metadata request from an address no instance has");
        Rejection::new(
            StatusCode::NOT_FOUND,
            format!(
                "No instance has the address {address} on network {}.",
                networks.join(", ")
            ),
        )
    };
    let Some(port) = found.filter(|port| !port.device_id.is_empty()) else {
        return Err(not_found());
    };

    let server = store::get(service.pool(), &port.device_id)
        .await
        .map_err(|error| unavailable("the database", &error.to_string()))?;
    match server {
        Some(server) => Ok(server),
        None => {
            tracing::info!(port_id = %port.id, device_id = %port.device_id, "metadata request from a port whose device_id matches no server");
            Err(not_found())
        }
    }
}

/// Finds the server named by `X-Instance-ID` after checking its signature
/// and that `X-Tenant-ID` is its project, as Nova does for requests from
/// Neutron's metadata agent.
async fn server_by_signed_id(
    state: &MetadataState,
    headers: &HeaderMap,
) -> Result<Server, Rejection> {
    let instance_id = header_text(headers, INSTANCE_ID).unwrap_or_default();
    let Some(tenant_id) = header_text(headers, TENANT_ID) else {
        return Err(Rejection::new(
            StatusCode::BAD_REQUEST,
            "X-Tenant-ID header is missing from request.",
        ));
    };
    let Some(signature) = header_text(headers, SIGNATURE) else {
        return Err(Rejection::new(
            StatusCode::BAD_REQUEST,
            "X-Instance-ID-Signature header is missing from request.",
        ));
    };
    let Some(secret) = &state.shared_secret else {
        tracing::warn!(instance_id = %instance_id, "signed metadata request rejected: no proxy shared secret is configured");
        return Err(Rejection::new(
            StatusCode::FORBIDDEN,
            "Signed metadata requests are not accepted: this metadata API has no proxy shared secret. Send X-Forwarded-For and X-Neutron-Network-ID instead.",
        ));
    };
    if !equal_in_constant_time(
        proxy_signature(secret, &instance_id).as_bytes(),
        signature.as_bytes(),
    ) {
        tracing::warn!(instance_id = %instance_id, "metadata request with an invalid X-Instance-ID-Signature");
        return Err(Rejection::new(
            StatusCode::FORBIDDEN,
            "Invalid proxy request signature.",
        ));
    }

    let server = store::get(state.service.pool(), &instance_id)
        .await
        .map_err(|error| unavailable("the database", &error.to_string()))?;
    match server {
        Some(server) if server.project_id == tenant_id => Ok(server),
        Some(_) => {
            tracing::warn!(instance_id = %instance_id, tenant_id = %tenant_id, "X-Tenant-ID does not match the instance's project");
            Err(Rejection::new(
                StatusCode::NOT_FOUND,
                format!("Instance {instance_id} was not found."),
            ))
        }
        None => {
            tracing::info!(instance_id = %instance_id, "signed metadata request for an instance that does not exist");
            Err(Rejection::new(
                StatusCode::NOT_FOUND,
                format!("Instance {instance_id} was not found."),
            ))
        }
    }
}

/// Compares two byte strings in time that depends only on their lengths,
/// so a wrong signature reveals nothing about the right one.
fn equal_in_constant_time(left: &[u8], right: &[u8]) -> bool {
    left.len() == right.len()
        && left
            .iter()
            .zip(right)
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    let value = headers.get(name)?.to_str().ok()?.trim();
    (!value.is_empty()).then(|| value.to_owned())
}

/// Returns the first address in `X-Forwarded-For`, because each proxy on
/// the way may append its own.
fn forwarded_address(headers: &HeaderMap) -> Result<String, Rejection> {
    let Some(value) = headers.get(FORWARDED_FOR) else {
        return Err(Rejection::new(
            StatusCode::BAD_REQUEST,
            "X-Forwarded-For header is missing from request; the metadata proxy must send the instance's fixed address in it.",
        ));
    };
    let first = value
        .to_str()
        .ok()
        .and_then(|v| v.split(',').next())
        .map(str::trim)
        .unwrap_or_default();
    match first.parse::<IpAddr>() {
        Ok(address) => Ok(address.to_string()),
        Err(_) => Err(Rejection::new(
            StatusCode::BAD_REQUEST,
            format!("X-Forwarded-For header {value:?} is not an IP address."),
        )),
    }
}

/// Returns the network id in `X-Neutron-Network-ID`, or else the ids of the
/// networks of the router in `X-Neutron-Router-ID`.
async fn networks_to_search(
    service: &ComputeService,
    headers: &HeaderMap,
) -> Result<Vec<String>, Rejection> {
    if let Some(network_id) = header_text(headers, NETWORK_ID) {
        return Ok(vec![network_id]);
    }
    let Some(router_id) = header_text(headers, ROUTER_ID) else {
        return Err(Rejection::new(
            StatusCode::BAD_REQUEST,
            "X-Neutron-Network-ID or X-Neutron-Router-ID header is missing from request; the metadata proxy must name the network or router it serves.",
        ));
    };
    let networks = service
        .backends
        .networks
        .router_network_ids(&router_id)
        .await
        .map_err(|error| unavailable("the network service", &error.to_string()))?;
    if networks.is_empty() {
        tracing::info!(router_id = %router_id, "metadata request through a router with no interfaces");
        return Err(Rejection::new(
            StatusCode::NOT_FOUND,
            format!("Router {router_id} has no interface on any network."),
        ));
    }
    Ok(networks)
}

/// Orders `ports` as the server lists them; ports it does not list (added
/// behind its back) follow in their given order.
fn in_nic_order(server: &Server, mut ports: Vec<PortInfo>) -> Vec<PortInfo> {
    ports.sort_by_key(|port| {
        server
            .ports
            .iter()
            .position(|id| *id == port.id)
            .unwrap_or(usize::MAX)
    });
    ports
}

fn unavailable(what: &str, error: &str) -> Rejection {
    tracing::error!(error, "metadata request failed: {what} returned an error");
    Rejection::new(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("The metadata API could not reach {what}; try again later."),
    )
}

fn text(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=UTF-8")],
        body,
    )
        .into_response()
}
