//! `/servers`: list (summary and detail, with Nova's filters, sorting and
//! paging), show, update and delete. Create is in [`super::servers_create`],
//! actions in [`super::server_actions`].

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use oxstack_core::microversion::Microversion;
use oxstack_core::pagination::{next_link, paginate, PageRequest};
use oxstack_core::ApiError;
use serde_json::{json, Value};

use super::server_filters::{self, Matcher};
use super::server_input;
use super::server_security_groups;
use super::server_view::{self, Shown};
use super::{db_error, parse_body, ComputeState, QueryPairs, Version};
use crate::external::PortInfo;
use crate::policy::Caller;
use crate::server::state::{self as server_state, Request};
use crate::server::store::{self, ListScope, Modified};
use crate::server::{actions, Server};

/// Nova's default `[api] max_limit`, the maximum page size a list returns.
pub const MAX_LIMIT: usize = 1000;

pub fn routes() -> Router<ComputeState> {
    Router::new()
        .route("/servers", get(list).post(super::servers_create::create))
        .route("/servers/detail", get(detail))
        .route("/servers/{id}", get(show).put(update).delete(delete))
        .route("/servers/{id}/action", post(super::server_actions::action))
}

/// Returns the id instance actions are recorded under: the request's
/// `x-openstack-request-id`, or a new one when the request came in without
/// the request-id layer (in-process callers).
pub fn request_id(caller: &Caller) -> String {
    if caller.ctx.request_id.is_empty() {
        format!("req-{}", uuid::Uuid::new_v4())
    } else {
        caller.ctx.request_id.clone()
    }
}

/// Returns the policy target of `server`.
pub fn target(server: &Server) -> Value {
    json!({"project_id": server.project_id, "user_id": server.user_id})
}

/// Loads server `id` if the caller may read it. Admins can read every
/// server, and others only their project's. As in Nova, another project's
/// server gets the same 404 as a missing one.
pub async fn load(state: &ComputeState, caller: &Caller, id: &str) -> Result<Server, ApiError> {
    let not_found = || ApiError::not_found(format!("Instance {id} could not be found."));
    let server = store::get(state.pool(), id)
        .await
        .map_err(db_error)?
        .ok_or_else(not_found)?;
    if caller.is_admin() || server.project_id == caller.project_id() {
        Ok(server)
    } else {
        Err(not_found())
    }
}

/// Returns the policy target that Nova passes to the rules that check only
/// the project (metadata, tags, addresses, interfaces).
pub fn project_target(server: &Server) -> Value {
    json!({"project_id": server.project_id})
}

/// Checks policy `rule` for `server`. Every server sub-resource and action
/// checks its rule only after loading the server, so a missing server is a
/// 404 rather than a 403.
pub fn authorize_server(
    state: &ComputeState,
    caller: &Caller,
    server: &Server,
    rule: &str,
    target: fn(&Server) -> Value,
) -> Result<(), ApiError> {
    caller.authorize(&state.policy, rule, target(server))
}

/// Loads server `id` as [`load`] does, then checks policy `rule` on it.
pub async fn load_authorized(
    state: &ComputeState,
    caller: &Caller,
    id: &str,
    rule: &str,
    target: fn(&Server) -> Value,
) -> Result<Server, ApiError> {
    let server = load(state, caller, id).await?;
    authorize_server(state, caller, &server, rule, target)?;
    Ok(server)
}

/// Returns the ports of `server`. When the network service fails, it logs
/// the error and returns no ports, so the request still succeeds with empty
/// addresses, as Nova shows a server whose network information it cannot refresh.
pub async fn ports_of(state: &ComputeState, server: &Server) -> Vec<PortInfo> {
    let id = &server.id;
    match state
        .backends
        .networks
        .ports_for_device(id, &server.project_id)
        .await
    {
        Ok(ports) => ports,
        Err(error) => {
            tracing::warn!(server_id = %id, error = %error, "could not read the server's ports");
            Vec::new()
        }
    }
}

/// Decides the policy-dependent parts of the detailed view of `server`
/// for `caller`, and reads the host's status when policy lets the caller see it.
pub async fn shown_with_host(
    state: &ComputeState,
    caller: &Caller,
    server: &Server,
    full: bool,
    server_groups: bool,
) -> Shown {
    let mut shown = shown_for(state, caller, &server.project_id, full, server_groups);
    let target = json!({"project_id": server.project_id});
    if full
        && caller
            .authorize(
                &state.policy,
                "os_compute_api:servers:show:host_status",
                target,
            )
            .is_ok()
    {
        shown.host_status = Some(host_status(state, server).await);
    }
    shown
}

/// Decides the policy-dependent parts of the detailed view for `caller`,
/// without `host_status`.
pub fn shown_for(
    state: &ComputeState,
    caller: &Caller,
    project_id: &str,
    full: bool,
    server_groups: bool,
) -> Shown {
    let allowed = |rule: &str| {
        caller
            .authorize(&state.policy, rule, json!({"project_id": project_id}))
            .is_ok()
    };
    Shown {
        full,
        extended_attributes: full && allowed("os_compute_api:os-extended-server-attributes"),
        host_status: None,
        server_groups,
        flavor_extra_specs: allowed("os_compute_api:servers:show:flavor-extra-specs"),
        fault_details: caller.is_admin(),
    }
}

/// Renders `server` as `GET /servers/{id}` does at `version`.
pub async fn render_full(
    state: &ComputeState,
    caller: &Caller,
    server: &Server,
    version: Microversion,
    server_groups: bool,
) -> Value {
    let ports = ports_of(state, server).await;
    let shown = shown_with_host(state, caller, server, true, server_groups).await;
    let mut server = server_security_groups::with_port_groups(state, server, &ports).await;
    if server_groups {
        server.server_group = existing_group(state, &server).await;
    }
    server_view::detail(state, &server, &ports, version, shown)
}

/// Returns the server group of `server` if the group still exists. As in
/// Nova, a server no longer shows a group that was deleted.
async fn existing_group(state: &ComputeState, server: &Server) -> Option<String> {
    let id = server.server_group.as_deref()?;
    match crate::server_group::get(state.pool(), id).await {
        Ok(group) => group.map(|group| group.id),
        Err(error) => {
            tracing::warn!(server_id = %server.id, server_group_id = %id, error = %error, "could not read the server's group");
            None
        }
    }
}

/// Returns Nova's `host_status` for `server`: `UP`, `DOWN` (forced down or no
/// heartbeat within `service_down_time`), `MAINTENANCE` (disabled), `UNKNOWN`
/// (no such service, or reading it failed), or "" for a server without a host.
pub async fn host_status(state: &ComputeState, server: &Server) -> &'static str {
    let Some(host) = &server.host else { return "" };
    let row: Result<Option<(i64, i64, Option<i64>)>, _> = sqlx::query_as(
        "SELECT disabled, forced_down, last_seen_up FROM compute_services \
         WHERE host = $1 AND binary_name = 'nova-compute'",
    )
    .bind(host)
    .fetch_optional(state.pool())
    .await;
    match row {
        Ok(Some((disabled, forced_down, last_seen_up))) => {
            let now = chrono::Utc::now().timestamp();
            let down_after = i64::try_from(state.config.service_down_time).unwrap_or(i64::MAX);
            let up = forced_down == 0 && last_seen_up.is_some_and(|seen| now - seen <= down_after);
            if !up {
                "DOWN"
            } else if disabled != 0 {
                "MAINTENANCE"
            } else {
                "UP"
            }
        }
        Ok(None) => "UNKNOWN",
        Err(error) => {
            tracing::warn!(server_id = %server.id, error = %error, "could not read the host's service");
            "UNKNOWN"
        }
    }
}

async fn list(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
    query: QueryPairs,
) -> Result<Json<Value>, ApiError> {
    let target = json!({"project_id": caller.project_id()});
    caller.authorize(&state.policy, "os_compute_api:servers:index", target)?;
    list_servers(&state, &caller, version, &query.0, false)
        .await
        .map(Json)
}

async fn detail(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
    query: QueryPairs,
) -> Result<Json<Value>, ApiError> {
    let target = json!({"project_id": caller.project_id()});
    caller.authorize(&state.policy, "os_compute_api:servers:detail", target)?;
    list_servers(&state, &caller, version, &query.0, true)
        .await
        .map(Json)
}

async fn list_servers(
    state: &ComputeState,
    caller: &Caller,
    version: Microversion,
    pairs: &[(String, String)],
    is_detail: bool,
) -> Result<Value, ApiError> {
    let allow_all = caller
        .authorize(
            &state.policy,
            "os_compute_api:servers:allow_all_filters",
            json!({"project_id": caller.project_id()}),
        )
        .is_ok();
    let query = server_filters::parse(pairs, version, allow_all, caller.is_admin())?;
    let matcher = Matcher::new(&query)?;
    let mut page = PageRequest::from_query(pairs, MAX_LIMIT)?;
    page.limit = Some(page.limit.unwrap_or(MAX_LIMIT));

    let mut scope = ListScope {
        deleted: query.deleted != Some(false),
        ..ListScope::default()
    };
    if query.all_tenants {
        let rule = if is_detail {
            "os_compute_api:servers:detail:get_all_tenants"
        } else {
            "os_compute_api:servers:index:get_all_tenants"
        };
        caller.authorize(
            &state.policy,
            rule,
            json!({"project_id": caller.project_id()}),
        )?;
    } else {
        // Without all_tenants, Nova ignores project filters and lists only
        // the caller's project.
        scope.project_id = Some(caller.project_id().to_owned());
    }
    let candidates = store::list(state.pool(), &scope).await.map_err(db_error)?;

    let needs_ports = server_filters::needs_ports(&query);
    let mut selected = Vec::new();
    let mut ports_by_server = std::collections::HashMap::new();
    for server in candidates {
        let ports = if needs_ports {
            ports_of(state, &server).await
        } else {
            Vec::new()
        };
        if matcher.matches(&server, &ports) {
            if needs_ports {
                ports_by_server.insert(server.id.clone(), ports);
            }
            selected.push(server);
        }
    }
    server_filters::sort(&mut selected, &query.sort);
    let page_result = paginate(selected, &page, |s: &Server| s.id.as_str())?;

    let mut items = Vec::with_capacity(page_result.items.len());
    for server in &page_result.items {
        if !is_detail {
            items.push(server_view::summary(state, server));
            continue;
        }
        let ports = match ports_by_server.remove(&server.id) {
            Some(ports) => ports,
            None => ports_of(state, server).await,
        };
        let shown = shown_with_host(state, caller, server, true, false).await;
        let server = server_security_groups::with_port_groups(state, server, &ports).await;
        items.push(server_view::detail(state, &server, &ports, version, shown));
    }
    let mut body = json!({ "servers": items });
    if let Some(marker) = page_result.next_marker {
        let base = state.v21_url(if is_detail {
            "servers/detail"
        } else {
            "servers"
        });
        body["servers_links"] = json!([{"rel": "next", "href": next_link(&base, pairs, &marker)}]);
    }
    Ok(body)
}

async fn show(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let server =
        load_authorized(&state, &caller, &id, "os_compute_api:servers:show", target).await?;
    let body = render_full(&state, &caller, &server, version, version.at_least(2, 71)).await;
    Ok(Json(json!({ "server": body })))
}

async fn update(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    load_authorized(
        &state,
        &caller,
        &id,
        "os_compute_api:servers:update",
        target,
    )
    .await?;
    let update = server_input::parse_update(&parse_body(&body)?, version)?;

    let outcome = store::modify(state.pool(), &id, |server| {
        if let Some(name) = &update.name {
            server.name = name.clone();
        }
        if let Some(description) = &update.description {
            server.description = description.clone();
        }
        if let Some(ip) = &update.access_ipv4 {
            server.access_ipv4 = ip.clone();
        }
        if let Some(ip) = &update.access_ipv6 {
            server.access_ipv6 = ip.clone();
        }
        Ok::<(), ()>(())
    })
    .await
    .map_err(db_error)?;
    let server = match outcome {
        Modified::Saved(server) => server,
        Modified::NotFound | Modified::Refused(()) => {
            return Err(ApiError::not_found("Instance could not be found"));
        }
    };
    tracing::info!(server_id = %id, "server updated");

    // From 2.75, update returns the same view as show. Before 2.75, it
    // returns Nova's smaller view without the extension keys.
    let full = version.at_least(2, 75);
    let body = if full {
        render_full(&state, &caller, &server, version, version.at_least(2, 71)).await
    } else {
        let ports = ports_of(&state, &server).await;
        let shown = shown_for(
            &state,
            &caller,
            &server.project_id,
            false,
            version.at_least(2, 71),
        );
        server_view::detail(&state, &server, &ports, version, shown)
    };
    Ok(Json(json!({ "server": body })))
}

async fn delete(
    State(state): State<ComputeState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let server = load_authorized(
        &state,
        &caller,
        &id,
        "os_compute_api:servers:delete",
        target,
    )
    .await?;
    delete_server(&state, &caller, &server, Request::Delete).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Accepts a delete, where `request` is `Delete` or `ForceDelete`. It checks
/// the lock and task state, sets `deleting`, records the `delete` action and
/// hands the server to the conductor.
pub async fn delete_server(
    state: &ComputeState,
    caller: &Caller,
    server: &Server,
    request: Request,
) -> Result<(), ApiError> {
    let id = server.id.clone();
    let is_admin = caller.is_admin();
    let outcome = store::modify(state.pool(), &id, |server| {
        server_state::check(server, request, is_admin)?;
        server.task_state = Some(request.task_state());
        server.progress = 0;
        Ok::<(), server_state::Refusal>(())
    })
    .await
    .map_err(db_error)?;
    match outcome {
        Modified::Saved(_) => {}
        Modified::NotFound => return Err(ApiError::not_found("Instance could not be found")),
        Modified::Refused(refusal) => return Err(ApiError::conflict(refusal.message())),
    }
    let request_id = request_id(caller);
    actions::start(
        state.pool(),
        &id,
        &request_id,
        "delete",
        caller.user_id(),
        &server.project_id,
    )
    .await
    .map_err(db_error)?;
    tracing::info!(server_id = %id, "server delete accepted");
    state.start_delete(id, request_id);
    Ok(())
}
