//! `os-simple-tenant-usage`: per-project usage (hours, and vCPU, RAM and
//! disk hours) of the servers that ran during a period, computed from the
//! server records as Nova computes it from its instances table. Deleted
//! servers count for the time between their launch and their termination.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, NaiveDateTime, Utc};
use oxstack_core::pagination::{next_link, paginate, PageRequest};
use oxstack_core::ApiError;
use serde_json::{json, Map, Value};

use super::server_view::micros_time;
use super::servers::MAX_LIMIT;
use super::{db_error, ComputeState, QueryPairs, Version};
use crate::policy::Caller;
use crate::server::store::{self, ListScope};
use crate::server::Server;

pub fn routes() -> Router<ComputeState> {
    Router::new()
        .route("/os-simple-tenant-usage", get(index))
        .route("/os-simple-tenant-usage/{tenant_id}", get(show))
}

/// The formats Nova accepts for `start` and `end`, all read as UTC.
const TIME_FORMATS: &[&str] = &[
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f",
];

/// The reporting period and options of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    /// Unix microseconds.
    pub start: i64,
    /// Unix microseconds; never later than the time of the request.
    pub stop: i64,
    /// `detailed=1`: list each server's usage.
    pub detailed: bool,
}

/// Parses one `start`/`end` value in one of Nova's formats.
pub fn parse_time(text: &str) -> Option<i64> {
    TIME_FORMATS.iter().find_map(|format| {
        NaiveDateTime::parse_from_str(text, format)
            .ok()
            .map(|naive| naive.and_utc().timestamp_micros())
    })
}

/// Reads `start`, `end` and `detailed` as Nova does, except for the
/// spellings of `detailed` noted below. A missing time is now, the first
/// value of a repeated key counts, and a start that is not before the end
/// is a 400. An end in the future is cut to now.
pub fn parse_period(pairs: &[(String, String)], now: DateTime<Utc>) -> Result<Period, ApiError> {
    let first = |key: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let now = now.timestamp_micros();
    let time = |key: &str| -> Result<Option<i64>, ApiError> {
        match first(key) {
            None | Some("") => Ok(None),
            Some(text) => parse_time(text).map(Some).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "Invalid {key} time '{text}': use the format YYYY-MM-DDTHH:MM:SS with optional .ffffff microseconds."
                ))
            }),
        }
    };
    let start = time("start")?;
    let end = time("end")?;
    // Nova reads "now" twice when both are missing, so its start is a few
    // microseconds before its end. A period with no bound given passes.
    if (start.is_some() || end.is_some()) && start.unwrap_or(now) >= end.unwrap_or(now) {
        return Err(ApiError::bad_request(
            "Invalid start time. The start time cannot occur after the end time.",
        ));
    }
    Ok(Period {
        start: start.unwrap_or(now),
        stop: end.unwrap_or(now).min(now),
        // Nova reads only `1` as true, but openstacksdk 4.18, which
        // `openstack usage list` uses, sends `detailed=True`, so against Nova
        // its Servers column stays empty. Boolean spellings count as true here.
        detailed: first("detailed").is_some_and(|value| {
            matches!(
                value.to_ascii_lowercase().as_str(),
                "1" | "true" | "yes" | "on"
            )
        }),
    })
}

/// Returns the hours `server` ran within `period`, as a fraction.
pub fn hours_in(server: &Server, period: &Period) -> f64 {
    let Some(launched) = server.launched_at.map(|s| s * 1_000_000) else {
        return 0.0;
    };
    let terminated = server.terminated_at.map(|s| s * 1_000_000);
    if terminated.is_some_and(|t| t < period.start) || launched > period.stop {
        return 0.0;
    }
    let start = launched.max(period.start);
    let stop = terminated.map_or(period.stop, |t| t.min(period.stop));
    (stop - start) as f64 / 3_600_000_000.0
}

/// Returns whether `server` ran at some point of `period`. Nova selects
/// instances launched before the end and not terminated before the start.
fn active_in(server: &Server, period: &Period) -> bool {
    let launched_before_end = server
        .launched_at
        .is_some_and(|s| s * 1_000_000 < period.stop);
    let alive_at_start = server
        .terminated_at
        .is_none_or(|s| s * 1_000_000 > period.start);
    launched_before_end && alive_at_start
}

fn server_usage(server: &Server, period: &Period, now: i64) -> Value {
    let hours = hours_in(server, period);
    let launched = server.launched_at.unwrap_or_default();
    let (state, uptime) = match server.terminated_at {
        Some(terminated) => ("terminated".to_owned(), terminated - launched),
        None => (server.vm_state.as_str().to_owned(), now - launched),
    };
    json!({
        "instance_id": server.id,
        "name": server.name,
        "tenant_id": server.project_id,
        "flavor": server.flavor.name,
        "hours": hours,
        "memory_mb": server.flavor.ram,
        "local_gb": server.flavor.disk + server.flavor.ephemeral,
        "vcpus": server.flavor.vcpus,
        "started_at": micros_time(launched * 1_000_000),
        "ended_at": server.terminated_at.map(|t| micros_time(t * 1_000_000)),
        "state": state,
        "uptime": uptime,
    })
}

/// Sums the usage of `servers` per project, in the order the projects
/// first appear.
pub fn summarize(servers: &[Server], period: &Period, now: i64) -> Vec<Value> {
    let mut summaries: Vec<(String, Map<String, Value>)> = Vec::new();
    for server in servers {
        let usage = server_usage(server, period, now);
        let hours = hours_in(server, period);
        let position = match summaries
            .iter()
            .position(|(project, _)| *project == server.project_id)
        {
            Some(position) => position,
            None => {
                let mut summary = Map::new();
                summary.insert("tenant_id".into(), json!(server.project_id));
                if period.detailed {
                    summary.insert("server_usages".into(), json!([]));
                }
                for key in [
                    "total_local_gb_usage",
                    "total_vcpus_usage",
                    "total_memory_mb_usage",
                    "total_hours",
                ] {
                    summary.insert(key.into(), json!(0.0));
                }
                summary.insert("start".into(), json!(micros_time(period.start)));
                summary.insert("stop".into(), json!(micros_time(period.stop)));
                summaries.push((server.project_id.clone(), summary));
                summaries.len() - 1
            }
        };
        let summary = &mut summaries[position].1;
        let mut add = |key: &str, amount: f64| {
            let total = summary[key].as_f64().unwrap_or_default() + amount;
            summary.insert(key.into(), json!(total));
        };
        add(
            "total_local_gb_usage",
            (server.flavor.disk + server.flavor.ephemeral) as f64 * hours,
        );
        add("total_vcpus_usage", server.flavor.vcpus as f64 * hours);
        add("total_memory_mb_usage", server.flavor.ram as f64 * hours);
        add("total_hours", hours);
        if let Some(Value::Array(list)) = summary.get_mut("server_usages") {
            list.push(usage);
        }
    }
    summaries
        .into_iter()
        .map(|(_, summary)| Value::Object(summary))
        .collect()
}

/// Selects the servers of `project_id` (all projects for `None`) that ran
/// in `period`, deleted ones included, ordered by project and id as Nova
/// pages them, and cuts the page. From 2.40 `limit` and `marker` (a server
/// id) page the servers; before it every server is counted.
async fn page_of_servers(
    state: &ComputeState,
    project_id: Option<&str>,
    period: &Period,
    pairs: &[(String, String)],
    paged: bool,
) -> Result<(Vec<Server>, Option<String>), ApiError> {
    let scope = ListScope {
        project_id: project_id.map(str::to_owned),
        host: None,
        deleted: true,
    };
    let mut servers: Vec<Server> = store::list(state.pool(), &scope)
        .await
        .map_err(db_error)?
        .into_iter()
        .filter(|server| active_in(server, period))
        .collect();
    servers.sort_by(|a, b| (&a.project_id, &a.id).cmp(&(&b.project_id, &b.id)));
    let mut page = if paged {
        PageRequest::from_query(pairs, MAX_LIMIT)?
    } else {
        PageRequest::default()
    };
    page.limit = Some(page.limit.unwrap_or(MAX_LIMIT));
    let page = paginate(servers, &page, |s: &Server| s.id.as_str())?;
    Ok((page.items, page.next_marker))
}

async fn index(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
    query: QueryPairs,
) -> Result<Json<Value>, ApiError> {
    caller.authorize(
        &state.policy,
        "os_compute_api:os-simple-tenant-usage:list",
        json!({"project_id": caller.project_id()}),
    )?;
    let now = Utc::now();
    let period = parse_period(&query.0, now)?;
    let paged = version.at_least(2, 40);
    let (servers, next_marker) = page_of_servers(&state, None, &period, &query.0, paged).await?;
    let mut body = json!({"tenant_usages": summarize(&servers, &period, now.timestamp())});
    if let (true, Some(marker)) = (paged, next_marker) {
        let base = state.v21_url("os-simple-tenant-usage");
        body["tenant_usages_links"] =
            json!([{"rel": "next", "href": next_link(&base, &query.0, &marker)}]);
    }
    Ok(Json(body))
}

async fn show(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
    Path(tenant_id): Path<String>,
    query: QueryPairs,
) -> Result<Json<Value>, ApiError> {
    caller.authorize(
        &state.policy,
        "os_compute_api:os-simple-tenant-usage:show",
        json!({"project_id": tenant_id}),
    )?;
    let now = Utc::now();
    let mut period = parse_period(&query.0, now)?;
    // Show always lists the servers.
    period.detailed = true;
    let paged = version.at_least(2, 40);
    let (servers, next_marker) =
        page_of_servers(&state, Some(&tenant_id), &period, &query.0, paged).await?;
    // A project without usage in the period is an empty object, as in Nova.
    let usage = summarize(&servers, &period, now.timestamp())
        .into_iter()
        .next()
        .unwrap_or_else(|| json!({}));
    let mut body = json!({"tenant_usage": usage});
    if let (true, Some(marker)) = (paged, next_marker) {
        let base = state.v21_url(&format!("os-simple-tenant-usage/{tenant_id}"));
        body["tenant_usage_links"] =
            json!([{"rel": "next", "href": next_link(&base, &query.0, &marker)}]);
    }
    Ok(Json(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_nova_time_formats() {
        assert_eq!(
            parse_time("2020-01-02T03:04:05"),
            Some(1_577_934_245_000_000)
        );
        assert_eq!(
            parse_time("2020-01-02T03:04:05.5"),
            Some(1_577_934_245_500_000)
        );
        assert_eq!(
            parse_time("2020-01-02 03:04:05.000001"),
            Some(1_577_934_245_000_001)
        );
        assert_eq!(parse_time("2020-01-02"), None);
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn period_start_after_end_rejected() {
        let now = Utc::now();
        let error = parse_period(
            &pairs(&[
                ("start", "2020-01-02T00:00:00"),
                ("end", "2020-01-01T00:00:00"),
            ]),
            now,
        )
        .unwrap_err();
        assert_eq!(error.kind.status().as_u16(), 400);
        let error = parse_period(&pairs(&[("start", "not a time")]), now).unwrap_err();
        assert_eq!(error.kind.status().as_u16(), 400);
    }

    #[test]
    fn period_end_cut_to_now() {
        let now = Utc::now();
        let period = parse_period(
            &pairs(&[
                ("start", "2020-01-01T00:00:00"),
                ("end", "2999-01-01T00:00:00"),
                ("detailed", "1"),
            ]),
            now,
        )
        .unwrap();
        assert_eq!(period.stop, now.timestamp_micros());
        assert!(period.detailed);
    }

    #[test]
    fn detailed_spellings() {
        let now = Utc::now();
        for (value, expected) in [
            ("1", true),
            ("True", true),
            ("0", false),
            ("False", false),
            ("x", false),
        ] {
            let period = parse_period(&pairs(&[("detailed", value)]), now).unwrap();
            assert_eq!(period.detailed, expected, "detailed={value}");
        }
    }
}
