//! `/os-aggregates` (admins): host aggregates, their hosts and metadata,
//! after Nova's `aggregates.py`. The `availability_zone` of an aggregate
//! is its metadata key of that name, and it moves the aggregate's hosts
//! into that zone ([`crate::aggregate`]).

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use oxstack_core::microversion::Microversion;
use oxstack_core::ApiError;
use serde_json::{json, Map, Value};

use super::server_view::usage_time;
use super::{db_error, parse_body, ComputeState, Version};
use crate::aggregate::{self, Aggregate, ZONE_KEY};
use crate::host::records;
use crate::policy::Caller;

pub fn routes() -> Router<ComputeState> {
    Router::new()
        .route("/os-aggregates", get(list).post(create))
        .route("/os-aggregates/{id}", get(show).put(update).delete(delete))
        .route("/os-aggregates/{id}/action", post(action))
}

fn invalid(field: &str, detail: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!(
        "Invalid input for field/attribute {field}. {detail}"
    ))
}

/// Renders `aggregate` at `version`. As in Nova, the create response has no
/// `hosts` and `metadata`.
pub fn render(aggregate: &Aggregate, version: Microversion, with_members: bool) -> Value {
    let mut body = Map::new();
    body.insert("availability_zone".into(), json!(aggregate.zone()));
    body.insert("created_at".into(), json!(usage_time(aggregate.created_at)));
    body.insert("deleted".into(), json!(false));
    body.insert("deleted_at".into(), Value::Null);
    body.insert("id".into(), json!(aggregate.id));
    body.insert("name".into(), json!(aggregate.name));
    body.insert(
        "updated_at".into(),
        json!(aggregate.updated_at.map(usage_time)),
    );
    if with_members {
        body.insert("hosts".into(), json!(aggregate.hosts));
        body.insert("metadata".into(), json!(aggregate.metadata));
    }
    if version.at_least(2, 41) {
        body.insert("uuid".into(), json!(aggregate.uuid));
    }
    Value::Object(body)
}

/// Parses a name (the aggregate's or a zone's): a string of 1 to 255
/// characters without control characters, stripped of surrounding whitespace
/// as Nova normalises it.
fn name_field(field: &str, value: &Value) -> Result<String, ApiError> {
    let Some(text) = value.as_str() else {
        return Err(invalid(
            field,
            format!("Value: {value}. It must be a string."),
        ));
    };
    let trimmed = text.trim();
    if trimmed.is_empty() || text.chars().count() > 255 {
        return Err(invalid(
            field,
            format!("Value: {text}. It must be 1 to 255 characters long, not only whitespace."),
        ));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(invalid(
            field,
            format!("Value: {text}. It must not contain control characters."),
        ));
    }
    Ok(trimmed.to_owned())
}

/// Parses an `availability_zone`: a name, or null for no zone. A zone name
/// may not contain `:`, which separates zone, host and node in a server
/// create request.
fn zone_field(value: &Value) -> Result<Option<String>, ApiError> {
    if value.is_null() {
        return Ok(None);
    }
    let zone = name_field("availability_zone", value)?;
    if zone.contains(':') {
        return Err(invalid(
            "availability_zone",
            format!("Value: {zone}. An availability zone name must not contain ':'."),
        ));
    }
    Ok(Some(zone))
}

/// Returns the `aggregate` object of a create or update body, with only
/// `name` and `availability_zone` allowed.
fn aggregate_object(body: &Value) -> Result<&Map<String, Value>, ApiError> {
    let object = body
        .get("aggregate")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            invalid(
                "aggregate",
                "'aggregate' is a required property and must be an object.",
            )
        })?;
    if let Some(key) = object
        .keys()
        .find(|k| !matches!(k.as_str(), "name" | "availability_zone"))
    {
        return Err(invalid(
            "aggregate",
            format!("Additional properties are not allowed ('{key}' was unexpected)"),
        ));
    }
    Ok(object)
}

fn parse_id(id: &str) -> Result<i64, ApiError> {
    id.parse::<i64>().map_err(|_| {
        ApiError::bad_request(format!("Invalid aggregate id {id}: it must be an integer."))
    })
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("Aggregate {id} could not be found."))
}

async fn load(state: &ComputeState, id: &str) -> Result<Aggregate, ApiError> {
    let number = parse_id(id)?;
    aggregate::get(state.pool(), number)
        .await
        .map_err(db_error)?
        .ok_or_else(|| not_found(id))
}

fn authorize(state: &ComputeState, caller: &Caller, action: &str) -> Result<(), ApiError> {
    caller.authorize(
        &state.policy,
        &format!("os_compute_api:os-aggregates:{action}"),
        json!({"project_id": caller.project_id()}),
    )
}

/// Checks that giving `hosts` the zone `zone` (`None` for the default zone)
/// conflicts with no other aggregate they belong to. Nova rejects such a
/// conflict because a host is in one zone only.
async fn check_zone_conflicts(
    state: &ComputeState,
    aggregate_id: i64,
    hosts: &[String],
    zone: Option<&str>,
) -> Result<(), ApiError> {
    let Some(zone) = zone else {
        return Ok(());
    };
    for other in aggregate::list(state.pool()).await.map_err(db_error)? {
        if other.id == aggregate_id {
            continue;
        }
        let Some(other_zone) = other.zone() else {
            continue;
        };
        if other_zone == zone {
            continue;
        }
        if let Some(host) = hosts.iter().find(|h| other.hosts.contains(h)) {
            return Err(ApiError::bad_request(format!(
                "Cannot add host to aggregate {aggregate_id}. Reason: One or more hosts already in \
                 availability zone(s) ['{other_zone}']: host {host} is in aggregate {} with that zone.",
                other.id
            )));
        }
    }
    Ok(())
}

async fn list(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &caller, "index")?;
    let aggregates = aggregate::list(state.pool()).await.map_err(db_error)?;
    let items: Vec<Value> = aggregates
        .iter()
        .map(|a| render(a, version, true))
        .collect();
    Ok(Json(json!({"aggregates": items})))
}

async fn create(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &caller, "create")?;
    let body = parse_body(&body)?;
    let object = aggregate_object(&body)?;
    let name = match object.get("name") {
        Some(value) => name_field("name", value)?,
        None => return Err(invalid("aggregate", "'name' is a required property")),
    };
    let zone = match object.get("availability_zone") {
        Some(value) => zone_field(value)?,
        None => None,
    };
    let mut metadata = BTreeMap::new();
    if let Some(zone) = &zone {
        metadata.insert(ZONE_KEY.to_owned(), zone.clone());
    }
    let now = chrono::Utc::now().timestamp();
    let created = aggregate::insert(state.pool(), &name, &metadata, now)
        .await
        .map_err(db_error)?
        .ok_or_else(|| ApiError::conflict(format!("Aggregate {name} already exists.")))?;
    tracing::info!(aggregate_id = created.id, name = %name, "aggregate created");
    Ok(Json(json!({"aggregate": render(&created, version, false)})))
}

async fn show(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &caller, "show")?;
    let aggregate = load(&state, &id).await?;
    Ok(Json(
        json!({"aggregate": render(&aggregate, version, true)}),
    ))
}

async fn update(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &caller, "update")?;
    let body = parse_body(&body)?;
    let object = aggregate_object(&body)?;
    if object.is_empty() {
        return Err(invalid(
            "aggregate",
            "Give name, availability_zone or both: an empty update changes nothing.",
        ));
    }
    let mut aggregate = load(&state, &id).await?;
    if let Some(value) = object.get("name") {
        aggregate.name = name_field("name", value)?;
    }
    if let Some(value) = object.get("availability_zone") {
        let zone = zone_field(value)?;
        check_zone_conflicts(&state, aggregate.id, &aggregate.hosts, zone.as_deref()).await?;
        match zone {
            Some(zone) => aggregate.metadata.insert(ZONE_KEY.to_owned(), zone),
            None => aggregate.metadata.remove(ZONE_KEY),
        };
    }
    aggregate.updated_at = Some(chrono::Utc::now().timestamp());
    if !aggregate::update(state.pool(), &aggregate)
        .await
        .map_err(db_error)?
    {
        return Err(ApiError::conflict(format!(
            "Aggregate {} already exists.",
            aggregate.name
        )));
    }
    tracing::info!(aggregate_id = aggregate.id, "aggregate updated");
    Ok(Json(
        json!({"aggregate": render(&aggregate, version, true)}),
    ))
}

async fn delete(
    State(state): State<ComputeState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    authorize(&state, &caller, "delete")?;
    let aggregate = load(&state, &id).await?;
    if !aggregate.hosts.is_empty() {
        return Err(ApiError::bad_request(format!(
            "Cannot delete aggregate: {}. Reason: Host aggregate is not empty; remove its hosts first.",
            aggregate.id
        )));
    }
    aggregate::delete(state.pool(), aggregate.id)
        .await
        .map_err(db_error)?;
    tracing::info!(aggregate_id = aggregate.id, "aggregate deleted");
    // Nova responds with 200 and an empty body.
    Ok(StatusCode::OK)
}

async fn action(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let body = parse_body(&body)?;
    let object = body
        .as_object()
        .filter(|o| o.len() == 1)
        .ok_or_else(|| ApiError::bad_request("Malformed request body: name exactly one action."))?;
    let (name, argument) = object.iter().next().expect("one entry");
    let aggregate = match name.as_str() {
        "add_host" => {
            authorize(&state, &caller, "add_host")?;
            add_host(&state, &id, host_argument(name, argument)?).await?
        }
        "remove_host" => {
            authorize(&state, &caller, "remove_host")?;
            remove_host(&state, &id, host_argument(name, argument)?).await?
        }
        "set_metadata" => {
            authorize(&state, &caller, "set_metadata")?;
            set_metadata(&state, &id, argument).await?
        }
        other => {
            return Err(ApiError::bad_request(format!(
            "Invalid input for field/attribute {other}. Use add_host, remove_host or set_metadata."
        )))
        }
    };
    Ok(Json(
        json!({"aggregate": render(&aggregate, version, true)}),
    ))
}

fn host_argument<'a>(action: &str, argument: &'a Value) -> Result<&'a str, ApiError> {
    let object = argument.as_object().ok_or_else(|| {
        invalid(
            action,
            format!("Value: {argument}. It must be an object with 'host'."),
        )
    })?;
    if let Some(key) = object.keys().find(|k| *k != "host") {
        return Err(invalid(
            action,
            format!("Additional properties are not allowed ('{key}' was unexpected)"),
        ));
    }
    match object.get("host") {
        Some(Value::String(host)) if !host.is_empty() && host.chars().count() <= 255 => Ok(host),
        Some(other) => Err(invalid(
            "host",
            format!("Value: {other}. It must be a host name of 1 to 255 characters."),
        )),
        None => Err(invalid(action, "'host' is a required property")),
    }
}

async fn add_host(state: &ComputeState, id: &str, host: &str) -> Result<Aggregate, ApiError> {
    let aggregate = load(state, id).await?;
    let service = records::find_service(state.pool(), host, records::COMPUTE_BINARY)
        .await
        .map_err(db_error)?;
    if service.is_none() {
        return Err(ApiError::not_found(format!(
            "Compute host {host} could not be found."
        )));
    }
    check_zone_conflicts(state, aggregate.id, &[host.to_owned()], aggregate.zone()).await?;
    let now = chrono::Utc::now().timestamp();
    if !aggregate::add_host(state.pool(), aggregate.id, host, now)
        .await
        .map_err(db_error)?
    {
        return Err(ApiError::conflict(format!(
            "Aggregate {} already has host {host}.",
            aggregate.id
        )));
    }
    tracing::info!(aggregate_id = aggregate.id, host, "host added to aggregate");
    load(state, id).await
}

async fn remove_host(state: &ComputeState, id: &str, host: &str) -> Result<Aggregate, ApiError> {
    let aggregate = load(state, id).await?;
    let now = chrono::Utc::now().timestamp();
    if !aggregate::remove_host(state.pool(), aggregate.id, host, now)
        .await
        .map_err(db_error)?
    {
        return Err(ApiError::not_found(format!(
            "Cannot remove host {host} in aggregate {}: the host is not in it.",
            aggregate.id
        )));
    }
    tracing::info!(
        aggregate_id = aggregate.id,
        host,
        "host removed from aggregate"
    );
    load(state, id).await
}

/// Parses `{"metadata": {key: value or null}}`, where null removes the key.
fn metadata_argument(argument: &Value) -> Result<BTreeMap<String, Option<String>>, ApiError> {
    let object = argument.as_object().ok_or_else(|| {
        invalid(
            "set_metadata",
            format!("Value: {argument}. It must be an object with 'metadata'."),
        )
    })?;
    if let Some(key) = object.keys().find(|k| *k != "metadata") {
        return Err(invalid(
            "set_metadata",
            format!("Additional properties are not allowed ('{key}' was unexpected)"),
        ));
    }
    let metadata = object
        .get("metadata")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            invalid(
                "set_metadata",
                "'metadata' is a required property and must be an object.",
            )
        })?;
    let mut changes = BTreeMap::new();
    for (key, value) in metadata {
        if key.is_empty() || key.chars().count() > 255 {
            return Err(invalid(
                "metadata",
                format!("Key '{key}' must be 1 to 255 characters long."),
            ));
        }
        let value = match value {
            Value::Null => None,
            Value::String(text) if text.chars().count() <= 255 => Some(text.clone()),
            other => {
                return Err(invalid(
                    "metadata",
                    format!("Value of '{key}': {other}. It must be a string of at most 255 characters, or null."),
                ))
            }
        };
        changes.insert(key.clone(), value);
    }
    Ok(changes)
}

async fn set_metadata(
    state: &ComputeState,
    id: &str,
    argument: &Value,
) -> Result<Aggregate, ApiError> {
    let changes = metadata_argument(argument)?;
    let mut aggregate = load(state, id).await?;
    if let Some(change) = changes.get(ZONE_KEY) {
        let zone = match change {
            Some(text) => zone_field(&json!(text))?,
            None => None,
        };
        check_zone_conflicts(state, aggregate.id, &aggregate.hosts, zone.as_deref()).await?;
    }
    for (key, value) in changes {
        match value {
            Some(value) => aggregate.metadata.insert(key, value),
            None => aggregate.metadata.remove(&key),
        };
    }
    aggregate.updated_at = Some(chrono::Utc::now().timestamp());
    aggregate::update(state.pool(), &aggregate)
        .await
        .map_err(db_error)?;
    tracing::info!(aggregate_id = aggregate.id, "aggregate metadata set");
    Ok(aggregate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(name_field("name", &json!("  agg ")).unwrap(), "agg");
        assert!(name_field("name", &json!("")).is_err());
        assert!(name_field("name", &json!("   ")).is_err());
        assert!(name_field("name", &json!("x".repeat(256))).is_err());
        assert!(name_field("name", &json!(5)).is_err());
    }

    #[test]
    fn zone_rejects_colon() {
        assert_eq!(zone_field(&Value::Null).unwrap(), None);
        assert_eq!(zone_field(&json!("az1")).unwrap().as_deref(), Some("az1"));
        assert!(zone_field(&json!("az:1")).is_err());
    }

    #[test]
    fn metadata_null_removes() {
        let changes = metadata_argument(&json!({"metadata": {"a": "1", "b": null}})).unwrap();
        assert_eq!(changes.get("a"), Some(&Some("1".to_owned())));
        assert_eq!(changes.get("b"), Some(&None));
        assert!(metadata_argument(&json!({"metadata": {"a": 1}})).is_err());
        assert!(metadata_argument(&json!({"meta": {}})).is_err());
    }
}
