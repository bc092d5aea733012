//! `/v2.0/extensions`: the API extensions this service honours. Clients
//! probe them (OSC requests `external-gateway-multihoming` before setting a
//! router gateway), so only what is implemented is listed.

use axum::extract::Path;
use axum::routing::get;
use axum::{Json, Router};
use oxstack_core::{ApiError, RequestContext};
use serde_json::{json, Value};

use super::NetworkState;

/// One extension: alias, name, description, and the date Neutron gives as
/// its `updated`.
struct Extension {
    alias: &'static str,
    name: &'static str,
    description: &'static str,
    updated: &'static str,
}

const EXTENSIONS: &[Extension] = &[
    Extension {
        alias: "agent",
        name: "agent",
        description: "The agent management extension: lists the network agent of each host.",
        updated: "2013-02-03T10:00:00-00:00",
    },
    Extension {
        alias: "quotas",
        name: "Quota management support",
        description: "Expose functions for quotas management per project.",
        updated: "2012-07-29T10:00:00-00:00",
    },
    Extension {
        alias: "quota_details",
        name: "Quota details management support",
        description: "Expose functions for quotas usage statistics per project.",
        updated: "2017-02-10T10:00:00-00:00",
    },
    Extension {
        alias: "router",
        name: "Neutron L3 Router",
        description: "Router abstraction for layer 3 forwarding between layer 2 Neutron networks \
                      and access to external networks via a NAT gateway.",
        updated: "2012-07-20T10:00:00-00:00",
    },
    Extension {
        alias: "ext-gw-mode",
        name: "Neutron L3 Configurable external gateway mode",
        description: "Extension of the router abstraction for specifying whether SNAT should \
                      occur on the external gateway.",
        updated: "2013-03-28T10:00:00-00:00",
    },
    Extension {
        alias: "external-net",
        name: "Neutron external network",
        description: "Adds the router:external attribute to networks.",
        updated: "2013-01-14T10:00:00-00:00",
    },
    Extension {
        alias: "subnet-external-network",
        name: "Subnet belongs to an external network",
        description: "Shows the router:external attribute of their network on subnets; \
                      subnets of external networks are visible to every project.",
        updated: "2024-02-05T18:00:00-00:00",
    },
    Extension {
        alias: "provider",
        name: "Provider Network",
        description:
            "Exposes the network type, physical network and segmentation id of networks to admins.",
        updated: "2012-09-07T10:00:00-00:00",
    },
    Extension {
        alias: "net-mtu",
        name: "Network MTU",
        description: "Provides the MTU attribute of networks.",
        updated: "2015-03-25T10:00:00-00:00",
    },
    Extension {
        alias: "net-mtu-writable",
        name: "Network MTU (writable)",
        description: "Lets the MTU of a network be set on create and update.",
        updated: "2017-07-12T00:00:00-00:00",
    },
    Extension {
        alias: "standard-attr-description",
        name: "standard-attr-description",
        description: "Adds a description field to every resource.",
        updated: "2016-02-10T10:00:00-00:00",
    },
    Extension {
        alias: "standard-attr-revisions",
        name: "Resource revision numbers",
        description: "Adds a revision_number that increases on every change of a resource.",
        updated: "2016-04-11T10:00:00-00:00",
    },
    Extension {
        alias: "standard-attr-tag",
        name: "Tag support for resources with standard attribute",
        description: "Lets tags be set on networks, subnets, ports and security groups through /{collection}/{id}/tags.",
        updated: "2017-01-01T00:00:00-00:00",
    },
    Extension {
        alias: "standard-attr-timestamp",
        name: "Resource timestamps",
        description: "Adds created_at and updated_at fields to every resource.",
        updated: "2016-09-12T10:00:00-00:00",
    },
    Extension {
        alias: "project-id",
        name: "project_id field enabled",
        description: "Every resource carries project_id beside tenant_id.",
        updated: "2016-09-09T09:09:09-09:09",
    },
    Extension {
        alias: "security-group",
        name: "security-group",
        description: "The security groups extension.",
        updated: "2012-10-05T10:00:00-00:00",
    },
    Extension {
        alias: "port-security",
        name: "Port Security",
        description: "Provides port security: the port_security_enabled attribute of networks and ports.",
        updated: "2012-07-23T10:00:00-00:00",
    },
    Extension {
        alias: "allowed-address-pairs",
        name: "Allowed Address Pairs",
        description: "Provides allowed address pairs: extra addresses a port may send from.",
        updated: "2013-07-23T10:00:00-00:00",
    },
    Extension {
        alias: "binding",
        name: "Port Binding",
        description: "Exposes the binding:* attributes of ports; only admins see where a port is bound.",
        updated: "2014-02-03T10:00:00-00:00",
    },
    Extension {
        alias: "stateful-security-group",
        name: "Stateful security group",
        description: "Lets a security group be stateful or stateless.",
        updated: "2019-11-26T09:00:00-00:00",
    },
    Extension {
        alias: "pagination",
        name: "Pagination support",
        description: "Lists accept limit and marker and return next and previous links.",
        updated: "2016-06-12T00:00:00-00:00",
    },
    Extension {
        alias: "sorting",
        name: "Sorting support",
        description: "Lists accept sort_key and sort_dir.",
        updated: "2016-06-12T00:00:00-00:00",
    },
];

pub fn routes() -> Router<NetworkState> {
    Router::new()
        .route("/v2.0/extensions", get(list))
        .route("/v2.0/extensions/{alias}", get(show))
}

fn render(extension: &Extension) -> Value {
    json!({
        "alias": extension.alias,
        "name": extension.name,
        "description": extension.description,
        "updated": extension.updated,
        "links": [],
    })
}

/// Returns whether an extension with `alias` is served.
pub fn is_supported(alias: &str) -> bool {
    EXTENSIONS.iter().any(|extension| extension.alias == alias)
}

async fn list(_ctx: RequestContext) -> Json<Value> {
    let extensions: Vec<Value> = EXTENSIONS.iter().map(render).collect();
    Json(json!({ "extensions": extensions }))
}

async fn show(_ctx: RequestContext, Path(alias): Path<String>) -> Result<Json<Value>, ApiError> {
    let extension = EXTENSIONS
        .iter()
        .find(|extension| extension.alias == alias)
        .ok_or_else(|| {
            ApiError::not_found(format!("Extension with alias {alias} does not exist"))
                .with_type("HTTPNotFound")
        })?;
    Ok(Json(json!({ "extension": render(extension) })))
}
