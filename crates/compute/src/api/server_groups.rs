//! `/os-server-groups`: create, list, show and delete server groups, with
//! Nova's request and response shapes per microversion: `policies` before
//! 2.64, `policy` and `rules` from 2.64, and `project_id` and `user_id` from
//! 2.13.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use oxstack_core::microversion::Microversion;
use oxstack_core::{ApiError, ErrorKind};
use oxstack_store::Backend;
use serde_json::{json, Map, Value};

use super::{db_error, parse_body, ComputeState, QueryPairs, Version};
use crate::policy::Caller;
use crate::quota;
use crate::server_group::{self, ServerGroup, POLICIES};

pub fn routes() -> Router<ComputeState> {
    Router::new()
        .route("/os-server-groups", get(list).post(create))
        .route("/os-server-groups/{id}", get(show).delete(delete))
}

fn invalid(field: &str, detail: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!(
        "Invalid input for field/attribute {field}. {detail}"
    ))
}

/// A validated create request.
#[derive(Debug, PartialEq)]
pub struct CreateRequest {
    pub name: String,
    pub policy: String,
    pub rules: BTreeMap<String, Value>,
}

fn check_name(value: Option<&Value>) -> Result<String, ApiError> {
    let name = match value {
        None => return Err(invalid("server_group", "'name' is a required property")),
        Some(Value::String(name)) => name.clone(),
        Some(other) => {
            return Err(invalid(
                "name",
                format!("Value: {other}. It must be a string."),
            ))
        }
    };
    if name.is_empty() || name.chars().count() > 255 {
        return Err(invalid(
            "name",
            format!("Value: {name}. It must be 1 to 255 characters long."),
        ));
    }
    if name.trim() != name || name.chars().any(char::is_control) {
        return Err(invalid(
            "name",
            format!("Value: {name}. It must not have leading or trailing whitespace or control characters."),
        ));
    }
    Ok(name)
}

/// Returns the policies the request may name at `version`.
fn allowed_policies(version: Microversion) -> &'static [&'static str] {
    if version.at_least(2, 15) {
        POLICIES
    } else {
        &POLICIES[..2]
    }
}

fn check_policy(field: &str, value: &Value, version: Microversion) -> Result<String, ApiError> {
    let allowed = allowed_policies(version);
    match value.as_str() {
        Some(policy) if allowed.contains(&policy) => Ok(policy.to_owned()),
        _ => Err(invalid(
            field,
            format!("Value: {value}. It is not one of {allowed:?}."),
        )),
    }
}

/// Validates the body of `POST /os-server-groups` at `version`.
pub fn parse_create(body: &Value, version: Microversion) -> Result<CreateRequest, ApiError> {
    let group = body
        .get("server_group")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            invalid(
                "server_group",
                "'server_group' is a required property and must be an object",
            )
        })?;
    let known: &[&str] = if version.at_least(2, 64) {
        &["name", "policy", "rules"]
    } else {
        &["name", "policies"]
    };
    if let Some(key) = group.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(invalid(
            "server_group",
            format!("Additional properties are not allowed ('{key}' was unexpected)"),
        ));
    }
    let name = check_name(group.get("name"))?;
    if !version.at_least(2, 64) {
        let policies = group
            .get("policies")
            .ok_or_else(|| invalid("server_group", "'policies' is a required property"))?;
        let policy = match policies.as_array().map(Vec::as_slice) {
            Some([one]) => check_policy("policies", one, version)?,
            _ => {
                return Err(invalid(
                    "policies",
                    format!("Value: {policies}. It must be a list of exactly one policy."),
                ))
            }
        };
        return Ok(CreateRequest {
            name,
            policy,
            rules: BTreeMap::new(),
        });
    }
    let policy = group
        .get("policy")
        .ok_or_else(|| invalid("server_group", "'policy' is a required property"))?;
    let policy = check_policy("policy", policy, version)?;
    let rules = parse_rules(group.get("rules"))?;
    if !rules.is_empty() && policy != "anti-affinity" {
        return Err(ApiError::bad_request(
            "Only anti-affinity policy supports rules.",
        ));
    }
    Ok(CreateRequest {
        name,
        policy,
        rules,
    })
}

fn parse_rules(value: Option<&Value>) -> Result<BTreeMap<String, Value>, ApiError> {
    let rules = match value {
        None => return Ok(BTreeMap::new()),
        Some(Value::Object(rules)) => rules,
        Some(other) => {
            return Err(invalid(
                "rules",
                format!("Value: {other}. It must be an object."),
            ))
        }
    };
    let mut parsed = BTreeMap::new();
    for (key, value) in rules {
        if key != "max_server_per_host" {
            return Err(invalid(
                "rules",
                format!("Additional properties are not allowed ('{key}' was unexpected)"),
            ));
        }
        // Nova's positive_integer accepts an integer or its string form.
        let number = match value {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.parse::<i64>().ok(),
            _ => None,
        };
        match number {
            Some(n) if n >= 1 => {
                parsed.insert(key.clone(), json!(n));
            }
            _ => {
                return Err(invalid(
                    "max_server_per_host",
                    format!("Value: {value}. It must be an integer of at least 1."),
                ))
            }
        }
    }
    Ok(parsed)
}

/// Renders `group` with its `members` at `version`.
pub fn render(group: &ServerGroup, members: &[String], version: Microversion) -> Value {
    let mut body = Map::new();
    body.insert("id".into(), json!(group.id));
    body.insert("name".into(), json!(group.name));
    if version.at_least(2, 64) {
        body.insert("policy".into(), json!(group.policy));
        body.insert("rules".into(), json!(group.rules));
    } else {
        body.insert("policies".into(), json!([group.policy]));
        body.insert("metadata".into(), json!({}));
    }
    body.insert("members".into(), json!(members));
    if version.at_least(2, 13) {
        body.insert("project_id".into(), json!(group.project_id));
        body.insert("user_id".into(), json!(group.user_id));
    }
    Value::Object(body)
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("Instance group {id} could not be found."))
}

/// Loads group `id` and checks `rule` against its project, so another
/// project's group gets the policy's 403, as in Nova.
async fn load(
    state: &ComputeState,
    caller: &Caller,
    id: &str,
    rule: &str,
) -> Result<ServerGroup, ApiError> {
    let group = server_group::get(state.pool(), id)
        .await
        .map_err(db_error)?
        .ok_or_else(|| not_found(id))?;
    caller.authorize(
        &state.policy,
        rule,
        json!({"project_id": group.project_id, "user_id": group.user_id}),
    )?;
    Ok(group)
}

async fn create(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let project_id = caller.project_id().to_owned();
    caller.authorize(
        &state.policy,
        "os_compute_api:os-server-groups:create",
        json!({"project_id": project_id, "user_id": caller.user_id()}),
    )?;
    let request = parse_create(&parse_body(&body)?, version)?;
    if project_id.is_empty() {
        return Err(ApiError::bad_request(
            "Server groups belong to a project; use a project-scoped token.",
        ));
    }

    let limits = quota::limits(&state, &project_id, Some(caller.user_id())).await?;
    let limit = limits.get("server_groups").copied().unwrap_or(-1);
    let group = ServerGroup {
        id: uuid::Uuid::new_v4().to_string(),
        name: request.name,
        project_id: project_id.clone(),
        user_id: caller.user_id().to_owned(),
        policy: request.policy,
        rules: request.rules,
        created_at: chrono::Utc::now().timestamp(),
    };
    // Counting and inserting in one transaction keeps two concurrent
    // creates from both taking the last group of the quota.
    let mut transaction = state.pool().begin().await.map_err(db_error)?;
    match state.store.backend() {
        Backend::Postgres => {
            sqlx::query("LOCK TABLE compute_server_groups IN SHARE ROW EXCLUSIVE MODE")
                .execute(&mut *transaction)
                .await
                .map_err(db_error)?;
        }
        Backend::Sqlite => {
            // A write as the first statement takes SQLite's write lock
            // before the count is read.
            sqlx::query("UPDATE compute_server_groups SET name = name WHERE id = ''")
                .execute(&mut *transaction)
                .await
                .map_err(db_error)?;
        }
    }
    let used = server_group::count(&mut *transaction, &project_id, None)
        .await
        .map_err(db_error)?;
    if limit >= 0 && used + 1 > limit {
        return Err(ApiError::new(
            ErrorKind::QuotaExceeded,
            "Quota exceeded, too many server groups.",
        ));
    }
    server_group::insert(&mut *transaction, &group)
        .await
        .map_err(db_error)?;
    transaction.commit().await.map_err(db_error)?;
    tracing::info!(server_group_id = %group.id, project_id = %project_id, policy = %group.policy, "server group created");
    Ok(Json(json!({"server_group": render(&group, &[], version)})))
}

async fn list(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
    query: QueryPairs,
) -> Result<Json<Value>, ApiError> {
    let project_id = caller.project_id().to_owned();
    caller.authorize(
        &state.policy,
        "os_compute_api:os-server-groups:index",
        json!({"project_id": project_id}),
    )?;
    let mut all_projects = false;
    let mut limit: Option<usize> = None;
    let mut offset = 0usize;
    for (key, value) in &query.0 {
        match key.as_str() {
            // Nova looks at the key only, whatever its value.
            "all_projects" => all_projects = true,
            "limit" => {
                limit = Some(value.parse().map_err(|_| {
                    invalid(
                        "limit",
                        format!("Value: {value}. It must be an integer of at least 0."),
                    )
                })?)
            }
            "offset" => {
                offset = value.parse().map_err(|_| {
                    invalid(
                        "offset",
                        format!("Value: {value}. It must be an integer of at least 0."),
                    )
                })?
            }
            _ => {}
        }
    }
    // As in Nova, `all_projects` from a caller whom the rule does not allow
    // lists only the caller's own groups.
    let all_projects = all_projects
        && caller
            .authorize(
                &state.policy,
                "os_compute_api:os-server-groups:index:all_projects",
                json!({"project_id": project_id}),
            )
            .is_ok();
    let scope = (!all_projects).then_some(project_id.as_str());
    let groups = server_group::list(state.pool(), scope)
        .await
        .map_err(db_error)?;
    let limit = limit
        .unwrap_or(super::servers::MAX_LIMIT)
        .min(super::servers::MAX_LIMIT);
    let mut items = Vec::new();
    for group in groups.iter().skip(offset).take(limit) {
        let members = server_group::members(state.pool(), &group.id)
            .await
            .map_err(db_error)?;
        items.push(render(group, &members, version));
    }
    Ok(Json(json!({"server_groups": items})))
}

async fn show(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let group = load(&state, &caller, &id, "os_compute_api:os-server-groups:show").await?;
    let members = server_group::members(state.pool(), &group.id)
        .await
        .map_err(db_error)?;
    Ok(Json(
        json!({"server_group": render(&group, &members, version)}),
    ))
}

async fn delete(
    State(state): State<ComputeState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let group = load(
        &state,
        &caller,
        &id,
        "os_compute_api:os-server-groups:delete",
    )
    .await?;
    if !server_group::delete(state.pool(), &group.id)
        .await
        .map_err(db_error)?
    {
        return Err(not_found(&id));
    }
    tracing::info!(server_group_id = %id, "server group deleted");
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_before_2_64_takes_policies() {
        let body = json!({"server_group": {"name": "g", "policies": ["affinity"]}});
        let request = parse_create(&body, Microversion::new(2, 1)).unwrap();
        assert_eq!(request.policy, "affinity");
        let soft = json!({"server_group": {"name": "g", "policies": ["soft-affinity"]}});
        assert!(parse_create(&soft, Microversion::new(2, 14)).is_err());
        assert!(parse_create(&soft, Microversion::new(2, 15)).is_ok());
        let two = json!({"server_group": {"name": "g", "policies": ["affinity", "anti-affinity"]}});
        assert!(parse_create(&two, Microversion::new(2, 1)).is_err());
        let policy = json!({"server_group": {"name": "g", "policy": "affinity"}});
        assert!(parse_create(&policy, Microversion::new(2, 63)).is_err());
    }

    #[test]
    fn create_at_2_64_takes_policy_and_rules() {
        let body = json!({"server_group": {"name": "g", "policy": "anti-affinity", "rules": {"max_server_per_host": 2}}});
        let request = parse_create(&body, Microversion::new(2, 64)).unwrap();
        assert_eq!(request.rules.get("max_server_per_host"), Some(&json!(2)));
        let affinity = json!({"server_group": {"name": "g", "policy": "affinity", "rules": {"max_server_per_host": 2}}});
        assert!(parse_create(&affinity, Microversion::new(2, 64)).is_err());
        let zero = json!({"server_group": {"name": "g", "policy": "anti-affinity", "rules": {"max_server_per_host": 0}}});
        assert!(parse_create(&zero, Microversion::new(2, 64)).is_err());
        let policies = json!({"server_group": {"name": "g", "policies": ["affinity"]}});
        assert!(parse_create(&policies, Microversion::new(2, 64)).is_err());
    }

    #[test]
    fn name_is_checked() {
        let blank = json!({"server_group": {"name": " g", "policies": ["affinity"]}});
        assert!(parse_create(&blank, Microversion::new(2, 1)).is_err());
        let missing = json!({"server_group": {"policies": ["affinity"]}});
        assert!(parse_create(&missing, Microversion::new(2, 1)).is_err());
    }
}
