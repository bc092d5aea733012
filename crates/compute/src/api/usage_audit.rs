//! `os-instance_usage_audit_log`: the state of the instance usage audit on
//! each compute host for the last completed audit period (a calendar
//! month, Nova's default `instance_usage_audit_period`).
//!
//! Nova's hosts run the audit only with `instance_usage_audit = True`,
//! which is off by default, and it emits usage notifications. OxStack has
//! no notification bus, so its hosts never run the audit: every compute
//! host, disabled ones included, is listed as not run, which is what Nova
//! returns with its default settings.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{Datelike, NaiveDate, NaiveDateTime, Utc};
use oxstack_core::ApiError;
use serde_json::{json, Value};

use super::{db_error, ComputeState};
use crate::host::records::{self, COMPUTE_BINARY};
use crate::policy::Caller;

pub fn routes() -> Router<ComputeState> {
    Router::new()
        .route("/os-instance_usage_audit_log", get(index))
        .route("/os-instance_usage_audit_log/{before}", get(show))
}

/// Returns the last calendar month that ended at or before `before`:
/// its first day and the first day of the next month, at midnight.
pub fn last_completed_month(before: NaiveDateTime) -> (NaiveDateTime, NaiveDateTime) {
    let date = before.date();
    let end =
        NaiveDate::from_ymd_opt(date.year(), date.month(), 1).expect("the first of a month exists");
    let begin = if end.month() == 1 {
        NaiveDate::from_ymd_opt(end.year() - 1, 12, 1)
    } else {
        NaiveDate::from_ymd_opt(end.year(), end.month() - 1, 1)
    }
    .expect("the first of a month exists");
    (
        begin.and_time(Default::default()),
        end.and_time(Default::default()),
    )
}

/// Parses the `before` path segment in Nova's two formats.
pub fn parse_before(text: &str) -> Result<NaiveDateTime, ApiError> {
    let format = if text.contains('.') {
        "%Y-%m-%d %H:%M:%S%.f"
    } else {
        "%Y-%m-%d %H:%M:%S"
    };
    NaiveDateTime::parse_from_str(text, format).map_err(|_| {
        ApiError::bad_request(format!(
            "Invalid timestamp for date {text}: use YYYY-MM-DD HH:MM:SS with optional .ffffff microseconds."
        ))
    })
}

async fn audit_log(state: &ComputeState, before: NaiveDateTime) -> Result<Value, ApiError> {
    let (begin, end) = last_completed_month(before);
    let mut hosts: Vec<String> = records::list_services(state.pool())
        .await
        .map_err(db_error)?
        .into_iter()
        .filter(|service| service.binary == COMPUTE_BINARY)
        .map(|service| service.host)
        .collect();
    hosts.sort();
    hosts.dedup();
    // No host ran the audit, so none is done and no errors were counted.
    let overall = if hosts.is_empty() {
        "ALL hosts done. 0 errors.".to_owned()
    } else {
        format!("0 of {} hosts done. 0 errors.", hosts.len())
    };
    Ok(json!({
        "period_beginning": begin.format("%Y-%m-%d %H:%M:%S").to_string(),
        "period_ending": end.format("%Y-%m-%d %H:%M:%S").to_string(),
        "num_hosts": hosts.len(),
        "num_hosts_done": 0,
        "num_hosts_running": 0,
        "num_hosts_not_run": hosts.len(),
        "hosts_not_run": hosts,
        "total_instances": 0,
        "total_errors": 0,
        "overall_status": overall,
        "log": {},
    }))
}

async fn index(State(state): State<ComputeState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.authorize(
        &state.policy,
        "os_compute_api:os-instance-usage-audit-log:list",
        json!({}),
    )?;
    let log = audit_log(&state, Utc::now().naive_utc()).await?;
    Ok(Json(json!({"instance_usage_audit_logs": log})))
}

async fn show(
    State(state): State<ComputeState>,
    caller: Caller,
    Path(before): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.authorize(
        &state.policy,
        "os_compute_api:os-instance-usage-audit-log:show",
        json!({}),
    )?;
    let before = parse_before(&before)?;
    let log = audit_log(&state, before).await?;
    Ok(Json(json!({"instance_usage_audit_log": log})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_month_before_date() {
        let (begin, end) = last_completed_month(parse_before("2024-03-15 10:00:00").unwrap());
        assert_eq!(begin.to_string(), "2024-02-01 00:00:00");
        assert_eq!(end.to_string(), "2024-03-01 00:00:00");
        let (begin, end) = last_completed_month(parse_before("2024-01-01 00:00:00.5").unwrap());
        assert_eq!(begin.to_string(), "2023-12-01 00:00:00");
        assert_eq!(end.to_string(), "2024-01-01 00:00:00");
    }

    #[test]
    fn invalid_before_rejected() {
        assert!(parse_before("2024-13-01 00:00:00").is_err());
        assert!(parse_before("yesterday").is_err());
    }
}
