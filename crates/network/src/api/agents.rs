//! `/v2.0/agents`: the network agents of the hosts, for admins: list, show,
//! `admin_state_up` changes and deletion. Agents register and send
//! heartbeats through `NetworkService::report_agent`, not through this API.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use oxstack_core::ApiError;
use serde_json::{json, Value};

use super::body::{self, NeutronBody};
use super::query::{select_fields, ListQuery, QueryPairs};
use super::{db_error, NetworkState};
use crate::agents::Agent;
use crate::db;
use crate::model::now;
use crate::policy::Caller;
use crate::NetworkService;

const SORTABLE: &[&str] = &[
    "id",
    "host",
    "agent_type",
    "binary",
    "alive",
    "admin_state_up",
];

pub fn routes() -> Router<NetworkState> {
    Router::new().route("/v2.0/agents", get(list)).route(
        "/v2.0/agents/{agent_id}",
        get(show).put(update).delete(remove),
    )
}

// Neutron writes agent times as `2017-09-12 19:39:56`, without a zone.
fn agent_time(unix: i64) -> String {
    DateTime::<Utc>::from_timestamp(unix, 0)
        .unwrap_or_default()
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

pub fn render(state: &NetworkService, agent: &Agent) -> Value {
    json!({
        "id": agent.id,
        "agent_type": agent.agent_type,
        "binary": agent.binary,
        "host": agent.host,
        "topic": agent.topic,
        "admin_state_up": agent.admin_state_up,
        "alive": agent.is_alive(now(), state.config.agent_down_time),
        "availability_zone": null,
        "description": null,
        "configurations": agent.configurations,
        "resources_synced": null,
        "resource_versions": {},
        "created_at": agent_time(agent.created_at),
        "started_at": agent_time(agent.started_at),
        "heartbeat_timestamp": agent_time(agent.heartbeat_at),
    })
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("Agent {id} could not be found.")).with_type("AgentNotFound")
}

async fn list(
    State(state): State<NetworkState>,
    caller: Caller,
    QueryPairs(pairs): QueryPairs,
) -> Result<Json<Value>, ApiError> {
    // Neutron filters lists by policy: a caller who may not see agents
    // gets an empty list, not a 403.
    let visible = caller
        .authorize(&state.policy, "get_agent", &json!({}))
        .is_ok();
    let query = ListQuery::parse(pairs, SORTABLE)?;
    let agents = if visible {
        db::agents::list(state.pool()).await.map_err(db_error)?
    } else {
        Vec::new()
    };
    let items: Vec<Value> = agents.iter().map(|agent| render(&state, agent)).collect();
    Ok(Json(query.respond(
        "agents",
        &state.v2_url("agents"),
        items,
    )?))
}

async fn show(
    State(state): State<NetworkState>,
    caller: Caller,
    Path(id): Path<String>,
    QueryPairs(pairs): QueryPairs,
) -> Result<Json<Value>, ApiError> {
    caller.authorize(&state.policy, "get_agent", &json!({}))?;
    let agent = db::agents::get(state.pool(), &id)
        .await
        .map_err(db_error)?
        .ok_or_else(|| not_found(&id))?;
    let fields: Vec<String> = pairs
        .into_iter()
        .filter(|(k, _)| k == "fields")
        .map(|(_, v)| v)
        .collect();
    Ok(Json(
        json!({ "agent": select_fields(render(&state, &agent), &fields) }),
    ))
}

async fn update(
    State(state): State<NetworkState>,
    caller: Caller,
    Path(id): Path<String>,
    NeutronBody(request): NeutronBody,
) -> Result<Json<Value>, ApiError> {
    caller.authorize(&state.policy, "update_agent", &json!({}))?;
    let object = body::resource_object(request, "agent", &["admin_state_up"])?;
    if let Some(admin_state_up) = body::boolean(&object, "admin_state_up")? {
        let updated = db::agents::set_admin_state(state.pool(), &id, admin_state_up)
            .await
            .map_err(db_error)?;
        if !updated {
            return Err(not_found(&id));
        }
        tracing::info!(agent_id = %id, admin_state_up, "updated network agent");
    }
    let agent = db::agents::get(state.pool(), &id)
        .await
        .map_err(db_error)?
        .ok_or_else(|| not_found(&id))?;
    Ok(Json(json!({ "agent": render(&state, &agent) })))
}

async fn remove(
    State(state): State<NetworkState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.authorize(&state.policy, "delete_agent", &json!({}))?;
    if !db::agents::delete(state.pool(), &id)
        .await
        .map_err(db_error)?
    {
        return Err(not_found(&id));
    }
    tracing::info!(agent_id = %id, "deleted network agent");
    Ok(StatusCode::NO_CONTENT)
}
