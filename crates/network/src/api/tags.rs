//! `/v2.0/{collection}/{id}/tags`: the standard-attr-tag API on networks,
//! subnets, ports, security groups, routers and floating IPs. Changing tags is an update of the resource, so it needs the
//! resource's update rule and bumps its revision.
// NOTE: Neutron checks separate rules (`update_networks_tags` and so on);
// here an operator's policy file can only steer tags through the update rules.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use oxstack_core::ApiError;
use serde_json::{json, Value};

use super::body::NeutronBody;
use super::{
    db_error, floatingips, networks, ports, routers, security_groups, subnets, NetworkState,
};
use crate::db;
use crate::model::{
    now, FloatingIpId, Network, NetworkId, Port, PortId, RouterId, SecurityGroup, SecurityGroupId,
    Subnet, SubnetId,
};
use crate::policy::{
    floatingip_target, network_target, port_target, router_target, security_group_target,
    subnet_target, Caller,
};
use crate::NetworkService;

/// The maximum tag length in characters, Neutron's `MAX_TAG_LEN`.
pub const MAX_TAG_LEN: usize = 255;
/// The maximum number of tags on one resource. Neutron sets no limit, but
/// this bound keeps a resource's row and every list response small.
pub const MAX_TAGS: usize = 100;

pub fn routes() -> Router<NetworkState> {
    Router::new()
        .route(
            "/v2.0/{collection}/{id}/tags",
            get(list).put(replace).post(append).delete(clear),
        )
        .route(
            "/v2.0/{collection}/{id}/tags/{tag}",
            put(add).get(check).delete(remove),
        )
}

/// A tagged resource, loaded for a caller who may see it.
enum Tagged {
    Network(Box<Network>),
    Subnet(Box<(Subnet, Network)>),
    Port(Box<(Port, Network)>),
    SecurityGroup(Box<SecurityGroup>),
    Router(Box<crate::model::Router>),
    FloatingIp(Box<crate::model::FloatingIp>),
}

impl Tagged {
    async fn load(
        state: &NetworkService,
        caller: &Caller,
        collection: &str,
        id: &str,
    ) -> Result<Self, ApiError> {
        match collection {
            "networks" => {
                let network = networks::find_visible(state, caller, &NetworkId::new(id)).await?;
                Ok(Tagged::Network(Box::new(network)))
            }
            "subnets" => {
                let (subnet, network) =
                    subnets::find_visible(state, caller, &SubnetId::new(id)).await?;
                Ok(Tagged::Subnet(Box::new((subnet, network))))
            }
            "ports" => {
                let (port, network) = ports::find_visible(state, caller, &PortId::new(id)).await?;
                Ok(Tagged::Port(Box::new((port, network))))
            }
            "security-groups" => {
                let group =
                    security_groups::find_visible(state, caller, &SecurityGroupId::new(id)).await?;
                Ok(Tagged::SecurityGroup(Box::new(group)))
            }
            "routers" => {
                let router = routers::find_visible(state, caller, &RouterId::new(id)).await?;
                Ok(Tagged::Router(Box::new(router)))
            }
            "floatingips" => {
                let fip = floatingips::find_visible(state, caller, &FloatingIpId::new(id)).await?;
                Ok(Tagged::FloatingIp(Box::new(fip)))
            }
            _ => Err(ApiError::not_found("The resource could not be found.")),
        }
    }

    fn tags(&self) -> &Vec<String> {
        match self {
            Tagged::Network(network) => &network.tags,
            Tagged::Subnet(pair) => &pair.0.tags,
            Tagged::Port(pair) => &pair.0.tags,
            Tagged::SecurityGroup(group) => &group.tags,
            Tagged::Router(router) => &router.tags,
            Tagged::FloatingIp(fip) => &fip.tags,
        }
    }

    fn authorize_update(&self, state: &NetworkService, caller: &Caller) -> Result<(), ApiError> {
        match self {
            Tagged::Network(network) => {
                caller.authorize(&state.policy, "update_network", &network_target(network))
            }
            Tagged::Subnet(pair) => caller.authorize(
                &state.policy,
                "update_subnet",
                &subnet_target(&pair.0, &pair.1),
            ),
            Tagged::Port(pair) => {
                caller.authorize(&state.policy, "update_port", &port_target(&pair.0, &pair.1))
            }
            Tagged::SecurityGroup(group) => caller.authorize(
                &state.policy,
                "update_security_group",
                &security_group_target(group),
            ),
            Tagged::Router(router) => {
                caller.authorize(&state.policy, "update_router", &router_target(router))
            }
            Tagged::FloatingIp(fip) => {
                caller.authorize(&state.policy, "update_floatingip", &floatingip_target(fip))
            }
        }
    }

    /// Stores `tags` as the resource's tags, with a new revision.
    async fn save(self, state: &NetworkService, tags: Vec<String>) -> Result<(), ApiError> {
        let (saved, id) = match self {
            Tagged::Network(mut network) => {
                network.tags = tags;
                network.revision_number += 1;
                network.updated_at = now();
                (
                    db::networks::update(state.pool(), &network)
                        .await
                        .map_err(db_error)?,
                    network.id.to_string(),
                )
            }
            Tagged::Subnet(pair) => {
                let (mut subnet, _) = *pair;
                subnet.tags = tags;
                subnet.revision_number += 1;
                subnet.updated_at = now();
                (
                    db::subnets::update(state.pool(), &subnet)
                        .await
                        .map_err(db_error)?,
                    subnet.id.to_string(),
                )
            }
            Tagged::Port(pair) => {
                let (mut port, _) = *pair;
                port.tags = tags;
                port.revision_number += 1;
                port.updated_at = now();
                (
                    db::ports::update(state.pool(), &port)
                        .await
                        .map_err(db_error)?,
                    port.id.to_string(),
                )
            }
            Tagged::SecurityGroup(group) => {
                let mut group = *group;
                group.tags = tags;
                group.revision_number += 1;
                group.updated_at = now();
                (
                    db::security_groups::update_group(state.pool(), &group)
                        .await
                        .map_err(db_error)?,
                    group.id.to_string(),
                )
            }
            Tagged::Router(router) => {
                let mut router = *router;
                router.tags = tags;
                router.revision_number += 1;
                router.updated_at = now();
                (
                    db::routers::update(state.pool(), &router)
                        .await
                        .map_err(db_error)?,
                    router.id.to_string(),
                )
            }
            Tagged::FloatingIp(fip) => {
                let mut fip = *fip;
                fip.tags = tags;
                fip.revision_number += 1;
                fip.updated_at = now();
                (
                    db::floatingips::update(state.pool(), &fip)
                        .await
                        .map_err(db_error)?,
                    fip.id.to_string(),
                )
            }
        };
        if !saved {
            return Err(ApiError::conflict(format!(
                "Resource {id} was changed by another request; retry."
            ))
            .with_type("Conflict"));
        }
        Ok(())
    }
}

fn invalid(message: String) -> ApiError {
    ApiError::bad_request(format!("Invalid input for operation: {message}."))
        .with_type("InvalidInput")
}

fn check_tag(tag: &str) -> Result<(), ApiError> {
    let length = tag.chars().count();
    if length == 0 || length > MAX_TAG_LEN {
        return Err(invalid(format!(
            "'{tag}' must be 1 to {MAX_TAG_LEN} characters long"
        )));
    }
    Ok(())
}

/// Reads the `{"tags": [...]}` body of PUT and POST: distinct strings, as
/// Neutron's `list_of_unique_strings` check requires.
fn tags_from_body(body: &Value) -> Result<Vec<String>, ApiError> {
    let Some(Value::Array(items)) = body.get("tags") else {
        return Err(invalid(
            "Invalid tags body; send {\"tags\": [...]}".to_owned(),
        ));
    };
    let mut tags: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        let Some(tag) = item.as_str() else {
            return Err(invalid(format!("'{item}' is not a valid string")));
        };
        check_tag(tag)?;
        if tags.iter().any(|t| t == tag) {
            return Err(invalid(format!("Duplicate items in the list: '{tag}'")));
        }
        tags.push(tag.to_owned());
    }
    Ok(tags)
}

fn check_count(tags: &[String]) -> Result<(), ApiError> {
    if tags.len() > MAX_TAGS {
        return Err(invalid(format!(
            "{} tags given; a resource may have at most {MAX_TAGS}",
            tags.len()
        )));
    }
    Ok(())
}

fn tag_not_found(tag: &str) -> ApiError {
    ApiError::not_found(format!("Tag {tag} could not be found.")).with_type("TagNotFound")
}

async fn list(
    State(state): State<NetworkState>,
    caller: Caller,
    Path((collection, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let resource = Tagged::load(&state, &caller, &collection, &id).await?;
    Ok(Json(json!({ "tags": resource.tags() })))
}

async fn check(
    State(state): State<NetworkState>,
    caller: Caller,
    Path((collection, id, tag)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let resource = Tagged::load(&state, &caller, &collection, &id).await?;
    if resource.tags().contains(&tag) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(tag_not_found(&tag))
    }
}

/// `PUT …/tags`: replaces every tag.
async fn replace(
    State(state): State<NetworkState>,
    caller: Caller,
    Path((collection, id)): Path<(String, String)>,
    NeutronBody(body): NeutronBody,
) -> Result<Json<Value>, ApiError> {
    let tags = tags_from_body(&body)?;
    check_count(&tags)?;
    let resource = Tagged::load(&state, &caller, &collection, &id).await?;
    resource.authorize_update(&state, &caller)?;
    resource.save(&state, tags.clone()).await?;
    Ok(Json(json!({ "tags": tags })))
}

/// `POST …/tags`: adds tags to those the resource has.
async fn append(
    State(state): State<NetworkState>,
    caller: Caller,
    Path((collection, id)): Path<(String, String)>,
    NeutronBody(body): NeutronBody,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let added = tags_from_body(&body)?;
    let resource = Tagged::load(&state, &caller, &collection, &id).await?;
    resource.authorize_update(&state, &caller)?;
    let mut tags = resource.tags().clone();
    for tag in added {
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    check_count(&tags)?;
    resource.save(&state, tags.clone()).await?;
    Ok((StatusCode::CREATED, Json(json!({ "tags": tags }))))
}

async fn clear(
    State(state): State<NetworkState>,
    caller: Caller,
    Path((collection, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let resource = Tagged::load(&state, &caller, &collection, &id).await?;
    resource.authorize_update(&state, &caller)?;
    resource.save(&state, Vec::new()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT …/tags/{tag}`: adds one tag; adding one the resource has is a no-op.
async fn add(
    State(state): State<NetworkState>,
    caller: Caller,
    Path((collection, id, tag)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    check_tag(&tag)?;
    let resource = Tagged::load(&state, &caller, &collection, &id).await?;
    resource.authorize_update(&state, &caller)?;
    let mut tags = resource.tags().clone();
    if tags.contains(&tag) {
        return Ok(StatusCode::CREATED);
    }
    tags.push(tag);
    check_count(&tags)?;
    resource.save(&state, tags).await?;
    Ok(StatusCode::CREATED)
}

async fn remove(
    State(state): State<NetworkState>,
    caller: Caller,
    Path((collection, id, tag)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let resource = Tagged::load(&state, &caller, &collection, &id).await?;
    resource.authorize_update(&state, &caller)?;
    if !resource.tags().contains(&tag) {
        return Err(tag_not_found(&tag));
    }
    let tags = resource
        .tags()
        .iter()
        .filter(|t| **t != tag)
        .cloned()
        .collect();
    resource.save(&state, tags).await?;
    Ok(StatusCode::NO_CONTENT)
}
