//! The networks the first `oxstack up` creates, as devstack does: the
//! external network `public` (flat, physical network `public`, subnet
//! 172.24.4.0/24 without DHCP), the VXLAN tenant network `private` (subnet
//! 10.0.0.0/24) in the admin project, and the router `router1` with its
//! gateway on `public` and an interface on `private-subnet`.
//!
//! The requests go through the network API in-process, so the networks get
//! the same checks, segments, addresses and default security group as
//! the `openstack` CLI would give them. Each step first looks for what it
//! creates by name, so running it again creates nothing twice.

use std::net::Ipv4Addr;
use std::sync::Arc;

use anyhow::{bail, Context};
use axum::body::Body;
use axum::http::{Method, Request};
use ipnet::Ipv4Net;
use oxstack_core::{ApiError, AuthContext, ErrorKind, TokenValidator};
use oxstack_network::NetworkService;
use serde_json::{json, Value};
use tower::ServiceExt;

pub const PUBLIC_NETWORK: &str = "public";
pub const PUBLIC_SUBNET: &str = "public-subnet";
pub const PRIVATE_NETWORK: &str = "private";
pub const PRIVATE_SUBNET: &str = "private-subnet";
pub const ROUTER: &str = "router1";

/// Accepts one token, made up for this process's own requests, as an admin
/// of the admin project.
struct BootstrapValidator {
    token: String,
    auth: AuthContext,
}

#[async_trait::async_trait]
impl TokenValidator for BootstrapValidator {
    async fn validate(&self, token: &str) -> Result<AuthContext, ApiError> {
        if token == self.token {
            return Ok(self.auth.clone());
        }
        Err(ApiError::new(
            ErrorKind::Unauthenticated,
            "The request you have made requires authentication.",
        ))
    }
}

/// The network API, called in-process as an admin of one project.
pub(crate) struct Api {
    router: axum::Router,
    token: String,
}

impl Api {
    /// Creates a client that acts as an admin of `project_id`, with a random
    /// token that only this value stores.
    pub(crate) fn as_admin(networks: &Arc<NetworkService>, project_id: &str) -> Self {
        let token = format!("bootstrap-{}", rand::random::<u128>());
        let auth = AuthContext {
            token: token.clone(),
            user_name: "oxstack-bootstrap".to_owned(),
            project_id: Some(project_id.to_owned()),
            roles: vec!["admin".to_owned(), "member".to_owned(), "reader".to_owned()],
            ..AuthContext::default()
        };
        let validator = Arc::new(BootstrapValidator {
            token: token.clone(),
            auth,
        });
        Api {
            router: oxstack_network::mount(networks.clone(), validator),
            token,
        }
    }

    /// Sends one request and returns the response body. A status of 400 or
    /// above is an error that contains the body.
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let request = Request::builder()
            .method(method.clone())
            .uri(format!("/networking/v2.0/{path}"))
            .header("x-auth-token", &self.token)
            .header("content-type", "application/json")
            .body(body.map_or_else(Body::empty, |body| Body::from(body.to_string())))?;
        let response = self.router.clone().oneshot(request).await?;
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await?;
        if !status.is_success() {
            bail!(
                "{method} /v2.0/{path} returned {status}: {}",
                String::from_utf8_lossy(&bytes)
            );
        }
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        Ok(serde_json::from_slice(&bytes)?)
    }

    /// Returns the id of the one `collection` item named `name`, if any.
    async fn find(&self, collection: &str, query: &str) -> anyhow::Result<Option<String>> {
        let listed = self
            .call(Method::GET, &format!("{collection}?{query}"), None)
            .await?;
        let items = listed[collection].as_array().cloned().unwrap_or_default();
        Ok(items
            .first()
            .and_then(|item| item["id"].as_str())
            .map(str::to_owned))
    }

    pub(crate) async fn create(
        &self,
        collection: &str,
        resource: &str,
        body: Value,
    ) -> anyhow::Result<String> {
        let created = self
            .call(Method::POST, collection, Some(json!({ resource: body })))
            .await?;
        created[resource]["id"]
            .as_str()
            .map(str::to_owned)
            .context("the create response has no id")
    }
}

/// The resources that [`run`] created and the host must configure.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CreatedNetworks {
    /// The gateway address of `public-subnet` with the subnet's prefix
    /// length (172.24.4.1/24), when this run created the subnet: the address
    /// devstack gives br-ex so the host reaches floating IPs.
    pub public_gateway: Option<Ipv4Net>,
}

/// Creates what is missing of `public`, `private` and `router1`, owned by
/// `admin_project_id`.
pub async fn run(
    networks: &Arc<NetworkService>,
    admin_project_id: &str,
) -> anyhow::Result<CreatedNetworks> {
    let api = Api::as_admin(networks, admin_project_id);
    let mut created = CreatedNetworks::default();

    let public = match api
        .find("networks", &format!("name={PUBLIC_NETWORK}"))
        .await?
    {
        Some(id) => id,
        None => {
            let body = json!({"name": PUBLIC_NETWORK, "router:external": true,
                              "provider:network_type": "flat", "provider:physical_network": PUBLIC_NETWORK});
            api.create("networks", "network", body)
                .await
                .context("cannot create the network public")?
        }
    };
    if api
        .find(
            "subnets",
            &format!("name={PUBLIC_SUBNET}&network_id={public}"),
        )
        .await?
        .is_none()
    {
        let body = json!({"name": PUBLIC_SUBNET, "network_id": public, "ip_version": 4,
                          "cidr": "172.24.4.0/24", "gateway_ip": "172.24.4.1", "enable_dhcp": false});
        let subnet = api
            .call(Method::POST, "subnets", Some(json!({ "subnet": body })))
            .await
            .context("cannot create public-subnet")?;
        created.public_gateway = gateway_with_prefix(&subnet["subnet"]);
    }

    let private = match api
        .find("networks", &format!("name={PRIVATE_NETWORK}"))
        .await?
    {
        Some(id) => id,
        None => api
            .create("networks", "network", json!({"name": PRIVATE_NETWORK}))
            .await
            .context("cannot create the network private")?,
    };
    let private_subnet = match api
        .find(
            "subnets",
            &format!("name={PRIVATE_SUBNET}&network_id={private}"),
        )
        .await?
    {
        Some(id) => id,
        None => {
            let body = json!({"name": PRIVATE_SUBNET, "network_id": private, "ip_version": 4,
                              "cidr": "10.0.0.0/24"});
            api.create("subnets", "subnet", body)
                .await
                .context("cannot create private-subnet")?
        }
    };

    let router = match api.find("routers", &format!("name={ROUTER}")).await? {
        Some(id) => id,
        None => {
            let body = json!({"name": ROUTER, "external_gateway_info": {"network_id": public}});
            api.create("routers", "router", body)
                .await
                .context("cannot create router1")?
        }
    };
    let interface = api
        .find(
            "ports",
            &format!(
                "device_id={router}&network_id={private}&device_owner=network:router_interface"
            ),
        )
        .await?;
    if interface.is_none() {
        api.call(
            Method::PUT,
            &format!("routers/{router}/add_router_interface"),
            Some(json!({"subnet_id": private_subnet})),
        )
        .await
        .context("cannot add private-subnet to router1")?;
    }
    tracing::info!(public_network_id = %public, private_network_id = %private, router_id = %router,
                   "bootstrap networks are in place");
    Ok(created)
}

/// Returns an IPv4 subnet's `gateway_ip` with the prefix length of its
/// `cidr`, or `None` when it has no gateway.
fn gateway_with_prefix(subnet: &Value) -> Option<Ipv4Net> {
    let gateway: Ipv4Addr = subnet["gateway_ip"].as_str()?.parse().ok()?;
    let cidr: Ipv4Net = subnet["cidr"].as_str()?.parse().ok()?;
    Ipv4Net::new(gateway, cidr.prefix_len()).ok()
}
