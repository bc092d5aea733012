//! `/v2.0/floatingips`: allocating addresses on external networks and
//! associating them with ports. The association rules are in
//! `floatingip_association`.

use std::collections::HashMap;
use std::net::IpAddr;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use oxstack_core::time::{from_unix, iso8601};
use oxstack_core::ApiError;
use serde_json::{json, Map, Value};

use super::body::{self, NeutronBody};
use super::floatingip_association::{self as association, bad_floatingip_request, Association};
use super::networks::{self, MAX_NAME_LEN};
use super::port_input::IpRequest;
use super::query::{select_fields, ListQuery, QueryPairs};
use super::service_ports::{self, ServicePort};
use super::{db_error, NetworkState};
use crate::db;
use crate::model::{
    now, FloatingIp, FloatingIpId, NetworkId, Port, PortId, ProjectId, SubnetId, FLOATINGIP_OWNER,
};
use crate::policy::{floatingip_target, Caller};
use crate::quota;
use crate::NetworkService;

const CREATE_ATTRIBUTES: &[&str] = &[
    "floating_network_id",
    "floating_ip_address",
    "subnet_id",
    "port_id",
    "fixed_ip_address",
    "description",
    "project_id",
    "tenant_id",
    "dns_name",
    "dns_domain",
    "qos_policy_id",
];
const UPDATE_ATTRIBUTES: &[&str] = &["port_id", "fixed_ip_address", "description"];
const SORTABLE: &[&str] = &[
    "id",
    "floating_ip_address",
    "floating_network_id",
    "fixed_ip_address",
    "port_id",
    "router_id",
    "status",
    "project_id",
    "tenant_id",
    "created_at",
    "updated_at",
    "revision_number",
    "description",
];

pub fn routes() -> Router<NetworkState> {
    Router::new()
        .route("/v2.0/floatingips", get(list).post(create))
        .route(
            "/v2.0/floatingips/{floatingip_id}",
            get(show).put(update).delete(remove),
        )
}

/// Renders `fip`; `port` is its associated port, for `port_details`.
pub fn render(fip: &FloatingIp, port: Option<&Port>) -> Value {
    let port_details = port.map(|port| {
        json!({
            "name": port.name,
            "network_id": port.network_id,
            "mac_address": port.mac_address,
            "admin_state_up": port.admin_state_up,
            "status": port.status,
            "device_id": port.device_id,
            "device_owner": port.device_owner,
        })
    });
    json!({
        "id": fip.id,
        "tenant_id": fip.project_id,
        "project_id": fip.project_id,
        "floating_ip_address": fip.floating_ip_address.to_string(),
        "floating_network_id": fip.floating_network_id,
        "router_id": fip.router_id,
        "port_id": fip.port_id,
        "fixed_ip_address": fip.fixed_ip_address.map(|a| a.to_string()),
        "status": fip.status,
        "description": fip.description,
        "port_details": port_details,
        "port_forwardings": [],
        "qos_policy_id": null,
        "qos_network_policy_id": null,
        "dns_name": "",
        "dns_domain": "",
        "tags": fip.tags,
        "created_at": iso8601(from_unix(fip.created_at)),
        "updated_at": iso8601(from_unix(fip.updated_at)),
        "revision_number": fip.revision_number,
    })
}

fn not_found(id: &FloatingIpId) -> ApiError {
    ApiError::not_found(format!("Floating IP {id} could not be found"))
        .with_type("FloatingIPNotFound")
}

/// Loads a floating IP the caller may see. Any other is `FloatingIPNotFound`.
pub async fn find_visible(
    state: &NetworkService,
    caller: &Caller,
    id: &FloatingIpId,
) -> Result<FloatingIp, ApiError> {
    let fip = db::floatingips::get(state.pool(), id)
        .await
        .map_err(db_error)?
        .ok_or_else(|| not_found(id))?;
    if !caller.allows(&state.policy, "get_floatingip", &floatingip_target(&fip)) {
        return Err(not_found(id));
    }
    Ok(fip)
}

async fn associated_port(
    state: &NetworkService,
    fip: &FloatingIp,
) -> Result<Option<Port>, ApiError> {
    match &fip.port_id {
        Some(port_id) => db::ports::get(state.pool(), port_id)
            .await
            .map_err(db_error),
        None => Ok(None),
    }
}

async fn list(
    State(state): State<NetworkState>,
    caller: Caller,
    QueryPairs(pairs): QueryPairs,
) -> Result<Json<Value>, ApiError> {
    let query = ListQuery::parse(pairs, SORTABLE)?;
    let fips = db::floatingips::list(state.pool())
        .await
        .map_err(db_error)?;
    let ports: HashMap<PortId, Port> = db::ports::list(state.pool())
        .await
        .map_err(db_error)?
        .into_iter()
        .map(|port| (port.id.clone(), port))
        .collect();
    let items: Vec<Value> = fips
        .iter()
        .filter(|fip| caller.allows(&state.policy, "get_floatingip", &floatingip_target(fip)))
        .map(|fip| render(fip, fip.port_id.as_ref().and_then(|id| ports.get(id))))
        .collect();
    Ok(Json(query.respond(
        "floatingips",
        &state.v2_url("floatingips"),
        items,
    )?))
}

async fn show(
    State(state): State<NetworkState>,
    caller: Caller,
    Path(id): Path<FloatingIpId>,
    QueryPairs(pairs): QueryPairs,
) -> Result<Json<Value>, ApiError> {
    let fip = find_visible(&state, &caller, &id).await?;
    let port = associated_port(&state, &fip).await?;
    let fields: Vec<String> = pairs
        .into_iter()
        .filter(|(k, _)| k == "fields")
        .map(|(_, v)| v)
        .collect();
    let body = select_fields(render(&fip, port.as_ref()), &fields);
    Ok(Json(json!({ "floatingip": body })))
}

fn address(object: &Map<String, Value>, key: &str) -> Result<Option<IpAddr>, ApiError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => text.parse().map(Some).map_err(|_| {
            body::invalid_attribute(key, format!("'{text}' is not a valid IP address"))
        }),
        Some(other) => Err(body::invalid_attribute(
            key,
            format!("'{other}' is not a valid IP address"),
        )),
    }
}

/// Reads `port_id`: `None` when absent, `Some(None)` for null.
fn port_id(object: &Map<String, Value>) -> Result<Option<Option<PortId>>, ApiError> {
    Ok(body::nullable_string(object, "port_id")?.map(|id| id.map(PortId::new)))
}

async fn create(
    State(state): State<NetworkState>,
    caller: Caller,
    NeutronBody(request): NeutronBody,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let object = body::resource_object(request, "floatingip", CREATE_ATTRIBUTES)?;
    let Some(network_id) = body::uuid(&object, "floating_network_id")?.map(NetworkId::new) else {
        return Err(body::bad_request(
            "Failed to parse request. Required attribute 'floating_network_id' not specified",
        ));
    };
    let requested_address = address(&object, "floating_ip_address")?;
    let subnet_id = body::string(&object, "subnet_id", 255)?.map(SubnetId::new);
    let network = networks::find_visible(&state, &caller, &network_id).await?;
    if !network.external {
        return Err(bad_floatingip_request(format!(
            "Network {network_id} is not a valid external network"
        )));
    }
    let created = now();
    let mut fip = FloatingIp {
        id: FloatingIpId::generate(),
        project_id: body::owner_project(&caller, &object)?,
        floating_network_id: network_id.clone(),
        // Replaced by the address the port gets.
        floating_ip_address: IpAddr::from([0, 0, 0, 0]),
        floating_port_id: PortId::new(""),
        port_id: None,
        fixed_ip_address: None,
        router_id: None,
        status: "DOWN".to_owned(),
        description: body::string(&object, "description", MAX_NAME_LEN)?.unwrap_or_default(),
        tags: Vec::new(),
        revision_number: 1,
        created_at: created,
        updated_at: created,
    };
    let target = floatingip_target(&fip);
    caller.authorize(&state.policy, "create_floatingip", &target)?;
    if requested_address.is_some() {
        caller.authorize(
            &state.policy,
            "create_floatingip:floating_ip_address",
            &target,
        )?;
    }
    let association = match port_id(&object)?.flatten() {
        Some(port_id) => {
            let fixed_ip = address(&object, "fixed_ip_address")?;
            Some(association::resolve(&state, &caller, &fip, &port_id, fixed_ip).await?)
        }
        None => None,
    };
    let has_ipv4_subnet = db::subnets::list_for_network(state.pool(), &network_id)
        .await
        .map_err(db_error)?
        .iter()
        .any(|subnet| subnet.ip_version == 4);
    if !has_ipv4_subnet {
        return Err(bad_floatingip_request(format!(
            "Network {network_id} does not contain any IPv4 subnet; create one before \
             allocating floating IPs from it"
        )));
    }

    let requests = (requested_address.is_some() || subnet_id.is_some()).then(|| {
        vec![IpRequest {
            subnet_id,
            ip_address: requested_address,
        }]
    });
    let port = service_ports::create(
        &state,
        ServicePort {
            network: &network,
            project_id: ProjectId::new(""),
            device_owner: FLOATINGIP_OWNER,
            device_id: fip.id.to_string(),
            requests,
        },
    )
    .await?;
    fip.floating_port_id = port.id.clone();
    let Some(allocated) = port.fixed_ips.iter().find(|f| f.ip_address.is_ipv4()) else {
        service_ports::delete(&state, &port.id).await?;
        return Err(bad_floatingip_request(format!(
            "No IPv4 address was allocated on network {network_id}"
        )));
    };
    fip.floating_ip_address = allocated.ip_address;
    association::apply(&mut fip, association.as_ref());

    if let Err(error) = insert_checked(&state, &fip).await {
        service_ports::delete(&state, &port.id).await?;
        return Err(error);
    }
    tracing::info!(floatingip_id = %fip.id, project_id = %fip.project_id,
                   address = %fip.floating_ip_address, "created floating IP");
    let port = association.map(|association| association.port);
    Ok((
        StatusCode::CREATED,
        Json(json!({ "floatingip": render(&fip, port.as_ref()) })),
    ))
}

async fn insert_checked(state: &NetworkService, fip: &FloatingIp) -> Result<(), ApiError> {
    let mut tx = state.pool().begin().await.map_err(db_error)?;
    quota::check(&mut tx, &fip.project_id, quota::Resource::FloatingIp, 1).await?;
    db::floatingips::insert(&mut *tx, fip)
        .await
        .map_err(db_error)?;
    tx.commit().await.map_err(db_error)
}

async fn update(
    State(state): State<NetworkState>,
    caller: Caller,
    Path(id): Path<FloatingIpId>,
    NeutronBody(request): NeutronBody,
) -> Result<Json<Value>, ApiError> {
    let object = body::resource_object(request, "floatingip", UPDATE_ATTRIBUTES)?;
    let mut fip = find_visible(&state, &caller, &id).await?;
    caller.authorize(&state.policy, "update_floatingip", &floatingip_target(&fip))?;
    if let Some(description) = body::string(&object, "description", MAX_NAME_LEN)? {
        fip.description = description;
    }
    let fixed_ip = address(&object, "fixed_ip_address")?;
    // A new fixed IP without a port moves the association on the same port.
    let target_port = match port_id(&object)? {
        Some(requested) => requested,
        None if fixed_ip.is_some() => fip.port_id.clone(),
        None => None,
    };
    if fixed_ip.is_some() && target_port.is_none() {
        return Err(bad_floatingip_request(
            "fixed_ip_address cannot be specified without a port_id",
        ));
    }
    let changes_association = object.contains_key("port_id") || fixed_ip.is_some();
    let mut port = None;
    if changes_association {
        let association: Option<Association> = match &target_port {
            Some(port_id) => {
                Some(association::resolve(&state, &caller, &fip, port_id, fixed_ip).await?)
            }
            None => None,
        };
        association::apply(&mut fip, association.as_ref());
        port = association.map(|association| association.port);
    }
    fip.revision_number += 1;
    fip.updated_at = now();
    if !db::floatingips::update(state.pool(), &fip)
        .await
        .map_err(db_error)?
    {
        return Err(ApiError::conflict(format!(
            "Floating IP {id} was changed by another request; retry the update."
        ))
        .with_type("Conflict"));
    }
    if !changes_association {
        port = associated_port(&state, &fip).await?;
    }
    tracing::info!(floatingip_id = %id, port_id = ?fip.port_id, router_id = ?fip.router_id,
                   "updated floating IP");
    Ok(Json(json!({ "floatingip": render(&fip, port.as_ref()) })))
}

async fn remove(
    State(state): State<NetworkState>,
    caller: Caller,
    Path(id): Path<FloatingIpId>,
) -> Result<StatusCode, ApiError> {
    let fip = find_visible(&state, &caller, &id).await?;
    caller.authorize(&state.policy, "delete_floatingip", &floatingip_target(&fip))?;
    let mut tx = state.pool().begin().await.map_err(db_error)?;
    let deleted = db::floatingips::delete(&mut *tx, &id)
        .await
        .map_err(db_error)?;
    db::ports::delete(&mut tx, &fip.floating_port_id)
        .await
        .map_err(db_error)?;
    tx.commit().await.map_err(db_error)?;
    if !deleted {
        return Err(not_found(&id));
    }
    tracing::info!(floatingip_id = %id, address = %fip.floating_ip_address, "deleted floating IP");
    Ok(StatusCode::NO_CONTENT)
}
