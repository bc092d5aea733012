//! `/v2.0/ports`: reading, creating and deleting ports. Updates are in
//! `port_update`, and the rules on what a request may set in `port_rules`.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use oxstack_core::time::{from_unix, iso8601};
use oxstack_core::{ApiError, ErrorKind};
use serde_json::{json, Map, Value};

use super::body::{self, NeutronBody};
use super::networks::{self, MAX_NAME_LEN};
use super::port_addresses::{self as addresses};
use super::port_input::{self as input};
use super::port_rules as rules;
use super::query::{select_fields, ListQuery, QueryPairs};
use super::{db_error, port_update, security_groups, NetworkState};
use crate::db;
use crate::ipam;
use crate::model::{now, Binding, FixedIp, Network, NetworkId, Port, PortId, ProjectId};
use crate::model::{FLOATINGIP_OWNER, ROUTER_GATEWAY, ROUTER_INTERFACE};
use crate::policy::{port_target, Caller};
use crate::quota;
use crate::NetworkService;

const CREATE_ATTRIBUTES: &[&str] = &[
    "name",
    "description",
    "network_id",
    "mac_address",
    "fixed_ips",
    "device_id",
    "device_owner",
    "admin_state_up",
    "project_id",
    "tenant_id",
    "security_groups",
    "port_security_enabled",
    "allowed_address_pairs",
    "binding:host_id",
    "binding:vnic_type",
    "binding:profile",
];
/// Binding attributes only admins see, as Neutron's `get_port:binding:*`.
const BINDING_FIELDS: &[&str] = &[
    "binding:host_id",
    "binding:vif_type",
    "binding:vif_details",
    "binding:profile",
];
const SORTABLE: &[&str] = &[
    "id",
    "name",
    "network_id",
    "mac_address",
    "admin_state_up",
    "status",
    "device_id",
    "device_owner",
    "project_id",
    "tenant_id",
    "created_at",
    "updated_at",
    "revision_number",
    "description",
];
/// The `binding:vif_type` of a port that no host has bound.
pub const UNBOUND: &str = "unbound";
/// Device owners of ports that routers and floating IPs create and delete.
const SERVICE_OWNERS: &[&str] = &[ROUTER_INTERFACE, ROUTER_GATEWAY, FLOATINGIP_OWNER];
/// Tries at storing a port before giving up on concurrent requests that
/// keep taking the chosen address or MAC first.
pub const ATTEMPTS: usize = 10;

pub fn routes() -> Router<NetworkState> {
    Router::new()
        .route("/v2.0/ports", get(list).post(create))
        .route(
            "/v2.0/ports/{port_id}",
            get(show).put(port_update::update).delete(remove),
        )
}

/// Renders `port` for `caller`, without the binding details unless policy
/// shows them.
pub fn render(state: &NetworkService, caller: &Caller, port: &Port, network: &Network) -> Value {
    let fixed_ips: Vec<Value> = port
        .fixed_ips
        .iter()
        .map(|f| json!({"subnet_id": f.subnet_id, "ip_address": f.ip_address.to_string()}))
        .collect();
    let mut body = json!({
        "id": port.id,
        "name": port.name,
        "network_id": port.network_id,
        "tenant_id": port.project_id,
        "project_id": port.project_id,
        "description": port.description,
        "mac_address": port.mac_address,
        "admin_state_up": port.admin_state_up,
        "status": port.status,
        "device_id": port.device_id,
        "device_owner": port.device_owner,
        "fixed_ips": fixed_ips,
        "allowed_address_pairs": port.allowed_address_pairs,
        "extra_dhcp_opts": [],
        "security_groups": port.security_groups,
        "port_security_enabled": port.port_security_enabled,
        "binding:host_id": port.binding.host_id,
        "binding:vnic_type": port.binding.vnic_type,
        "binding:vif_type": port.binding.vif_type,
        "binding:vif_details": port.binding.vif_details,
        "binding:profile": port.binding.profile,
        "qos_policy_id": null,
        "qos_network_policy_id": null,
        "ip_allocation": "immediate",
        "tags": port.tags,
        "created_at": iso8601(from_unix(port.created_at)),
        "updated_at": iso8601(from_unix(port.updated_at)),
        "revision_number": port.revision_number,
    });
    let target = port_target(port, network);
    if let Value::Object(object) = &mut body {
        for field in BINDING_FIELDS {
            if !caller.allows(&state.policy, &format!("get_port:{field}"), &target) {
                object.remove(*field);
            }
        }
    }
    body
}

pub fn not_found(id: &PortId) -> ApiError {
    ApiError::not_found(format!("Port {id} could not be found.")).with_type("PortNotFound")
}

/// Loads a port the caller may see, with its network. Any other is
/// `PortNotFound`.
pub async fn find_visible(
    state: &NetworkService,
    caller: &Caller,
    id: &PortId,
) -> Result<(Port, Network), ApiError> {
    let port = db::ports::get(state.pool(), id)
        .await
        .map_err(db_error)?
        .ok_or_else(|| not_found(id))?;
    let network = db::networks::get(state.pool(), &port.network_id)
        .await
        .map_err(db_error)?
        .ok_or_else(|| not_found(id))?;
    if !caller.allows(&state.policy, "get_port", &port_target(&port, &network)) {
        return Err(not_found(id));
    }
    Ok((port, network))
}

/// Applies Neutron's `fixed_ips=ip_address=…` (also `subnet_id=…` and
/// `ip_address_substr=…`) filters: every key must match one allocation.
fn matches_fixed_ips(port: &Port, filters: &[(String, String)]) -> bool {
    if filters.is_empty() {
        return true;
    }
    port.fixed_ips.iter().any(|fixed_ip| {
        filters.iter().all(|(key, value)| match key.as_str() {
            "ip_address" => fixed_ip.ip_address.to_string() == *value,
            "subnet_id" => fixed_ip.subnet_id.as_str() == value,
            "ip_address_substr" => fixed_ip.ip_address.to_string().contains(value.as_str()),
            _ => false,
        })
    })
}

async fn list(
    State(state): State<NetworkState>,
    caller: Caller,
    QueryPairs(pairs): QueryPairs,
) -> Result<Json<Value>, ApiError> {
    security_groups::ensure_caller_default(&state, &caller).await?;
    let fixed_ip_filters: Vec<(String, String)> = pairs
        .iter()
        .filter(|(key, _)| key == "fixed_ips")
        .filter_map(|(_, value)| value.split_once('='))
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect();
    let query = ListQuery::parse(pairs, SORTABLE)?.skip_filter("fixed_ips");
    let networks: HashMap<NetworkId, Network> = db::networks::list(state.pool())
        .await
        .map_err(db_error)?
        .into_iter()
        .map(|network| (network.id.clone(), network))
        .collect();
    let items: Vec<Value> = db::ports::list(state.pool())
        .await
        .map_err(db_error)?
        .iter()
        .filter(|port| matches_fixed_ips(port, &fixed_ip_filters))
        .filter_map(|port| {
            let network = networks.get(&port.network_id)?;
            caller
                .allows(&state.policy, "get_port", &port_target(port, network))
                .then(|| render(&state, &caller, port, network))
        })
        .collect();
    Ok(Json(query.respond(
        "ports",
        &state.v2_url("ports"),
        items,
    )?))
}

async fn show(
    State(state): State<NetworkState>,
    caller: Caller,
    Path(id): Path<PortId>,
    QueryPairs(pairs): QueryPairs,
) -> Result<Json<Value>, ApiError> {
    let (port, network) = find_visible(&state, &caller, &id).await?;
    let fields: Vec<String> = pairs
        .into_iter()
        .filter(|(k, _)| k == "fields")
        .map(|(_, v)| v)
        .collect();
    let body = select_fields(render(&state, &caller, &port, &network), &fields);
    Ok(Json(json!({ "port": body })))
}

pub fn mac_in_use(network_id: &NetworkId, mac: &str) -> ApiError {
    ApiError::conflict(format!(
        "Unable to complete operation for network {network_id}. The mac address {mac} is in use."
    ))
    .with_type("MacAddressInUse")
}

/// True for the failures a retry may cure: another request took the chosen
/// address or MAC (unique key), or removed a chosen subnet (foreign key).
pub fn is_retryable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db) => db.is_unique_violation() || db.is_foreign_key_violation(),
        _ => false,
    }
}

pub fn gave_up(port_id: &PortId) -> ApiError {
    ApiError::new(
        ErrorKind::Unavailable,
        format!(
            "Unable to store port {port_id}: concurrent requests kept taking its addresses; retry."
        ),
    )
    .with_type("IpAddressGenerationFailure")
}

async fn create(
    State(state): State<NetworkState>,
    caller: Caller,
    NeutronBody(request): NeutronBody,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (state, caller) = (&state, &caller);
    super::bulk::create(
        request,
        "port",
        "ports",
        move |item| create_single(state, caller, item),
        move |id| remove_single(state, caller, PortId::new(id)),
    )
    .await
}

async fn create_single(
    state: &NetworkState,
    caller: &Caller,
    request: Value,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let object = body::resource_object(request, "port", CREATE_ATTRIBUTES)?;
    let (port, network) = create_port(state, caller, &object).await?;
    let body = render(state, caller, &port, &network);
    Ok((StatusCode::CREATED, Json(json!({ "port": body }))))
}

/// Creates the port that the request `object` (the attributes under
/// `"port"`) describes, as `caller`: checks policy, chooses the MAC and
/// fixed IPs, applies the default security group and binds the port when
/// it names a host. The API and in-process callers both create ports here.
pub async fn create_port(
    state: &NetworkService,
    caller: &Caller,
    object: &Map<String, Value>,
) -> Result<(Port, Network), ApiError> {
    let Some(network_id) = body::uuid(object, "network_id")?.map(NetworkId::new) else {
        return Err(body::bad_request(
            "Failed to parse request. Required attribute 'network_id' not specified",
        ));
    };
    let requested_mac = body::string(object, "mac_address", 32)?
        .map(|mac| input::mac_address(&mac))
        .transpose()?;
    let requests = input::fixed_ips(object)?;
    let network = networks::find_visible(state, caller, &network_id).await?;
    let project_id = body::owner_project(caller, object)?;

    let created = now();
    let mut port = Port {
        id: PortId::generate(),
        project_id,
        network_id: network_id.clone(),
        name: body::string(object, "name", MAX_NAME_LEN)?.unwrap_or_default(),
        description: body::string(object, "description", MAX_NAME_LEN)?.unwrap_or_default(),
        mac_address: requested_mac.clone().unwrap_or_default(),
        admin_state_up: body::boolean(object, "admin_state_up")?.unwrap_or(true),
        status: "DOWN".to_owned(),
        device_owner: body::string(object, "device_owner", 255)?.unwrap_or_default(),
        device_id: body::string(object, "device_id", 255)?.unwrap_or_default(),
        fixed_ips: Vec::new(),
        binding: Binding {
            host_id: body::string(object, "binding:host_id", 255)?.unwrap_or_default(),
            vnic_type: input::vnic_type(object)?.unwrap_or_else(|| "normal".to_owned()),
            vif_type: UNBOUND.to_owned(),
            vif_details: json!({}),
            profile: input::profile(object)?.unwrap_or_else(|| json!({})),
        },
        port_security_enabled: body::boolean(object, "port_security_enabled")?
            .unwrap_or(network.port_security_enabled),
        allowed_address_pairs: Vec::new(),
        security_groups: Vec::new(),
        tags: Vec::new(),
        revision_number: 1,
        created_at: created,
        updated_at: created,
    };
    let target = port_target(&port, &network);
    caller.authorize(&state.policy, "create_port", &target)?;
    rules::authorize_attributes(state, caller, "create_port", object, &target)?;
    port.security_groups = rules::security_groups_for(
        state,
        caller,
        body::string_list(object, "security_groups")?,
        &port,
    )
    .await?;
    addresses::check_subnets_exist(state, requests.as_deref()).await?;
    if !port.binding.host_id.is_empty() {
        port_update::bind(state, &mut port, &network).await?;
    }

    let project_id = port.project_id.clone();
    store_new_port(
        state,
        &mut port,
        object,
        requested_mac.as_deref(),
        requests.as_deref(),
        Some(&project_id),
    )
    .await?;
    tracing::info!(port_id = %port.id, network_id = %port.network_id, project_id = %port.project_id,
                   mac_address = %port.mac_address, "created port");
    Ok((port, network))
}

/// Chooses the MAC and fixed IPs of `port` and stores it with them, in
/// one transaction that holds the network's row lock. A collision with a
/// concurrent request that slipped past the lock makes a new choice.
pub(crate) async fn store_new_port(
    state: &NetworkService,
    port: &mut Port,
    object: &Map<String, Value>,
    requested_mac: Option<&str>,
    requests: Option<&[input::IpRequest]>,
    quota_project: Option<&ProjectId>,
) -> Result<(), ApiError> {
    for _ in 0..ATTEMPTS {
        let mut tx = state.pool().begin().await.map_err(db_error)?;
        if !db::networks::lock(&mut *tx, &port.network_id)
            .await
            .map_err(db_error)?
        {
            return Err(networks::not_found(&port.network_id));
        }
        if let Some(project_id) = quota_project {
            quota::check(&mut tx, project_id, quota::Resource::Port, 1).await?;
        }
        port.mac_address = match requested_mac {
            Some(mac) => {
                if db::ports::mac_taken(&mut *tx, &port.network_id, mac)
                    .await
                    .map_err(db_error)?
                {
                    return Err(mac_in_use(&port.network_id, mac));
                }
                mac.to_owned()
            }
            None => ipam::generate_mac(&mut rand::thread_rng()),
        };
        port.allowed_address_pairs =
            input::address_pairs(object, &port.mac_address)?.unwrap_or_default();
        rules::check_address_pairs_allowed(port)?;
        let subnets = db::subnets::list_for_network(&mut *tx, &port.network_id)
            .await
            .map_err(db_error)?;
        let mut used = addresses::load_used(&mut tx, &subnets, &[])
            .await
            .map_err(db_error)?;
        port.fixed_ips = addresses::plan(
            &port.network_id,
            &subnets,
            requests,
            &port.mac_address,
            &mut used,
        )?;
        let stored = match insert(&mut tx, port).await {
            Ok(()) => tx.commit().await,
            Err(error) => Err(error),
        };
        match stored {
            Ok(()) => return Ok(()),
            Err(error) if is_retryable(&error) => {
                rules::check_groups_exist(state, &port.security_groups).await?;
                tracing::debug!(port_id = %port.id, %error, "port collided with a concurrent request; retrying");
            }
            Err(error) => return Err(db_error(error)),
        }
    }
    Err(gave_up(&port.id))
}

async fn insert(db: &mut sqlx::AnyConnection, port: &Port) -> Result<(), sqlx::Error> {
    db::ports::insert(&mut *db, port).await?;
    db::ports::insert_addresses(db, port, &port.fixed_ips).await?;
    db::ports::set_security_groups(db, &port.id, &port.security_groups).await
}

/// True for a port that a router or floating IP that still exists owns.
/// Like Neutron, a port that merely carries such a device owner, without
/// the router or floating IP, may be deleted.
async fn is_owned_by_service(state: &NetworkService, port: &Port) -> Result<bool, ApiError> {
    if !SERVICE_OWNERS.contains(&port.device_owner.as_str()) || port.device_id.is_empty() {
        return Ok(false);
    }
    let owner_exists = if port.device_owner == FLOATINGIP_OWNER {
        let id = crate::model::FloatingIpId::new(port.device_id.clone());
        db::floatingips::get(state.pool(), &id)
            .await
            .map_err(db_error)?
            .is_some()
    } else {
        let id = crate::model::RouterId::new(port.device_id.clone());
        db::routers::get(state.pool(), &id)
            .await
            .map_err(db_error)?
            .is_some()
    };
    Ok(owner_exists)
}

async fn remove(
    State(state): State<NetworkState>,
    caller: Caller,
    Path(id): Path<PortId>,
) -> Result<StatusCode, ApiError> {
    remove_single(&state, &caller, id).await
}

async fn remove_single(
    state: &NetworkState,
    caller: &Caller,
    id: PortId,
) -> Result<StatusCode, ApiError> {
    delete_port(state, caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes port `id` as `caller`, with its addresses; floating IPs
/// associated with it are disassociated. Ports of routers and floating
/// IPs that still exist are refused (`ServicePortInUse`).
pub async fn delete_port(
    state: &NetworkService,
    caller: &Caller,
    id: &PortId,
) -> Result<(), ApiError> {
    let (port, network) = find_visible(state, caller, id).await?;
    caller.authorize(&state.policy, "delete_port", &port_target(&port, &network))?;
    if is_owned_by_service(state, &port).await? {
        return Err(ApiError::conflict(format!(
            "Port {id} cannot be deleted directly via the port API: has device owner {}; \
             remove it through its router or floating IP.",
            port.device_owner
        ))
        .with_type("ServicePortInUse"));
    }
    // Neutron disassociates the floating IPs of a deleted port.
    let mut tx = state.pool().begin().await.map_err(db_error)?;
    db::floatingips::disassociate_port(&mut *tx, id, now())
        .await
        .map_err(db_error)?;
    let deleted = db::ports::delete(&mut tx, id).await.map_err(db_error)?;
    tx.commit().await.map_err(db_error)?;
    if !deleted {
        return Err(not_found(id));
    }
    let freed: Vec<String> = port
        .fixed_ips
        .iter()
        .map(|FixedIp { ip_address, .. }| ip_address.to_string())
        .collect();
    tracing::info!(port_id = %id, network_id = %port.network_id, freed = ?freed, "deleted port");
    Ok(())
}
