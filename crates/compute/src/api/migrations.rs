//! `os-migrations`: the list of migrations, with Nova's query checks at
//! each microversion. OxStack has no resize, cold or live migration yet
//! (those actions return 501), so no migration is ever recorded and the
//! list is empty; a `marker` therefore never matches and is a 400.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use oxstack_core::microversion::Microversion;
use oxstack_core::ApiError;
use serde_json::{json, Value};

use super::{ComputeState, QueryPairs, Version};
use crate::policy::Caller;

pub fn routes() -> Router<ComputeState> {
    Router::new().route("/os-migrations", get(index))
}

/// Returns the query keys Nova accepts at `version`; before 2.59 unknown
/// keys are ignored, from 2.59 they are a 400.
fn allowed_keys(version: Microversion) -> Vec<&'static str> {
    let mut keys = vec![
        "hidden",
        "host",
        "status",
        "cell_name",
        "source_compute",
        "instance_uuid",
        "migration_type",
    ];
    if version.at_least(2, 59) {
        keys.extend(["limit", "marker", "changes-since"]);
    }
    if version.at_least(2, 66) {
        keys.push("changes-before");
    }
    if version.at_least(2, 80) {
        keys.extend(["user_id", "project_id"]);
    }
    keys
}

/// Checks the query as Nova does at `version`.
pub fn check_query(pairs: &[(String, String)], version: Microversion) -> Result<(), ApiError> {
    let allowed = allowed_keys(version);
    let strict = version.at_least(2, 59);
    let mut since = None;
    let mut before = None;
    for (key, value) in pairs {
        if !allowed.contains(&key.as_str()) {
            if strict {
                return Err(ApiError::bad_request(format!(
                    "Invalid input for query parameters {key}. Additional properties are not allowed ('{key}' was unexpected)"
                )));
            }
            continue;
        }
        match key.as_str() {
            "limit" => {
                value.parse::<u64>().map_err(|_| {
                    ApiError::bad_request(format!(
                        "Invalid input for query parameters limit. Value: {value}. '{value}' is not a non-negative integer"
                    ))
                })?;
            }
            "changes-since" | "changes-before" => {
                let at = oxstack_core::time::parse(value).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "Invalid input for query parameters {key}. Value: {value}. '{value}' is not a 'date-time'"
                    ))
                })?;
                if key == "changes-since" {
                    since = Some(at);
                } else {
                    before = Some(at);
                }
            }
            _ => {}
        }
    }
    if let (Some(since), Some(before)) = (since, before) {
        if before < since {
            return Err(ApiError::bad_request(
                "The value of changes-since must be less than or equal to changes-before.",
            ));
        }
    }
    Ok(())
}

async fn index(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
    query: QueryPairs,
) -> Result<Json<Value>, ApiError> {
    caller.authorize(
        &state.policy,
        "os_compute_api:os-migrations:index",
        json!({}),
    )?;
    check_query(&query.0, version)?;
    if version.at_least(2, 59) {
        if let Some((_, marker)) = query.0.iter().find(|(key, _)| key == "marker") {
            return Err(ApiError::bad_request(format!(
                "Marker {marker} could not be found."
            )));
        }
    }
    Ok(Json(json!({"migrations": []})))
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
    fn unknown_key_rejected_from_259() {
        let query = pairs(&[("foo", "bar")]);
        assert!(check_query(&query, Microversion::new(2, 58)).is_ok());
        assert!(check_query(&query, Microversion::new(2, 59)).is_err());
    }

    #[test]
    fn changes_before_after_since_required() {
        let query = pairs(&[
            ("changes-since", "2020-01-02T00:00:00Z"),
            ("changes-before", "2020-01-01T00:00:00Z"),
        ]);
        assert!(check_query(&query, Microversion::new(2, 66)).is_err());
        let query = pairs(&[
            ("changes-since", "2020-01-01T00:00:00Z"),
            ("changes-before", "2020-01-02T00:00:00Z"),
        ]);
        assert!(check_query(&query, Microversion::new(2, 66)).is_ok());
        let query = pairs(&[("changes-since", "not-a-time")]);
        assert!(check_query(&query, Microversion::new(2, 59)).is_err());
    }
}
