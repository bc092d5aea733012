//! `/v2.0/networks`.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use oxstack_core::time::{from_unix, iso8601};
use oxstack_core::{ApiError, ErrorKind};
use serde_json::{json, Map, Value};

use super::body::{self, NeutronBody};
use super::query::{select_fields, ListQuery, QueryPairs};
use super::{db_error, security_groups, NetworkState};
use crate::db;
use crate::model::{
    now, Network, NetworkId, NetworkType, Port, Segment, SubnetId, FLOATINGIP_OWNER, ROUTER_GATEWAY,
};
use crate::policy::{network_target, Caller};
use crate::quota;
use crate::segments::{self, ProviderRequest, SegmentPlan};
use crate::NetworkService;

const PROVIDER_FIELDS: &[&str] = &[
    "provider:network_type",
    "provider:physical_network",
    "provider:segmentation_id",
];
const CREATE_ATTRIBUTES: &[&str] = &[
    "name",
    "description",
    "admin_state_up",
    "shared",
    "router:external",
    "mtu",
    "port_security_enabled",
    "availability_zone_hints",
    "is_default",
    "project_id",
    "tenant_id",
    "provider:network_type",
    "provider:physical_network",
    "provider:segmentation_id",
];
const UPDATE_ATTRIBUTES: &[&str] = &[
    "name",
    "description",
    "admin_state_up",
    "shared",
    "router:external",
    "mtu",
    "port_security_enabled",
    "is_default",
    "provider:network_type",
    "provider:physical_network",
    "provider:segmentation_id",
    "id",
    "project_id",
    "tenant_id",
    "status",
    "subnets",
    "availability_zone_hints",
    "created_at",
    "updated_at",
    "revision_number",
];
const READ_ONLY: &[&str] = &[
    "id",
    "project_id",
    "tenant_id",
    "status",
    "subnets",
    "availability_zone_hints",
    "created_at",
    "updated_at",
    "revision_number",
];
pub const SORTABLE: &[&str] = &[
    "id",
    "name",
    "status",
    "admin_state_up",
    "shared",
    "router:external",
    "mtu",
    "project_id",
    "tenant_id",
    "created_at",
    "updated_at",
    "revision_number",
    "description",
];
/// Neutron's limit on names and descriptions of standard resources.
pub const MAX_NAME_LEN: usize = 255;

pub fn routes() -> Router<NetworkState> {
    Router::new()
        .route("/v2.0/networks", get(list).post(create))
        .route(
            "/v2.0/networks/{network_id}",
            get(show).put(update).delete(remove),
        )
}

/// Renders `network` for `caller`, without the provider attributes unless
/// policy shows them.
pub fn render(
    state: &NetworkService,
    caller: &Caller,
    network: &Network,
    subnet_ids: Vec<SubnetId>,
) -> Value {
    let mut body = json!({
        "id": network.id,
        "name": network.name,
        "tenant_id": network.project_id,
        "project_id": network.project_id,
        "description": network.description,
        "admin_state_up": network.admin_state_up,
        "status": "ACTIVE",
        "subnets": subnet_ids,
        "shared": network.shared,
        "router:external": network.external,
        "mtu": network.mtu,
        "provider:network_type": network.segment.network_type.as_str(),
        "provider:physical_network": network.segment.physical_network,
        "provider:segmentation_id": network.segment.segmentation_id,
        "port_security_enabled": network.port_security_enabled,
        "availability_zone_hints": network.availability_zone_hints,
        "availability_zones": [],
        "ipv4_address_scope": null,
        "ipv6_address_scope": null,
        "is_default": network.is_default,
        "l2_adjacency": true,
        "tags": network.tags,
        "created_at": iso8601(from_unix(network.created_at)),
        "updated_at": iso8601(from_unix(network.updated_at)),
        "revision_number": network.revision_number,
    });
    let target = network_target(network);
    if let Value::Object(object) = &mut body {
        for field in PROVIDER_FIELDS {
            if !caller.allows(&state.policy, &format!("get_network:{field}"), &target) {
                object.remove(*field);
            }
        }
    }
    body
}

pub fn not_found(id: &NetworkId) -> ApiError {
    ApiError::not_found(format!("Network {id} could not be found.")).with_type("NetworkNotFound")
}

/// Loads a network the caller may see. Any other is `NetworkNotFound`, so
/// other projects' networks stay invisible.
pub async fn find_visible(
    state: &NetworkService,
    caller: &Caller,
    id: &NetworkId,
) -> Result<Network, ApiError> {
    let network = db::networks::get(state.pool(), id)
        .await
        .map_err(db_error)?
        .ok_or_else(|| not_found(id))?;
    if !caller.allows(&state.policy, "get_network", &network_target(&network)) {
        return Err(not_found(id));
    }
    Ok(network)
}

async fn subnet_ids(
    state: &NetworkService,
    network_id: &NetworkId,
) -> Result<Vec<SubnetId>, ApiError> {
    let subnets = db::subnets::list_for_network(state.pool(), network_id)
        .await
        .map_err(db_error)?;
    Ok(subnets.into_iter().map(|subnet| subnet.id).collect())
}

async fn list(
    State(state): State<NetworkState>,
    caller: Caller,
    QueryPairs(pairs): QueryPairs,
) -> Result<Json<Value>, ApiError> {
    let query = ListQuery::parse(pairs, SORTABLE)?;
    security_groups::ensure_caller_default(&state, &caller).await?;
    let networks = db::networks::list(state.pool()).await.map_err(db_error)?;
    let mut subnets_by_network: HashMap<NetworkId, Vec<SubnetId>> = HashMap::new();
    for subnet in db::subnets::list(state.pool()).await.map_err(db_error)? {
        subnets_by_network
            .entry(subnet.network_id)
            .or_default()
            .push(subnet.id);
    }
    let items: Vec<Value> = networks
        .iter()
        .filter(|network| caller.allows(&state.policy, "get_network", &network_target(network)))
        .map(|network| {
            let subnet_ids = subnets_by_network.remove(&network.id).unwrap_or_default();
            render(&state, &caller, network, subnet_ids)
        })
        .collect();
    Ok(Json(query.respond(
        "networks",
        &state.v2_url("networks"),
        items,
    )?))
}

async fn show(
    State(state): State<NetworkState>,
    caller: Caller,
    Path(id): Path<NetworkId>,
    QueryPairs(pairs): QueryPairs,
) -> Result<Json<Value>, ApiError> {
    let network = find_visible(&state, &caller, &id).await?;
    let subnet_ids = subnet_ids(&state, &id).await?;
    let fields: Vec<String> = pairs
        .into_iter()
        .filter(|(k, _)| k == "fields")
        .map(|(_, v)| v)
        .collect();
    let body = select_fields(render(&state, &caller, &network, subnet_ids), &fields);
    Ok(Json(json!({ "network": body })))
}

fn provider_request(object: &Map<String, Value>) -> Result<ProviderRequest, ApiError> {
    Ok(ProviderRequest {
        network_type: body::string(object, "provider:network_type", 255)?,
        physical_network: body::string(object, "provider:physical_network", 64)?,
        segmentation_id: body::integer(object, "provider:segmentation_id")?,
    })
}

// Checks the attribute rules as Neutron does. A create checks the fields set
// to other than their default, and an update every guarded field it names.
fn authorize_attributes(
    state: &NetworkService,
    caller: &Caller,
    action: &str,
    object: &Map<String, Value>,
    target: &Value,
) -> Result<(), ApiError> {
    let is_update = action.starts_with("update_");
    for field in ["shared", "router:external", "is_default"] {
        let value = body::boolean(object, field)?;
        if value == Some(true) || (is_update && value.is_some()) {
            caller.authorize(&state.policy, &format!("{action}:{field}"), target)?;
        }
    }
    for field in PROVIDER_FIELDS {
        if object.get(*field).is_some_and(|value| !value.is_null()) {
            caller.authorize(&state.policy, &format!("{action}:{field}"), target)?;
        }
    }
    Ok(())
}

async fn create(
    State(state): State<NetworkState>,
    caller: Caller,
    NeutronBody(request): NeutronBody,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (state, caller) = (&state, &caller);
    super::bulk::create(
        request,
        "network",
        "networks",
        move |item| create_single(state, caller, item),
        move |id| remove_single(state, caller, NetworkId::new(id)),
    )
    .await
}

async fn create_single(
    state: &NetworkState,
    caller: &Caller,
    request: Value,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let object = body::resource_object(request, "network", CREATE_ATTRIBUTES)?;
    let project_id = body::owner_project(caller, &object)?;
    let target = json!({"project_id": project_id, "tenant_id": project_id});
    caller.authorize(&state.policy, "create_network", &target)?;
    authorize_attributes(state, caller, "create_network", &object, &target)?;

    let plan = segments::plan_segment(&state.config, &provider_request(&object)?)?;
    let network_type = match &plan {
        SegmentPlan::Fixed(segment) => segment.network_type,
        SegmentPlan::TenantVxlan => NetworkType::Vxlan,
    };
    let mtu = match body::integer(&object, "mtu")? {
        Some(mtu) => {
            segments::check_mtu(&state.config, network_type, mtu)?;
            mtu
        }
        None => segments::max_mtu(&state.config, network_type),
    };
    let created = now();
    let mut network = Network {
        id: NetworkId::generate(),
        project_id,
        name: body::string(&object, "name", MAX_NAME_LEN)?.unwrap_or_default(),
        description: body::string(&object, "description", MAX_NAME_LEN)?.unwrap_or_default(),
        admin_state_up: body::boolean(&object, "admin_state_up")?.unwrap_or(true),
        shared: body::boolean(&object, "shared")?.unwrap_or(false),
        external: body::boolean(&object, "router:external")?.unwrap_or(false),
        mtu,
        segment: Segment {
            network_type,
            physical_network: None,
            segmentation_id: None,
        },
        port_security_enabled: body::boolean(&object, "port_security_enabled")?.unwrap_or(true),
        is_default: body::boolean(&object, "is_default")?.unwrap_or(false),
        availability_zone_hints: body::string_list(&object, "availability_zone_hints")?
            .unwrap_or_default(),
        tags: Vec::new(),
        revision_number: 1,
        created_at: created,
        updated_at: created,
    };
    insert_with_segment(state, &mut network, &plan).await?;
    security_groups::ensure_default_group(state, &network.project_id).await?;
    tracing::info!(network_id = %network.id, project_id = %network.project_id,
                   segment = %network.segment.unique_key(), "created network");
    let body = render(state, caller, &network, Vec::new());
    Ok((StatusCode::CREATED, Json(json!({ "network": body }))))
}

/// Inserts `network` with the planned segment, within its project's
/// network quota. A tenant VNI is the lowest
/// free one. When a concurrent create takes it first, the unique key rejects
/// the row and the choice is made again.
async fn insert_with_segment(
    state: &NetworkService,
    network: &mut Network,
    plan: &SegmentPlan,
) -> Result<(), ApiError> {
    const ATTEMPTS: usize = 8;
    for _ in 0..ATTEMPTS {
        network.segment = match plan {
            SegmentPlan::Fixed(segment) => segment.clone(),
            SegmentPlan::TenantVxlan => {
                let used = db::networks::segmentation_ids(state.pool(), NetworkType::Vxlan)
                    .await
                    .map_err(db_error)?;
                let vni = segments::lowest_free_vni(&state.config, &used)?;
                Segment {
                    network_type: NetworkType::Vxlan,
                    physical_network: None,
                    segmentation_id: Some(vni),
                }
            }
        };
        let mut tx = state.pool().begin().await.map_err(db_error)?;
        quota::check(&mut tx, &network.project_id, quota::Resource::Network, 1).await?;
        let inserted = match db::networks::insert(&mut *tx, network).await {
            Ok(()) => tx.commit().await,
            Err(error) => Err(error),
        };
        match inserted {
            Ok(()) => return Ok(()),
            Err(error) if oxstack_store::is_unique_violation(&error) => {
                if let SegmentPlan::Fixed(segment) = plan {
                    return Err(segments::segment_in_use(segment));
                }
            }
            Err(error) => return Err(db_error(error)),
        }
    }
    Err(ApiError::new(
        ErrorKind::Unavailable,
        "Unable to create the network: concurrent creates kept taking the chosen VXLAN id; retry.",
    )
    .with_type("NoNetworkAvailable"))
}

async fn update(
    State(state): State<NetworkState>,
    caller: Caller,
    Path(id): Path<NetworkId>,
    NeutronBody(request): NeutronBody,
) -> Result<Json<Value>, ApiError> {
    let object = body::resource_object(request, "network", UPDATE_ATTRIBUTES)?;
    body::reject_read_only(&object, READ_ONLY)?;
    let mut network = find_visible(&state, &caller, &id).await?;
    let target = network_target(&network);
    caller.authorize(&state.policy, "update_network", &target)?;
    authorize_attributes(&state, &caller, "update_network", &object, &target)?;
    check_provider_unchanged(&network.segment, &provider_request(&object)?)?;

    if let Some(name) = body::string(&object, "name", MAX_NAME_LEN)? {
        network.name = name;
    }
    if let Some(description) = body::string(&object, "description", MAX_NAME_LEN)? {
        network.description = description;
    }
    if let Some(mtu) = body::integer(&object, "mtu")? {
        segments::check_mtu(&state.config, network.segment.network_type, mtu)?;
        network.mtu = mtu;
    }
    check_flags_not_in_use(&state, &network, &object).await?;
    let flags = [
        ("admin_state_up", &mut network.admin_state_up),
        ("shared", &mut network.shared),
        ("router:external", &mut network.external),
        ("port_security_enabled", &mut network.port_security_enabled),
        ("is_default", &mut network.is_default),
    ];
    for (field, slot) in flags {
        if let Some(value) = body::boolean(&object, field)? {
            *slot = value;
        }
    }
    network.revision_number += 1;
    network.updated_at = now();
    if !db::networks::update(state.pool(), &network)
        .await
        .map_err(db_error)?
    {
        return Err(ApiError::conflict(format!(
            "Network {id} was changed by another request; retry the update."
        ))
        .with_type("Conflict"));
    }
    let subnet_ids = subnet_ids(&state, &id).await?;
    Ok(Json(
        json!({ "network": render(&state, &caller, &network, subnet_ids) }),
    ))
}

/// Refuses, as Neutron does, to make a network non-external while router
/// gateways or floating IPs use it, or private while other projects have
/// ports on it: either would strand resources their owners can no longer
/// see or reach.
async fn check_flags_not_in_use(
    state: &NetworkService,
    network: &Network,
    object: &Map<String, Value>,
) -> Result<(), ApiError> {
    let id = &network.id;
    if network.external && body::boolean(object, "router:external")? == Some(false) {
        let owners = db::ports::device_owners_on_network(state.pool(), id)
            .await
            .map_err(db_error)?;
        if owners
            .iter()
            .any(|owner| owner == ROUTER_GATEWAY || owner == FLOATINGIP_OWNER)
        {
            return Err(ApiError::conflict(format!(
                "External network {id} cannot be updated to be made non-external, since it has existing gateway ports."
            ))
            .with_type("ExternalNetworkInUse"));
        }
    }
    if network.shared && body::boolean(object, "shared")? == Some(false) {
        let projects = db::ports::projects_on_network(state.pool(), id)
            .await
            .map_err(db_error)?;
        if projects
            .iter()
            .any(|project| project != network.project_id.as_str())
        {
            return Err(ApiError::conflict(format!(
                "Unable to reconfigure sharing settings for network {id}. Multiple tenants are using it."
            ))
            .with_type("InvalidSharedSetting"));
        }
    }
    Ok(())
}

// The segment of a network is fixed once it is created: changing it would
// move every bound port to another wire.
fn check_provider_unchanged(segment: &Segment, request: &ProviderRequest) -> Result<(), ApiError> {
    let changed = request
        .network_type
        .as_deref()
        .is_some_and(|t| t != segment.network_type.as_str())
        || request
            .physical_network
            .as_ref()
            .is_some_and(|p| Some(p) != segment.physical_network.as_ref())
        || request
            .segmentation_id
            .is_some_and(|id| Some(id) != segment.segmentation_id);
    if changed {
        return Err(ApiError::bad_request(
            "Invalid input for operation: Plugin does not support updating provider attributes; \
             create a new network with the wanted segment instead.",
        )
        .with_type("InvalidInput"));
    }
    Ok(())
}

async fn remove(
    State(state): State<NetworkState>,
    caller: Caller,
    Path(id): Path<NetworkId>,
) -> Result<StatusCode, ApiError> {
    remove_single(&state, &caller, id).await
}

async fn remove_single(
    state: &NetworkState,
    caller: &Caller,
    id: NetworkId,
) -> Result<StatusCode, ApiError> {
    let network = find_visible(state, caller, &id).await?;
    caller.authorize(&state.policy, "delete_network", &network_target(&network))?;

    // DHCP and distributed ports are deleted with the network. Any other
    // port, router interfaces included, keeps it in use. The network row is
    // locked first, as port creates lock it, so the check and the deletes
    // see the same ports.
    let mut tx = state.pool().begin().await.map_err(db_error)?;
    if !db::networks::touch(&mut *tx, &id, now())
        .await
        .map_err(db_error)?
    {
        return Err(not_found(&id));
    }
    // As in Neutron, the floating IPs of an external network that are not
    // associated with a port are deleted with it. An associated one keeps
    // its port, so the network stays in use.
    let disassociated: Vec<_> = db::floatingips::list(&mut *tx)
        .await
        .map_err(db_error)?
        .into_iter()
        .filter(|fip| fip.floating_network_id == id && fip.port_id.is_none())
        .collect();
    for fip in &disassociated {
        db::floatingips::delete(&mut *tx, &fip.id)
            .await
            .map_err(db_error)?;
        db::ports::delete(&mut tx, &fip.floating_port_id)
            .await
            .map_err(db_error)?;
    }
    let owners = db::ports::device_owners_on_network(&mut *tx, &id)
        .await
        .map_err(db_error)?;
    let in_use = || {
        ApiError::conflict(format!(
            "Unable to complete operation on network {id}. There are one or more ports still \
             in use on the network."
        ))
        .with_type("NetworkInUse")
    };

    if owners.iter().any(|owner| !Port::is_auto_deleted(owner)) {
        return Err(in_use());
    }
    // A port created after the check breaks the foreign key of its row.
    let in_use_or_db = |error: sqlx::Error| match &error {
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => in_use(),
        _ => db_error(error),
    };

    let ports = db::ports::delete_for_network(&mut tx, &id)
        .await
        .map_err(db_error)?;
    let subnets = db::subnets::delete_for_network(&mut *tx, &id)
        .await
        .map_err(db_error)?;
    let deleted = db::networks::delete(&mut *tx, &id)
        .await
        .map_err(in_use_or_db)?;
    tx.commit().await.map_err(in_use_or_db)?;
    if !deleted {
        return Err(not_found(&id));
    }
    tracing::info!(network_id = %id, subnets, ports, floating_ips = disassociated.len(), "deleted network");
    Ok(StatusCode::NO_CONTENT)
}
