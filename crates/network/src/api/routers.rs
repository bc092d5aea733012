//! `/v2.0/routers`: reading, creating, updating and deleting routers. The
//! gateway is in `router_gateway`, interfaces in `router_interfaces`.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router as Routes};
use oxstack_core::time::{from_unix, iso8601};
use oxstack_core::ApiError;
use serde_json::{json, Map, Value};

use super::body::{self, NeutronBody};
use super::networks::MAX_NAME_LEN;
use super::query::{select_fields, ListQuery, QueryPairs};
use super::router_gateway::{self as gateway, GatewayRequest};
use super::{db_error, router_interfaces, service_ports, NetworkState};
use crate::db;
use crate::model::{now, Port, PortId, Router, RouterId, ROUTER_INTERFACE};
use crate::policy::{router_target, Caller};
use crate::quota;
use crate::NetworkService;

const CREATE_ATTRIBUTES: &[&str] = &[
    "name",
    "description",
    "admin_state_up",
    "external_gateway_info",
    "project_id",
    "tenant_id",
    "distributed",
    "ha",
    "availability_zone_hints",
];
const UPDATE_ATTRIBUTES: &[&str] = &[
    "name",
    "description",
    "admin_state_up",
    "external_gateway_info",
    "routes",
    "distributed",
    "ha",
];
const SORTABLE: &[&str] = &[
    "id",
    "name",
    "status",
    "admin_state_up",
    "project_id",
    "tenant_id",
    "created_at",
    "updated_at",
    "revision_number",
    "description",
];

pub fn routes() -> Routes<NetworkState> {
    Routes::new()
        .route("/v2.0/routers", get(list).post(create))
        .route(
            "/v2.0/routers/{router_id}",
            get(show).put(update).delete(remove),
        )
        .route(
            "/v2.0/routers/{router_id}/add_router_interface",
            put(router_interfaces::add),
        )
        .route(
            "/v2.0/routers/{router_id}/remove_router_interface",
            put(router_interfaces::remove),
        )
}

pub fn render(router: &Router, gateway_port: Option<&Port>) -> Value {
    json!({
        "id": router.id,
        "name": router.name,
        "tenant_id": router.project_id,
        "project_id": router.project_id,
        "description": router.description,
        "admin_state_up": router.admin_state_up,
        "status": "ACTIVE",
        "external_gateway_info": gateway::render(router, gateway_port),
        "routes": [],
        "distributed": false,
        "ha": false,
        "flavor_id": null,
        "availability_zone_hints": [],
        "availability_zones": [],
        "tags": router.tags,
        "created_at": iso8601(from_unix(router.created_at)),
        "updated_at": iso8601(from_unix(router.updated_at)),
        "revision_number": router.revision_number,
    })
}

pub fn not_found(id: &RouterId) -> ApiError {
    ApiError::not_found(format!("Router {id} could not be found.")).with_type("RouterNotFound")
}

/// Loads a router the caller may see. Any other is `RouterNotFound`.
pub async fn find_visible(
    state: &NetworkService,
    caller: &Caller,
    id: &RouterId,
) -> Result<Router, ApiError> {
    let router = db::routers::get(state.pool(), id)
        .await
        .map_err(db_error)?
        .ok_or_else(|| not_found(id))?;
    if !caller.allows(&state.policy, "get_router", &router_target(&router)) {
        return Err(not_found(id));
    }
    Ok(router)
}

async fn gateway_port(state: &NetworkService, router: &Router) -> Result<Option<Port>, ApiError> {
    match &router.gateway {
        Some((_, port_id)) => db::ports::get(state.pool(), port_id)
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
    let routers = db::routers::list(state.pool()).await.map_err(db_error)?;
    let ports: HashMap<PortId, Port> = db::ports::list(state.pool())
        .await
        .map_err(db_error)?
        .into_iter()
        .map(|port| (port.id.clone(), port))
        .collect();
    let items: Vec<Value> = routers
        .iter()
        .filter(|router| caller.allows(&state.policy, "get_router", &router_target(router)))
        .map(|router| {
            let port = router.gateway.as_ref().and_then(|(_, id)| ports.get(id));
            render(router, port)
        })
        .collect();
    Ok(Json(query.respond(
        "routers",
        &state.v2_url("routers"),
        items,
    )?))
}

async fn show(
    State(state): State<NetworkState>,
    caller: Caller,
    Path(id): Path<RouterId>,
    QueryPairs(pairs): QueryPairs,
) -> Result<Json<Value>, ApiError> {
    let router = find_visible(&state, &caller, &id).await?;
    let port = gateway_port(&state, &router).await?;
    let fields: Vec<String> = pairs
        .into_iter()
        .filter(|(k, _)| k == "fields")
        .map(|(_, v)| v)
        .collect();
    let body = select_fields(render(&router, port.as_ref()), &fields);
    Ok(Json(json!({ "router": body })))
}

// Distributed and HA routers need agents this cloud does not run.
fn reject_unsupported(object: &Map<String, Value>) -> Result<(), ApiError> {
    for field in ["distributed", "ha"] {
        if body::boolean(object, field)? == Some(true) {
            return Err(gateway::unsupported(field));
        }
    }
    Ok(())
}

fn authorize_gateway(
    state: &NetworkService,
    caller: &Caller,
    action: &str,
    request: Option<&GatewayRequest>,
    target: &Value,
) -> Result<(), ApiError> {
    let Some(request) = request else {
        return Ok(());
    };
    caller.authorize(
        &state.policy,
        &format!("{action}:external_gateway_info"),
        target,
    )?;
    for field in gateway::admin_attributes(request) {
        caller.authorize(&state.policy, &format!("{action}:{field}"), target)?;
    }
    Ok(())
}

async fn create(
    State(state): State<NetworkState>,
    caller: Caller,
    NeutronBody(request): NeutronBody,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let object = body::resource_object(request, "router", CREATE_ATTRIBUTES)?;
    reject_unsupported(&object)?;
    let project_id = body::owner_project(&caller, &object)?;
    let gateway_request = gateway::parse(&object)?;
    let created = now();
    let mut router = Router {
        id: RouterId::generate(),
        project_id,
        name: body::string(&object, "name", MAX_NAME_LEN)?.unwrap_or_default(),
        description: body::string(&object, "description", MAX_NAME_LEN)?.unwrap_or_default(),
        admin_state_up: body::boolean(&object, "admin_state_up")?.unwrap_or(true),
        gateway: None,
        enable_snat: true,
        tags: Vec::new(),
        revision_number: 1,
        created_at: created,
        updated_at: created,
    };
    let target = router_target(&router);
    caller.authorize(&state.policy, "create_router", &target)?;
    authorize_gateway(
        &state,
        &caller,
        "create_router",
        gateway_request.as_ref(),
        &target,
    )?;

    let applied = match gateway_request {
        Some(request) => Some(gateway::apply(&state, &caller, &mut router, request).await?),
        None => None,
    };
    if let Err(error) = insert_checked(&state, &router).await {
        if let Some(applied) = applied {
            applied.undo(&state).await;
        }
        return Err(error);
    }
    tracing::info!(router_id = %router.id, project_id = %router.project_id, "created router");
    let port = applied.and_then(|applied| applied.created);
    Ok((
        StatusCode::CREATED,
        Json(json!({ "router": render(&router, port.as_ref()) })),
    ))
}

async fn insert_checked(state: &NetworkService, router: &Router) -> Result<(), ApiError> {
    let mut tx = state.pool().begin().await.map_err(db_error)?;
    quota::check(&mut tx, &router.project_id, quota::Resource::Router, 1).await?;
    db::routers::insert(&mut *tx, router)
        .await
        .map_err(db_error)?;
    tx.commit().await.map_err(db_error)
}

async fn update(
    State(state): State<NetworkState>,
    caller: Caller,
    Path(id): Path<RouterId>,
    NeutronBody(request): NeutronBody,
) -> Result<Json<Value>, ApiError> {
    let object = body::resource_object(request, "router", UPDATE_ATTRIBUTES)?;
    reject_unsupported(&object)?;
    if object
        .get("routes")
        .is_some_and(|routes| routes.as_array().is_none_or(|r| !r.is_empty()))
    {
        return Err(body::bad_request(
            "Static routes on routers (the extraroute extension) are not supported; send \
             'routes' as an empty list or omit it.",
        ));
    }
    let gateway_request = gateway::parse(&object)?;
    let mut router = find_visible(&state, &caller, &id).await?;
    let target = router_target(&router);
    caller.authorize(&state.policy, "update_router", &target)?;
    authorize_gateway(
        &state,
        &caller,
        "update_router",
        gateway_request.as_ref(),
        &target,
    )?;

    if let Some(name) = body::string(&object, "name", MAX_NAME_LEN)? {
        router.name = name;
    }
    if let Some(description) = body::string(&object, "description", MAX_NAME_LEN)? {
        router.description = description;
    }
    if let Some(admin_state_up) = body::boolean(&object, "admin_state_up")? {
        router.admin_state_up = admin_state_up;
    }
    let leaves_network = match (&gateway_request, &router.gateway) {
        (Some(GatewayRequest::Clear), Some(_)) => true,
        (Some(GatewayRequest::Set { network_id, .. }), Some((current, _))) => network_id != current,
        _ => false,
    };
    if leaves_network {
        gateway::check_removable(&state, &router).await?;
    }
    let applied = match gateway_request {
        Some(request) => Some(gateway::apply(&state, &caller, &mut router, request).await?),
        None => None,
    };

    router.revision_number += 1;
    router.updated_at = now();
    let stored = db::routers::update(state.pool(), &router).await;
    if !matches!(stored, Ok(true)) {
        if let Some(applied) = applied {
            applied.undo(&state).await;
        }
        return Err(match stored {
            Err(error) => db_error(error),
            _ => ApiError::conflict(format!(
                "Router {id} was changed by another request; retry the update."
            ))
            .with_type("Conflict"),
        });
    }
    if let Some(applied) = applied {
        applied.finish(&state).await?;
    }
    tracing::info!(router_id = %id, revision_number = router.revision_number, "updated router");
    let port = gateway_port(&state, &router).await?;
    Ok(Json(json!({ "router": render(&router, port.as_ref()) })))
}

async fn remove(
    State(state): State<NetworkState>,
    caller: Caller,
    Path(id): Path<RouterId>,
) -> Result<StatusCode, ApiError> {
    let router = find_visible(&state, &caller, &id).await?;
    caller.authorize(&state.policy, "delete_router", &router_target(&router))?;

    // The router row is locked first, as interface changes lock it, so the
    // check and the delete see the same interfaces.
    let mut tx = state.pool().begin().await.map_err(db_error)?;
    if !db::routers::lock(&mut *tx, &id).await.map_err(db_error)? {
        return Err(not_found(&id));
    }
    let interfaces = db::ports::ids_for_device(&mut *tx, id.as_str(), ROUTER_INTERFACE)
        .await
        .map_err(db_error)?;
    if !interfaces.is_empty() {
        return Err(ApiError::conflict(format!(
            "Router {id} still has ports; remove its {} interface(s) first.",
            interfaces.len()
        ))
        .with_type("RouterInUse"));
    }
    db::routers::delete(&mut *tx, &id).await.map_err(db_error)?;
    tx.commit().await.map_err(db_error)?;
    if let Some((_, port_id)) = &router.gateway {
        service_ports::delete(&state, port_id).await?;
    }
    tracing::info!(router_id = %id, "deleted router");
    Ok(StatusCode::NO_CONTENT)
}
