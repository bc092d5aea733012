//! `/os-hypervisors`: the compute nodes, their resources and usage, and
//! the servers on them. Admin-only, as in Nova.
//!
//! Microversions:
//! - 2.28 makes `cpu_info` an object.
//! - 2.33 pages lists with `limit` and `marker`.
//! - 2.53 shows uuids as ids and rejects unknown parameters. It replaces
//!   the `search` and `servers` routes with the
//!   `hypervisor_hostname_pattern` and `with_servers` parameters.
//! - 2.75 always shows `servers` when they were requested.
//! - 2.88 drops the resource fields and `statistics`, and adds `uptime` to
//!   the detail view.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use oxstack_core::microversion::Microversion;
use oxstack_core::pagination::{next_link, paginate, PageRequest};
use oxstack_core::ApiError;
use oxstack_placement::{PlacementError, ProviderId};
use serde_json::{json, Map, Value};

use super::{authorize_without_target, db_error, ComputeState, QueryPairs, Version};
use crate::host::records::{self, NodeRecord, ServiceRecord, COMPUTE_BINARY};
use crate::policy::Caller;
use crate::server::store::{self, ListScope};
use crate::server::Server;

const MAX_LIMIT: usize = 1000;

pub fn routes() -> Router<ComputeState> {
    Router::new()
        .route("/os-hypervisors", get(index))
        .route("/os-hypervisors/detail", get(detail))
        .route("/os-hypervisors/statistics", get(statistics))
        .route("/os-hypervisors/{id}", get(show))
        .route("/os-hypervisors/{id}/uptime", get(uptime))
        .route("/os-hypervisors/{id}/search", get(search))
        .route("/os-hypervisors/{id}/servers", get(servers))
}

/// Parses a boolean as Nova's strict parser accepts it.
pub(crate) fn parse_bool(name: &str, text: &str) -> Result<bool, ApiError> {
    match text.to_ascii_lowercase().as_str() {
        "1" | "t" | "true" | "on" | "y" | "yes" => Ok(true),
        "0" | "f" | "false" | "off" | "n" | "no" => Ok(false),
        _ => Err(ApiError::bad_request(format!(
            "Invalid input for query parameters {name}. Value: {text}. '{text}' is not a valid boolean; use true \
             or false."
        ))),
    }
}

/// Formats unix seconds as Nova writes service times (no zone suffix).
pub(crate) fn nova_time(seconds: i64) -> String {
    chrono::DateTime::from_timestamp(seconds, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S.000000")
        .to_string()
}

/// Rejects query parameters outside `allowed` and repeated ones, as Nova's
/// query schemas do from 2.53 (2.75 for `os-services`).
pub(crate) fn check_query(query: &[(String, String)], allowed: &[&str]) -> Result<(), ApiError> {
    let mut seen = Vec::new();
    for (key, _) in query {
        if !allowed.contains(&key.as_str()) {
            return Err(ApiError::bad_request(format!(
                "Invalid input for query parameters {key}. Additional properties are not allowed ('{key}' was \
                 unexpected)."
            )));
        }
        if seen.contains(&key) {
            return Err(ApiError::bad_request(format!(
                "Invalid input for query parameters {key}. Give {key} at most once."
            )));
        }
        seen.push(key);
    }
    Ok(())
}

fn query_value<'a>(query: &'a [(String, String)], key: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn version_not_found() -> ApiError {
    ApiError::not_found("The resource could not be found.")
}

/// A compute node with its service and what is used of it.
struct Hypervisor {
    node: NodeRecord,
    service: ServiceRecord,
    usage: BTreeMap<String, i64>,
    servers: Vec<Server>,
}

impl Hypervisor {
    fn used(&self, class: &str) -> i64 {
        self.usage.get(class).copied().unwrap_or(0)
    }

    fn memory_mb_used(&self) -> i64 {
        self.node.reserved_memory_mb + self.used("MEMORY_MB")
    }

    fn local_gb_used(&self) -> i64 {
        self.node.reserved_disk_gb + self.used("DISK_GB")
    }

    /// Servers doing something now, Nova's `current_workload`.
    fn current_workload(&self) -> i64 {
        self.servers
            .iter()
            .filter(|s| s.task_state.is_some())
            .count() as i64
    }

    fn id(&self, version: Microversion) -> Value {
        if version.at_least(2, 53) {
            json!(self.node.uuid)
        } else {
            json!(self.node.id)
        }
    }
}

/// Loads every compute node that still has its `nova-compute` service, in
/// id order, with usage from placement and the servers on its host.
async fn load_all(state: &ComputeState) -> Result<Vec<Hypervisor>, ApiError> {
    let nodes = records::list_nodes(state.pool()).await.map_err(db_error)?;
    let services: BTreeMap<String, ServiceRecord> = records::list_services(state.pool())
        .await
        .map_err(db_error)?
        .into_iter()
        .filter(|service| service.binary == COMPUTE_BINARY)
        .map(|service| (service.host.clone(), service))
        .collect();
    let mut hypervisors = Vec::with_capacity(nodes.len());
    for node in nodes {
        // Nova skips a node whose service was deleted.
        let Some(service) = services.get(&node.host).cloned() else {
            continue;
        };
        hypervisors.push(load_usage(state, node, service).await?);
    }
    Ok(hypervisors)
}

async fn load_usage(
    state: &ComputeState,
    node: NodeRecord,
    service: ServiceRecord,
) -> Result<Hypervisor, ApiError> {
    let usage = match state
        .backends
        .placement
        .provider_usages(&ProviderId(node.uuid.clone()))
        .await
    {
        Ok((_, usage)) => usage,
        Err(PlacementError::NotFound { .. }) => BTreeMap::new(),
        Err(error) => return Err(error.into()),
    };
    let scope = ListScope {
        host: Some(node.host.clone()),
        ..ListScope::default()
    };
    let servers = store::list(state.pool(), &scope).await.map_err(db_error)?;
    Ok(Hypervisor {
        node,
        service,
        usage,
        servers,
    })
}

fn render(
    state: &ComputeState,
    hypervisor: &Hypervisor,
    version: Microversion,
    detail: bool,
    with_servers: bool,
) -> Value {
    let node = &hypervisor.node;
    let service = &hypervisor.service;
    let now = chrono::Utc::now().timestamp();
    let mut body = Map::new();
    body.insert("id".into(), hypervisor.id(version));
    body.insert(
        "hypervisor_hostname".into(),
        json!(node.hypervisor_hostname),
    );
    body.insert(
        "state".into(),
        json!(if service.is_up(now, state.config.service_down_time) {
            "up"
        } else {
            "down"
        }),
    );
    body.insert(
        "status".into(),
        json!(if service.disabled {
            "disabled"
        } else {
            "enabled"
        }),
    );

    if detail {
        body.insert("hypervisor_type".into(), json!(node.hypervisor_type));
        body.insert("hypervisor_version".into(), json!(node.hypervisor_version));
        body.insert("host_ip".into(), json!(node.host_ip));
        let service_id = if version.at_least(2, 53) {
            json!(service.uuid)
        } else {
            json!(service.id)
        };
        body.insert(
            "service".into(),
            json!({"id": service_id, "host": node.host, "disabled_reason": service.disabled_reason}),
        );
    }

    if detail && !version.at_least(2, 88) {
        let memory_used = hypervisor.memory_mb_used();
        let disk_used = hypervisor.local_gb_used();
        body.insert("vcpus".into(), json!(node.vcpus));
        body.insert("memory_mb".into(), json!(node.memory_mb));
        body.insert("local_gb".into(), json!(node.local_gb));
        body.insert("vcpus_used".into(), json!(hypervisor.used("VCPU")));
        body.insert("memory_mb_used".into(), json!(memory_used));
        body.insert("local_gb_used".into(), json!(disk_used));
        body.insert("free_ram_mb".into(), json!(node.memory_mb - memory_used));
        body.insert("free_disk_gb".into(), json!(node.local_gb - disk_used));
        body.insert(
            "current_workload".into(),
            json!(hypervisor.current_workload()),
        );
        body.insert("running_vms".into(), json!(hypervisor.servers.len()));
        body.insert(
            "disk_available_least".into(),
            json!(node.local_gb - disk_used),
        );
        let cpu_info = json!({"arch": node.cpu_arch});
        if version.at_least(2, 28) {
            body.insert("cpu_info".into(), cpu_info);
        } else {
            body.insert("cpu_info".into(), json!(cpu_info.to_string()));
        }
    }

    if detail && version.at_least(2, 88) {
        body.insert(
            "uptime".into(),
            host_uptime().map_or(Value::Null, Value::String),
        );
    }

    // Servers are shown when requested and there are some. From 2.75, an
    // empty list is shown as well.
    if with_servers && (!hypervisor.servers.is_empty() || version.at_least(2, 75)) {
        let listed: Vec<Value> = hypervisor
            .servers
            .iter()
            .map(|server| json!({"name": server.name, "uuid": server.id}))
            .collect();
        body.insert("servers".into(), Value::Array(listed));
    }
    Value::Object(body)
}

/// The options of a list request.
struct ListOptions {
    page: PageRequest,
    pattern: Option<String>,
    with_servers: bool,
    paged: bool,
}

fn list_options(
    version: Microversion,
    query: &[(String, String)],
) -> Result<ListOptions, ApiError> {
    if version.at_least(2, 53) {
        check_query(
            query,
            &[
                "limit",
                "marker",
                "hypervisor_hostname_pattern",
                "with_servers",
            ],
        )?;
    }
    let paged = version.at_least(2, 33);
    let page = if paged {
        PageRequest::from_query(query, MAX_LIMIT)?
    } else {
        PageRequest::default()
    };
    let (pattern, with_servers) = if version.at_least(2, 53) {
        let pattern = query_value(query, "hypervisor_hostname_pattern").map(str::to_owned);
        let with_servers = query_value(query, "with_servers")
            .map(|v| parse_bool("with_servers", v))
            .transpose()?;
        (pattern, with_servers.unwrap_or(false))
    } else {
        (None, false)
    };
    if pattern.is_some() && (query_value(query, "limit").is_some() || page.marker.is_some()) {
        return Err(ApiError::bad_request(
            "Paging over hypervisors with the hypervisor_hostname_pattern query parameter is not supported.",
        ));
    }
    Ok(ListOptions {
        page,
        pattern,
        with_servers,
        paged,
    })
}

/// Keeps the hypervisors whose name contains `pattern`, as Nova matches it
/// (SQL `LIKE '%pattern%'`); none is a 404.
fn matching(hypervisors: Vec<Hypervisor>, pattern: &str) -> Result<Vec<Hypervisor>, ApiError> {
    let found: Vec<Hypervisor> = hypervisors
        .into_iter()
        .filter(|h| h.node.hypervisor_hostname.contains(pattern))
        .collect();
    if found.is_empty() {
        return Err(ApiError::not_found(format!(
            "No hypervisor matching '{pattern}' could be found."
        )));
    }
    Ok(found)
}

async fn list(
    state: &ComputeState,
    caller: &Caller,
    version: Microversion,
    query: &[(String, String)],
    detail: bool,
) -> Result<Json<Value>, ApiError> {
    let rule = if detail {
        "os_compute_api:os-hypervisors:list-detail"
    } else {
        "os_compute_api:os-hypervisors:list"
    };
    authorize_without_target(state, caller, rule)?;

    let options = list_options(version, query)?;
    let hypervisors = load_all(state).await?;
    let hypervisors = match &options.pattern {
        Some(pattern) => matching(hypervisors, pattern)?,
        None => hypervisors,
    };

    // The marker is the id as the microversion shows it.
    let ids: Vec<(String, Hypervisor)> = hypervisors
        .into_iter()
        .map(|h| {
            let id = match h.id(version) {
                Value::String(text) => text,
                other => other.to_string(),
            };
            (id, h)
        })
        .collect();
    let page = paginate(ids, &options.page, |(id, _)| id.as_str())?;

    let items: Vec<Value> = page
        .items
        .iter()
        .map(|(_, h)| render(state, h, version, detail, options.with_servers))
        .collect();
    let mut body = json!({"hypervisors": items});
    if let (true, Some(marker)) = (options.paged, page.next_marker) {
        let base = state.v21_url(if detail {
            "os-hypervisors/detail"
        } else {
            "os-hypervisors"
        });
        body["hypervisors_links"] =
            json!([{"rel": "next", "href": next_link(&base, query, &marker)}]);
    }
    Ok(Json(body))
}

async fn index(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
    query: QueryPairs,
) -> Result<Json<Value>, ApiError> {
    list(&state, &caller, version, &query.0, false).await
}

async fn detail(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
    query: QueryPairs,
) -> Result<Json<Value>, ApiError> {
    list(&state, &caller, version, &query.0, true).await
}

/// Finds the hypervisor `id`: a uuid from 2.53 (anything else is a 400),
/// an integer before (anything else is a 404).
async fn find(
    state: &ComputeState,
    version: Microversion,
    id: &str,
) -> Result<Hypervisor, ApiError> {
    let not_found =
        || ApiError::not_found(format!("Hypervisor with ID '{id}' could not be found."));
    if version.at_least(2, 53) {
        if uuid::Uuid::parse_str(id).is_err() {
            return Err(ApiError::bad_request(format!("Invalid uuid {id}")));
        }
    } else if id.parse::<i64>().is_err() {
        return Err(not_found());
    }
    let hypervisors = load_all(state).await?;
    hypervisors
        .into_iter()
        .find(|h| {
            if version.at_least(2, 53) {
                h.node.uuid.eq_ignore_ascii_case(id)
            } else {
                h.node.id.to_string() == id
            }
        })
        .ok_or_else(not_found)
}

async fn show(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
    Path(id): Path<String>,
    query: QueryPairs,
) -> Result<Json<Value>, ApiError> {
    authorize_without_target(&state, &caller, "os_compute_api:os-hypervisors:show")?;
    let with_servers = if version.at_least(2, 53) {
        check_query(&query.0, &["with_servers"])?;
        query_value(&query.0, "with_servers")
            .map(|v| parse_bool("with_servers", v))
            .transpose()?
            .unwrap_or(false)
    } else {
        false
    };
    let hypervisor = find(&state, version, &id).await?;
    Ok(Json(
        json!({"hypervisor": render(&state, &hypervisor, version, true, with_servers)}),
    ))
}

/// Returns this machine's `uptime` line (`" 10:00:00 up 2 days,  3:04,
/// 0 users,  load average: 0.10, 0.20, 0.30"`), which Nova's libvirt
/// driver reports; `None` where /proc cannot be read.
fn host_uptime() -> Option<String> {
    let uptime = std::fs::read_to_string("/proc/uptime").ok()?;
    let seconds = uptime.split_whitespace().next()?.parse::<f64>().ok()? as u64;
    let loadavg = std::fs::read_to_string("/proc/loadavg").ok()?;
    let loads: Vec<&str> = loadavg.split_whitespace().take(3).collect();
    let days = seconds / 86_400;
    let hours = (seconds % 86_400) / 3600;
    let minutes = (seconds % 3600) / 60;
    let up = match days {
        0 => format!("{hours:2}:{minutes:02}"),
        1 => format!("1 day, {hours:2}:{minutes:02}"),
        n => format!("{n} days, {hours:2}:{minutes:02}"),
    };
    let clock = chrono::Local::now().format("%H:%M:%S");
    Some(format!(
        " {clock} up {up},  0 users,  load average: {}",
        loads.join(", ")
    ))
}

async fn uptime(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if version.at_least(2, 88) {
        return Err(version_not_found());
    }
    authorize_without_target(&state, &caller, "os_compute_api:os-hypervisors:uptime")?;
    let hypervisor = find(&state, version, &id).await?;
    if state.driver_for(&hypervisor.node.host).is_none() {
        return Err(ApiError::bad_request(format!(
            "Compute service of {} is unavailable at this time.",
            hypervisor.node.host
        )));
    }
    let Some(uptime) = host_uptime() else {
        return Err(ApiError::new(
            oxstack_core::ErrorKind::NotImplemented,
            "Action not supported on this host.",
        ));
    };
    let mut view = render(&state, &hypervisor, version, false, false);
    if let Some(object) = view.as_object_mut() {
        object.insert("uptime".into(), json!(uptime));
    }
    Ok(Json(json!({"hypervisor": view})))
}

/// `GET /os-hypervisors/{pattern}/search` and `/servers`, before 2.53.
async fn by_pattern(
    state: &ComputeState,
    caller: &Caller,
    version: Microversion,
    pattern: &str,
    with_servers: bool,
) -> Result<Json<Value>, ApiError> {
    if version.at_least(2, 53) {
        return Err(version_not_found());
    }
    let rule = if with_servers {
        "os_compute_api:os-hypervisors:servers"
    } else {
        "os_compute_api:os-hypervisors:search"
    };
    authorize_without_target(state, caller, rule)?;
    let hypervisors = matching(load_all(state).await?, pattern)?;
    let items: Vec<Value> = hypervisors
        .iter()
        .map(|h| render(state, h, version, false, with_servers))
        .collect();
    Ok(Json(json!({"hypervisors": items})))
}

async fn search(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
    Path(pattern): Path<String>,
) -> Result<Json<Value>, ApiError> {
    by_pattern(&state, &caller, version, &pattern, false).await
}

async fn servers(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
    Path(pattern): Path<String>,
) -> Result<Json<Value>, ApiError> {
    by_pattern(&state, &caller, version, &pattern, true).await
}

async fn statistics(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
) -> Result<Json<Value>, ApiError> {
    if version.at_least(2, 88) {
        return Err(version_not_found());
    }
    authorize_without_target(&state, &caller, "os_compute_api:os-hypervisors:statistics")?;
    let hypervisors = load_all(&state).await?;
    let mut totals: BTreeMap<&str, i64> = BTreeMap::new();
    for h in &hypervisors {
        let memory_used = h.memory_mb_used();
        let disk_used = h.local_gb_used();
        let values = [
            ("vcpus", h.node.vcpus),
            ("memory_mb", h.node.memory_mb),
            ("local_gb", h.node.local_gb),
            ("vcpus_used", h.used("VCPU")),
            ("memory_mb_used", memory_used),
            ("local_gb_used", disk_used),
            ("free_ram_mb", h.node.memory_mb - memory_used),
            ("free_disk_gb", h.node.local_gb - disk_used),
            ("current_workload", h.current_workload()),
            ("running_vms", h.servers.len() as i64),
            ("disk_available_least", h.node.local_gb - disk_used),
        ];
        for (key, value) in values {
            *totals.entry(key).or_insert(0) += value;
        }
    }
    let mut body = Map::new();
    body.insert("count".into(), json!(hypervisors.len()));
    for key in [
        "vcpus",
        "memory_mb",
        "local_gb",
        "vcpus_used",
        "memory_mb_used",
        "local_gb_used",
        "free_ram_mb",
        "free_disk_gb",
        "current_workload",
        "running_vms",
        "disk_available_least",
    ] {
        body.insert(key.into(), json!(totals.get(key).copied().unwrap_or(0)));
    }
    Ok(Json(json!({"hypervisor_statistics": body})))
}
