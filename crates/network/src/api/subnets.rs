//! `/v2.0/subnets`.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use oxstack_core::time::{from_unix, iso8601};
use oxstack_core::ApiError;
use serde_json::{json, Map, Value};

use super::body::{self, bad_request, NeutronBody};
use super::networks::{self, MAX_NAME_LEN};
use super::query::{select_fields, ListQuery, QueryPairs};
use super::subnet_input as input;
use super::{db_error, NetworkState};
use crate::db;
use crate::ipam;
use crate::model::{now, Network, NetworkId, Port, Subnet, SubnetId, ROUTER_INTERFACE};
use crate::policy::{subnet_target, Caller};
use crate::quota;
use crate::NetworkService;

const CREATE_ATTRIBUTES: &[&str] = &[
    "name",
    "description",
    "network_id",
    "ip_version",
    "cidr",
    "gateway_ip",
    "allocation_pools",
    "enable_dhcp",
    "dns_nameservers",
    "host_routes",
    "ipv6_ra_mode",
    "ipv6_address_mode",
    "subnetpool_id",
    "use_default_subnet_pool",
    "prefixlen",
    "project_id",
    "tenant_id",
    "service_types",
    "segment_id",
];
const UPDATE_ATTRIBUTES: &[&str] = &[
    "name",
    "description",
    "gateway_ip",
    "allocation_pools",
    "enable_dhcp",
    "dns_nameservers",
    "host_routes",
    "id",
    "network_id",
    "ip_version",
    "cidr",
    "project_id",
    "tenant_id",
    "ipv6_ra_mode",
    "ipv6_address_mode",
    "subnetpool_id",
    "created_at",
    "updated_at",
    "revision_number",
];
const READ_ONLY: &[&str] = &[
    "id",
    "network_id",
    "ip_version",
    "cidr",
    "project_id",
    "tenant_id",
    "ipv6_ra_mode",
    "ipv6_address_mode",
    "subnetpool_id",
    "created_at",
    "updated_at",
    "revision_number",
];
const SORTABLE: &[&str] = &[
    "id",
    "name",
    "network_id",
    "ip_version",
    "cidr",
    "gateway_ip",
    "enable_dhcp",
    "project_id",
    "tenant_id",
    "created_at",
    "updated_at",
    "revision_number",
    "description",
];

pub fn routes() -> Router<NetworkState> {
    Router::new()
        .route("/v2.0/subnets", get(list).post(create))
        .route(
            "/v2.0/subnets/{subnet_id}",
            get(show).put(update).delete(remove),
        )
}

/// Renders `subnet`. `external` is the `router:external` of its network,
/// which the `subnet-external-network` extension shows on the subnet.
pub fn render(subnet: &Subnet, external: bool) -> Value {
    let pools: Vec<Value> = subnet
        .allocation_pools
        .iter()
        .map(|pool| json!({"start": pool.start.to_string(), "end": pool.end.to_string()}))
        .collect();
    json!({
        "id": subnet.id,
        "name": subnet.name,
        "tenant_id": subnet.project_id,
        "project_id": subnet.project_id,
        "network_id": subnet.network_id,
        "description": subnet.description,
        "ip_version": subnet.ip_version,
        "cidr": subnet.cidr.to_string(),
        "gateway_ip": subnet.gateway_ip.map(|g| g.to_string()),
        "allocation_pools": pools,
        "enable_dhcp": subnet.enable_dhcp,
        "dns_nameservers": subnet.dns_nameservers,
        "host_routes": subnet.host_routes,
        "ipv6_ra_mode": subnet.ipv6_ra_mode,
        "ipv6_address_mode": subnet.ipv6_address_mode,
        "subnetpool_id": null,
        "service_types": [],
        "tags": subnet.tags,
        "created_at": iso8601(from_unix(subnet.created_at)),
        "updated_at": iso8601(from_unix(subnet.updated_at)),
        "revision_number": subnet.revision_number,
        "router:external": external,
    })
}

fn not_found(id: &SubnetId) -> ApiError {
    ApiError::not_found(format!("Subnet {id} could not be found.")).with_type("SubnetNotFound")
}

/// Loads a subnet the caller may see, with its network; any other is
/// `SubnetNotFound`.
pub async fn find_visible(
    state: &NetworkService,
    caller: &Caller,
    id: &SubnetId,
) -> Result<(Subnet, Network), ApiError> {
    let subnet = db::subnets::get(state.pool(), id)
        .await
        .map_err(db_error)?
        .ok_or_else(|| not_found(id))?;
    let network = db::networks::get(state.pool(), &subnet.network_id)
        .await
        .map_err(db_error)?
        .ok_or_else(|| not_found(id))?;
    if !caller.allows(
        &state.policy,
        "get_subnet",
        &subnet_target(&subnet, &network),
    ) {
        return Err(not_found(id));
    }
    Ok((subnet, network))
}

async fn list(
    State(state): State<NetworkState>,
    caller: Caller,
    QueryPairs(pairs): QueryPairs,
) -> Result<Json<Value>, ApiError> {
    let query = ListQuery::parse(pairs, SORTABLE)?;
    let networks: HashMap<NetworkId, Network> = db::networks::list(state.pool())
        .await
        .map_err(db_error)?
        .into_iter()
        .map(|network| (network.id.clone(), network))
        .collect();
    let items: Vec<Value> = db::subnets::list(state.pool())
        .await
        .map_err(db_error)?
        .iter()
        .filter_map(|subnet| {
            let network = networks.get(&subnet.network_id)?;
            caller
                .allows(&state.policy, "get_subnet", &subnet_target(subnet, network))
                .then(|| render(subnet, network.external))
        })
        .collect();
    Ok(Json(query.respond(
        "subnets",
        &state.v2_url("subnets"),
        items,
    )?))
}

async fn show(
    State(state): State<NetworkState>,
    caller: Caller,
    Path(id): Path<SubnetId>,
    QueryPairs(pairs): QueryPairs,
) -> Result<Json<Value>, ApiError> {
    let (subnet, network) = find_visible(&state, &caller, &id).await?;
    let fields: Vec<String> = pairs
        .into_iter()
        .filter(|(k, _)| k == "fields")
        .map(|(_, v)| v)
        .collect();
    Ok(Json(
        json!({ "subnet": select_fields(render(&subnet, network.external), &fields) }),
    ))
}

fn required<T>(value: Option<T>, attribute: &str) -> Result<T, ApiError> {
    value.ok_or_else(|| {
        bad_request(format!(
            "Failed to parse request. Required attribute '{attribute}' not specified"
        ))
    })
}

// Subnet pools, segments and service types are not implemented; a request
// that relies on them is rejected rather than silently given something else.
fn reject_unsupported(object: &Map<String, Value>) -> Result<(), ApiError> {
    let uses_pool = object.get("subnetpool_id").is_some_and(|v| !v.is_null())
        || body::boolean(object, "use_default_subnet_pool")? == Some(true)
        || object.get("prefixlen").is_some_and(|v| !v.is_null());
    if uses_pool {
        return Err(bad_request(
            "Subnet pools are not supported; give the subnet's 'cidr' instead.",
        ));
    }
    if object.get("segment_id").is_some_and(|v| !v.is_null()) {
        return Err(bad_request(
            "Routed network segments are not supported; omit 'segment_id'.",
        ));
    }
    if object
        .get("service_types")
        .and_then(Value::as_array)
        .is_some_and(|types| !types.is_empty())
    {
        return Err(bad_request(
            "Subnet service types are not supported; omit 'service_types'.",
        ));
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
        "subnet",
        "subnets",
        move |item| create_single(state, caller, item),
        move |id| remove_single(state, caller, SubnetId::new(id)),
    )
    .await
}

async fn create_single(
    state: &NetworkState,
    caller: &Caller,
    request: Value,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let object = body::resource_object(request, "subnet", CREATE_ATTRIBUTES)?;
    reject_unsupported(&object)?;
    let network_id = NetworkId::new(required(body::uuid(&object, "network_id")?, "network_id")?);
    let ip_version = required(body::integer(&object, "ip_version")?, "ip_version")?;
    let ip_version = match ip_version {
        4 => 4,
        6 => 6,
        other => {
            return Err(body::invalid_attribute(
                "ip_version",
                format!("{other} is not in [4, 6]"),
            ))
        }
    };
    let Some(cidr_text) = body::string(&object, "cidr", 64)? else {
        return Err(ApiError::bad_request(
            "Bad subnet request: a cidr must be specified in the absence of a subnet pool.",
        )
        .with_type("BadRequest"));
    };
    let network = networks::find_visible(state, caller, &network_id).await?;
    let project_id = body::owner_project(caller, &object)?;
    let id = SubnetId::generate();
    let mut subnet = Subnet {
        id: id.clone(),
        project_id,
        network_id: network.id.clone(),
        name: body::string(&object, "name", MAX_NAME_LEN)?.unwrap_or_default(),
        description: body::string(&object, "description", MAX_NAME_LEN)?.unwrap_or_default(),
        ip_version,
        cidr: input::cidr(&cidr_text, ip_version)?,
        gateway_ip: None,
        allocation_pools: Vec::new(),
        enable_dhcp: body::boolean(&object, "enable_dhcp")?.unwrap_or(true),
        dns_nameservers: input::dns_nameservers(&object, id.as_str())?.unwrap_or_default(),
        host_routes: input::host_routes(&object, id.as_str())?.unwrap_or_default(),
        ipv6_ra_mode: None,
        ipv6_address_mode: None,
        tags: Vec::new(),
        revision_number: 1,
        created_at: now(),
        updated_at: now(),
    };
    caller.authorize(
        &state.policy,
        "create_subnet",
        &subnet_target(&subnet, &network),
    )?;
    (subnet.ipv6_ra_mode, subnet.ipv6_address_mode) = input::ipv6_modes(&object, ip_version)?;
    input::check_ipv6_auto_prefix(
        &subnet.cidr,
        subnet.ipv6_ra_mode.as_deref(),
        subnet.ipv6_address_mode.as_deref(),
    )?;
    if subnet.enable_dhcp {
        input::check_dhcp_range(&subnet.cidr)?;
    }
    subnet.gateway_ip = input::gateway(&object, &subnet.cidr)?
        .unwrap_or_else(|| ipam::default_gateway(&subnet.cidr));
    subnet.allocation_pools = match input::pools(&object)? {
        Some(pools) => {
            ipam::validate_pools(&subnet.cidr, &pools, subnet.gateway_ip)?;
            pools
        }
        None => ipam::default_pools(&subnet.cidr, subnet.gateway_ip),
    };

    insert_checked(state, &subnet).await?;
    tracing::info!(subnet_id = %subnet.id, network_id = %subnet.network_id, cidr = %subnet.cidr, "created subnet");
    if subnet.enable_dhcp {
        ensure_dhcp_port(state, &subnet).await;
    }
    Ok((
        StatusCode::CREATED,
        Json(json!({ "subnet": render(&subnet, network.external) })),
    ))
}

/// Gives the network of `subnet` its DHCP port. A failure (no free address
/// left for it) is logged and leaves the subnet in place, as a failing DHCP
/// agent does in Neutron. The next subnet change or agent start retries.
async fn ensure_dhcp_port(state: &NetworkService, subnet: &Subnet) {
    if let Err(error) = state.ensure_dhcp_port(&subnet.network_id).await {
        tracing::warn!(subnet_id = %subnet.id, network_id = %subnet.network_id, error = %error.message,
                       "cannot give the network its DHCP port");
    }
}

/// Inserts `subnet` unless it overlaps another subnet of its network. The
/// network row is updated first, which serialises subnet creates on one
/// network, so two overlapping creates cannot both pass the check.
async fn insert_checked(state: &NetworkService, subnet: &Subnet) -> Result<(), ApiError> {
    let mut tx = state.pool().begin().await.map_err(db_error)?;
    if !db::networks::touch(&mut *tx, &subnet.network_id, subnet.created_at)
        .await
        .map_err(db_error)?
    {
        return Err(networks::not_found(&subnet.network_id));
    }
    quota::check(&mut tx, &subnet.project_id, quota::Resource::Subnet, 1).await?;
    let existing = db::subnets::list_for_network(&mut *tx, &subnet.network_id)
        .await
        .map_err(db_error)?;
    let cidrs: Vec<_> = existing.iter().map(|other| other.cidr).collect();
    ipam::check_subnet_overlap(&subnet.cidr, subnet.network_id.as_str(), &cidrs)?;
    db::subnets::insert(&mut *tx, subnet)
        .await
        .map_err(db_error)?;
    tx.commit().await.map_err(db_error)
}

async fn update(
    State(state): State<NetworkState>,
    caller: Caller,
    Path(id): Path<SubnetId>,
    NeutronBody(request): NeutronBody,
) -> Result<Json<Value>, ApiError> {
    let object = body::resource_object(request, "subnet", UPDATE_ATTRIBUTES)?;
    body::reject_read_only(&object, READ_ONLY)?;
    let (mut subnet, network) = find_visible(&state, &caller, &id).await?;
    caller.authorize(
        &state.policy,
        "update_subnet",
        &subnet_target(&subnet, &network),
    )?;

    if let Some(name) = body::string(&object, "name", MAX_NAME_LEN)? {
        subnet.name = name;
    }
    if let Some(description) = body::string(&object, "description", MAX_NAME_LEN)? {
        subnet.description = description;
    }
    if let Some(enable_dhcp) = body::boolean(&object, "enable_dhcp")? {
        if enable_dhcp && !subnet.enable_dhcp {
            input::check_dhcp_range(&subnet.cidr)?;
        }
        subnet.enable_dhcp = enable_dhcp;
    }
    if let Some(servers) = input::dns_nameservers(&object, id.as_str())? {
        subnet.dns_nameservers = servers;
    }
    if let Some(routes) = input::host_routes(&object, id.as_str())? {
        subnet.host_routes = routes;
    }
    let gateway_changed = object.contains_key("gateway_ip");
    if let Some(gateway) = input::gateway(&object, &subnet.cidr)? {
        subnet.gateway_ip = gateway;
    }
    let pools = input::pools(&object)?;
    let pools_changed = pools.is_some();
    if let Some(pools) = pools {
        subnet.allocation_pools = pools;
    }
    if gateway_changed || pools_changed {
        ipam::validate_pools(&subnet.cidr, &subnet.allocation_pools, subnet.gateway_ip)?;
    }

    subnet.revision_number += 1;
    subnet.updated_at = now();
    if !db::subnets::update(state.pool(), &subnet)
        .await
        .map_err(db_error)?
    {
        return Err(ApiError::conflict(format!(
            "Subnet {id} was changed by another request; retry the update."
        ))
        .with_type("Conflict"));
    }
    if subnet.enable_dhcp {
        ensure_dhcp_port(&state, &subnet).await;
    }
    Ok(Json(json!({ "subnet": render(&subnet, network.external) })))
}

async fn remove(
    State(state): State<NetworkState>,
    caller: Caller,
    Path(id): Path<SubnetId>,
) -> Result<StatusCode, ApiError> {
    remove_single(&state, &caller, id).await
}

async fn remove_single(
    state: &NetworkState,
    caller: &Caller,
    id: SubnetId,
) -> Result<StatusCode, ApiError> {
    let (subnet, network) = find_visible(state, caller, &id).await?;
    caller.authorize(
        &state.policy,
        "delete_subnet",
        &subnet_target(&subnet, &network),
    )?;

    // The network row is updated first, which waits for port creates on the
    // network, because they lock that row while they choose addresses.
    let mut tx = state.pool().begin().await.map_err(db_error)?;
    db::networks::touch(&mut *tx, &subnet.network_id, now())
        .await
        .map_err(db_error)?;

    // Addresses of DHCP and distributed ports are freed with the subnet;
    // any other port's address keeps it in use. On an auto-address subnet
    // every host configures its own address, so only a router interface
    // keeps it, as in Neutron.
    let owners = db::ports::device_owners_on_subnet(&mut *tx, &id)
        .await
        .map_err(db_error)?;
    let keeps_subnet = |owner: &String| {
        if subnet.is_auto_address() {
            owner.starts_with(ROUTER_INTERFACE)
        } else {
            !Port::is_auto_deleted(owner)
        }
    };
    if owners.iter().any(keeps_subnet) {
        return Err(ApiError::conflict(format!(
            "Unable to complete operation on subnet {id}: One or more ports have an IP \
             allocation from this subnet."
        ))
        .with_type("SubnetInUse"));
    }
    let freed = db::ports::delete_addresses_on_subnet(&mut *tx, &id)
        .await
        .map_err(db_error)?;
    let deleted = db::subnets::delete(&mut *tx, &id).await.map_err(db_error)?;
    tx.commit().await.map_err(db_error)?;
    if !deleted {
        return Err(not_found(&id));
    }
    tracing::info!(subnet_id = %id, network_id = %subnet.network_id, freed_addresses = freed, "deleted subnet");
    Ok(StatusCode::NO_CONTENT)
}
