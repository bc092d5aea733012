//! `PUT /v2.0/ports/{id}`: changing a port's attributes, addresses,
//! security groups and port security.

use axum::extract::{Path, State};
use axum::Json;
use oxstack_core::ApiError;
use serde_json::{json, Map, Value};

use super::body::{self, NeutronBody};
use super::networks::MAX_NAME_LEN;
use super::port_addresses as addresses;
use super::port_input as input;
use super::port_rules;
use super::ports::{self, ATTEMPTS, UNBOUND};
use super::{db_error, NetworkState};
use crate::binding;
use crate::db;
use crate::model::{now, Port, PortId};
use crate::policy::{port_target, Caller};
use crate::NetworkService;

const UPDATE_ATTRIBUTES: &[&str] = &[
    "name",
    "description",
    "admin_state_up",
    "device_id",
    "device_owner",
    "mac_address",
    "fixed_ips",
    "security_groups",
    "port_security_enabled",
    "allowed_address_pairs",
    "binding:host_id",
    "binding:vnic_type",
    "binding:profile",
    "id",
    "network_id",
    "project_id",
    "tenant_id",
    "status",
    "created_at",
    "updated_at",
    "revision_number",
];
const READ_ONLY: &[&str] = &[
    "id",
    "network_id",
    "project_id",
    "tenant_id",
    "status",
    "created_at",
    "updated_at",
    "revision_number",
];

fn apply_plain_fields(port: &mut Port, object: &Map<String, Value>) -> Result<(), ApiError> {
    if let Some(name) = body::string(object, "name", MAX_NAME_LEN)? {
        port.name = name;
    }
    if let Some(description) = body::string(object, "description", MAX_NAME_LEN)? {
        port.description = description;
    }
    if let Some(admin_state_up) = body::boolean(object, "admin_state_up")? {
        port.admin_state_up = admin_state_up;
    }
    if let Some(device_id) = body::string(object, "device_id", 255)? {
        port.device_id = device_id;
    }
    if let Some(device_owner) = body::string(object, "device_owner", 255)? {
        port.device_owner = device_owner;
    }
    if let Some(host_id) = body::string(object, "binding:host_id", 255)? {
        port.binding.host_id = host_id;
    }
    if let Some(vnic_type) = input::vnic_type(object)? {
        port.binding.vnic_type = vnic_type;
    }
    if let Some(profile) = input::profile(object)? {
        port.binding.profile = profile;
    }
    Ok(())
}

// A bound port's MAC is programmed into its host, so Neutron refuses to
// change it until the port is unbound.
fn apply_mac(port: &mut Port, object: &Map<String, Value>) -> Result<Option<String>, ApiError> {
    let Some(text) = body::string(object, "mac_address", 32)? else {
        return Ok(None);
    };
    let mac = input::mac_address(&text)?;
    if mac == port.mac_address {
        return Ok(None);
    }
    let bound =
        port.binding.vif_type != UNBOUND && port.binding.vif_type != binding::VIF_BINDING_FAILED;
    if bound {
        return Err(ApiError::conflict(format!(
            "Unable to complete operation on port {}, port is already bound, port type: {}, \
             old_mac {}, new_mac {mac}.",
            port.id, port.binding.vif_type, port.mac_address
        ))
        .with_type("PortBound"));
    }
    port.mac_address = mac.clone();
    Ok(Some(mac))
}

/// Binds `port` to its new `binding:host_id` (or unbinds it for an empty
/// one). A failed binding is stored as `binding_failed`, as Neutron does,
/// and the request still succeeds.
pub(crate) async fn bind(
    state: &NetworkService,
    port: &mut Port,
    network: &crate::model::Network,
) -> Result<(), ApiError> {
    let host = port.binding.host_id.clone();
    let outcome = if host.is_empty() {
        Ok(())
    } else {
        binding::evaluate(state, network, &host)
            .await
            .map_err(db_error)?
    };
    if let Err(reason) = &outcome {
        tracing::warn!(port_id = %port.id, host = %host, reason = %reason, "port binding failed");
    }
    binding::apply(port, &host, &outcome);
    Ok(())
}

/// Applies `port_security_enabled`, `security_groups` and
/// `allowed_address_pairs`, with Neutron's rules on how they combine.
async fn apply_security(
    state: &NetworkService,
    caller: &Caller,
    port: &mut Port,
    object: &Map<String, Value>,
) -> Result<(), ApiError> {
    if let Some(enabled) = body::boolean(object, "port_security_enabled")? {
        port.port_security_enabled = enabled;
    }
    let requested_groups = body::string_list(object, "security_groups")?;
    if let Some(requested) = requested_groups {
        port.security_groups =
            port_rules::security_groups_for(state, caller, Some(requested), port).await?;
    } else if !port.port_security_enabled && !port.security_groups.is_empty() {
        return Err(ApiError::conflict(
            "Port has security group associated. Cannot disable port security or ip address \
             until security group is removed.",
        )
        .with_type("PortSecurityPortHasSecurityGroup"));
    }
    if let Some(pairs) = input::address_pairs(object, &port.mac_address)? {
        port.allowed_address_pairs = pairs;
    }
    port_rules::check_address_pairs_allowed(port)
}

pub async fn update(
    State(state): State<NetworkState>,
    caller: Caller,
    Path(id): Path<PortId>,
    NeutronBody(request): NeutronBody,
) -> Result<Json<Value>, ApiError> {
    let object = body::resource_object(request, "port", UPDATE_ATTRIBUTES)?;
    body::reject_read_only(&object, READ_ONLY)?;
    let (port, network) = update_port(&state, &caller, &id, &object, |_| Ok(())).await?;
    Ok(Json(
        json!({ "port": ports::render(&state, &caller, &port, &network) }),
    ))
}

/// Applies the request `object` (the attributes under `"port"`) to port
/// `id` as `caller`. `check` sees the port as loaded, before any change,
/// and may reject the update; the port is stored only if no other request
/// changed it since it was loaded, so what `check` saw still holds. The
/// API and in-process callers both update ports here.
pub async fn update_port(
    state: &NetworkService,
    caller: &Caller,
    id: &PortId,
    object: &Map<String, Value>,
    check: impl FnOnce(&Port) -> Result<(), ApiError>,
) -> Result<(Port, crate::model::Network), ApiError> {
    let requests = input::fixed_ips(object)?;
    let (mut port, network) = ports::find_visible(state, caller, id).await?;
    let target = port_target(&port, &network);
    caller.authorize(&state.policy, "update_port", &target)?;
    port_rules::authorize_attributes(state, caller, "update_port", object, &target)?;
    check(&port)?;

    apply_plain_fields(&mut port, object)?;
    let new_mac = apply_mac(&mut port, object)?;
    if object.contains_key("binding:host_id") {
        bind(state, &mut port, &network).await?;
    }
    if let Some(mac) = &new_mac {
        if db::ports::mac_taken(state.pool(), &port.network_id, mac)
            .await
            .map_err(db_error)?
        {
            return Err(ports::mac_in_use(&port.network_id, mac));
        }
    }
    apply_security(state, caller, &mut port, object).await?;
    addresses::check_subnets_exist(state, requests.as_deref()).await?;

    port.revision_number += 1;
    port.updated_at = now();
    store_update(state, &mut port, requests.as_deref(), new_mac.is_some()).await?;
    tracing::info!(port_id = %port.id, revision_number = port.revision_number, "updated port");
    Ok((port, network))
}

/// Stores the updated `port`. New `requests` replace its fixed IPs: an
/// address the port has may be kept. The choice is made in the transaction
/// that stores it, after the network's row lock, and made again when a
/// concurrent request took an address first anyway.
async fn store_update(
    state: &NetworkService,
    port: &mut Port,
    requests: Option<&[input::IpRequest]>,
    mac_changed: bool,
) -> Result<(), ApiError> {
    let previous_fixed_ips = port.fixed_ips.clone();
    for _ in 0..ATTEMPTS {
        let mut tx = state.pool().begin().await.map_err(db_error)?;
        if !db::networks::lock(&mut *tx, &port.network_id)
            .await
            .map_err(db_error)?
        {
            return Err(ports::not_found(&port.id));
        }
        if let Some(requests) = requests {
            let subnets = db::subnets::list_for_network(&mut *tx, &port.network_id)
                .await
                .map_err(db_error)?;
            let mut used = addresses::load_used(&mut tx, &subnets, &previous_fixed_ips)
                .await
                .map_err(db_error)?;
            port.fixed_ips = addresses::plan(
                &port.network_id,
                &subnets,
                Some(requests),
                &port.mac_address,
                &mut used,
            )?;
        }
        let written = match write(&mut tx, port, requests.is_some()).await {
            Ok(true) => tx.commit().await.map(|()| true),
            other => other,
        };
        match written {
            Ok(true) => return Ok(()),
            Ok(false) => {
                return Err(ApiError::conflict(format!(
                    "Port {} was changed by another request; retry the update.",
                    port.id
                ))
                .with_type("Conflict"))
            }
            Err(error) if ports::is_retryable(&error) => {
                port_rules::check_groups_exist(state, &port.security_groups).await?;
                let mac_taken =
                    db::ports::mac_taken(state.pool(), &port.network_id, &port.mac_address)
                        .await
                        .map_err(db_error)?;
                if mac_changed && mac_taken {
                    return Err(ports::mac_in_use(&port.network_id, &port.mac_address));
                }
            }
            Err(error) => return Err(db_error(error)),
        }
    }
    Err(ports::gave_up(&port.id))
}

async fn write(
    db: &mut sqlx::AnyConnection,
    port: &Port,
    new_addresses: bool,
) -> Result<bool, sqlx::Error> {
    if !db::ports::update(&mut *db, port).await? {
        return Ok(false);
    }
    if new_addresses {
        db::ports::delete_addresses(&mut *db, &port.id).await?;
        db::ports::insert_addresses(db, port, &port.fixed_ips).await?;
    }
    db::ports::set_security_groups(db, &port.id, &port.security_groups).await?;
    Ok(true)
}
