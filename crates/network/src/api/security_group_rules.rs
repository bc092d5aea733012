//! `/v2.0/security-group-rules`. Rules cannot be updated, as in Neutron:
//! clients delete a rule and create another.

use std::collections::{HashMap, HashSet};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use oxstack_core::time::{from_unix, iso8601};
use oxstack_core::ApiError;
use serde_json::{json, Value};

use super::body::{self, NeutronBody};
use super::networks::MAX_NAME_LEN;
use super::query::{select_fields, ListQuery, QueryPairs};
use super::sg_rule_input as input;
use super::{db_error, security_groups, NetworkState};
use crate::db;
use crate::model::{now, ProjectId, SecurityGroupId, SecurityGroupRule, SecurityGroupRuleId};
use crate::policy::{security_group_rule_target, security_group_target, Caller};
use crate::quota;
use crate::NetworkService;

pub use input::rule_key;

const CREATE_ATTRIBUTES: &[&str] = &[
    "security_group_id",
    "direction",
    "ethertype",
    "protocol",
    "port_range_min",
    "port_range_max",
    "remote_ip_prefix",
    "remote_group_id",
    "remote_address_group_id",
    "description",
    "project_id",
    "tenant_id",
];
const SORTABLE: &[&str] = &[
    "id",
    "direction",
    "ethertype",
    "protocol",
    "port_range_min",
    "port_range_max",
    "remote_ip_prefix",
    "remote_group_id",
    "security_group_id",
    "project_id",
    "tenant_id",
    "created_at",
    "updated_at",
    "revision_number",
];

pub fn routes() -> Router<NetworkState> {
    Router::new()
        .route("/v2.0/security-group-rules", get(list).post(create))
        .route(
            "/v2.0/security-group-rules/{rule_id}",
            get(show).delete(remove),
        )
}

/// Renders `rule`, with `in_default_group` as Neutron's
/// `belongs_to_default_sg`.
pub fn render(rule: &SecurityGroupRule, in_default_group: bool) -> Value {
    json!({
        "id": rule.id,
        "security_group_id": rule.security_group_id,
        "direction": rule.direction,
        "ethertype": rule.ethertype,
        "protocol": rule.protocol,
        "port_range_min": rule.port_range_min,
        "port_range_max": rule.port_range_max,
        "remote_ip_prefix": rule.remote_ip_prefix,
        "normalized_cidr": rule.remote_ip_prefix,
        "remote_group_id": rule.remote_group_id,
        "remote_address_group_id": null,
        "description": rule.description,
        "tenant_id": rule.project_id,
        "project_id": rule.project_id,
        "belongs_to_default_sg": in_default_group,
        "created_at": iso8601(from_unix(rule.created_at)),
        "updated_at": iso8601(from_unix(rule.updated_at)),
        "revision_number": rule.revision_number,
    })
}

fn not_found(id: &SecurityGroupRuleId) -> ApiError {
    ApiError::not_found(format!("Security group rule {id} does not exist"))
        .with_type("SecurityGroupRuleNotFound")
}

/// Loads a rule the caller may see, with the project of its group.
async fn find_visible(
    state: &NetworkService,
    caller: &Caller,
    id: &SecurityGroupRuleId,
) -> Result<(SecurityGroupRule, ProjectId), ApiError> {
    let rule = db::security_groups::get_rule(state.pool(), id)
        .await
        .map_err(db_error)?
        .ok_or_else(|| not_found(id))?;
    let group = db::security_groups::get_group(state.pool(), &rule.security_group_id)
        .await
        .map_err(db_error)?
        .ok_or_else(|| not_found(id))?;
    let target = security_group_rule_target(&rule, group.project_id.as_str());
    if !caller.allows(&state.policy, "get_security_group_rule", &target) {
        return Err(not_found(id));
    }
    Ok((rule, group.project_id))
}

async fn default_groups(state: &NetworkService) -> Result<HashSet<SecurityGroupId>, ApiError> {
    Ok(db::security_groups::default_group_ids(state.pool())
        .await
        .map_err(db_error)?
        .into_iter()
        .collect())
}

async fn list(
    State(state): State<NetworkState>,
    caller: Caller,
    QueryPairs(pairs): QueryPairs,
) -> Result<Json<Value>, ApiError> {
    security_groups::ensure_caller_default(&state, &caller).await?;
    let query = ListQuery::parse(pairs, SORTABLE)?;
    let defaults = default_groups(&state).await?;
    let group_projects: HashMap<SecurityGroupId, ProjectId> =
        db::security_groups::list_groups(state.pool())
            .await
            .map_err(db_error)?
            .into_iter()
            .map(|group| (group.id, group.project_id))
            .collect();
    let items: Vec<Value> = db::security_groups::list_rules(state.pool())
        .await
        .map_err(db_error)?
        .iter()
        .filter(|rule| {
            group_projects
                .get(&rule.security_group_id)
                .is_some_and(|project| {
                    let target = security_group_rule_target(rule, project.as_str());
                    caller.allows(&state.policy, "get_security_group_rule", &target)
                })
        })
        .map(|rule| render(rule, defaults.contains(&rule.security_group_id)))
        .collect();
    Ok(Json(query.respond(
        "security_group_rules",
        &state.v2_url("security-group-rules"),
        items,
    )?))
}

async fn show(
    State(state): State<NetworkState>,
    caller: Caller,
    Path(id): Path<SecurityGroupRuleId>,
    QueryPairs(pairs): QueryPairs,
) -> Result<Json<Value>, ApiError> {
    let (rule, _) = find_visible(&state, &caller, &id).await?;
    let fields: Vec<String> = pairs
        .into_iter()
        .filter(|(k, _)| k == "fields")
        .map(|(_, v)| v)
        .collect();
    let in_default = default_groups(&state)
        .await?
        .contains(&rule.security_group_id);
    let body = select_fields(render(&rule, in_default), &fields);
    Ok(Json(json!({ "security_group_rule": body })))
}

fn required_group(object: &serde_json::Map<String, Value>) -> Result<SecurityGroupId, ApiError> {
    body::string(object, "security_group_id", 255)?
        .map(SecurityGroupId::new)
        .ok_or_else(|| {
            body::bad_request(
                "Failed to parse request. Required attribute 'security_group_id' not specified",
            )
        })
}

async fn create(
    State(state): State<NetworkState>,
    caller: Caller,
    NeutronBody(request): NeutronBody,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let object = body::resource_object(request, "security_group_rule", CREATE_ATTRIBUTES)?;
    let group_id = required_group(&object)?;
    let direction = input::direction(&object)?;
    let ethertype = input::ethertype(&object)?;
    let protocol = input::canonical_protocol(&ethertype, input::protocol(&object)?);
    let port_range_min = input::port(&object, "port_range_min")?;
    let port_range_max = input::port(&object, "port_range_max")?;
    let remote_ip_prefix = input::remote_ip_prefix(&object, &ethertype)?;
    let remote_group_id = body::nullable_string(&object, "remote_group_id")?
        .flatten()
        .map(SecurityGroupId::new);
    if object
        .get("remote_address_group_id")
        .is_some_and(|value| !value.is_null())
    {
        return Err(body::bad_request(
            "Address groups are not supported; give 'remote_ip_prefix' or 'remote_group_id' instead.",
        ));
    }
    if remote_ip_prefix.is_some() && remote_group_id.is_some() {
        return Err(ApiError::bad_request(
            "Only remote_ip_prefix or remote_group_id may be provided.",
        )
        .with_type("SecurityGroupRemoteGroupAndRemoteIpPrefix"));
    }
    input::check_ethertype_protocol(&ethertype, protocol.as_deref())?;
    input::check_port_range(protocol.as_deref(), port_range_min, port_range_max)?;

    let project_id = body::owner_project(&caller, &object)?;
    let group = security_groups::find_visible(&state, &caller, &group_id).await?;
    caller.authorize(
        &state.policy,
        "create_security_group_rule",
        &security_group_target(&group),
    )?;
    if let Some(remote) = &remote_group_id {
        security_groups::find_visible(&state, &caller, remote).await?;
    }
    let created = now();
    let rule = SecurityGroupRule {
        id: SecurityGroupRuleId::generate(),
        project_id,
        security_group_id: group_id,
        direction,
        ethertype,
        protocol,
        port_range_min,
        port_range_max,
        remote_ip_prefix,
        remote_group_id,
        description: body::string(&object, "description", MAX_NAME_LEN)?.unwrap_or_default(),
        revision_number: 0,
        created_at: created,
        updated_at: created,
    };
    insert_unique(&state, &rule).await?;
    tracing::info!(security_group_rule_id = %rule.id, security_group_id = %rule.security_group_id,
                   "created security group rule");
    let in_default = default_groups(&state)
        .await?
        .contains(&rule.security_group_id);
    Ok((
        StatusCode::CREATED,
        Json(json!({ "security_group_rule": render(&rule, in_default) })),
    ))
}

/// Inserts `rule` within its project's `security_group_rule` quota, or
/// returns `SecurityGroupRuleExists` naming the equal rule its group
/// already has.
async fn insert_unique(state: &NetworkService, rule: &SecurityGroupRule) -> Result<(), ApiError> {
    let key = rule_key(rule);
    let mut tx = state.pool().begin().await.map_err(db_error)?;
    quota::check(
        &mut tx,
        &rule.project_id,
        quota::Resource::SecurityGroupRule,
        1,
    )
    .await?;
    let inserted = match db::security_groups::insert_rule(&mut *tx, rule, &key).await {
        Ok(()) => tx.commit().await,
        Err(error) => Err(error),
    };
    match inserted {
        Ok(()) => Ok(()),
        Err(error) if oxstack_store::is_unique_violation(&error) => {
            let existing = db::security_groups::rule_with_key(state.pool(), &key)
                .await
                .map_err(db_error)?
                .map(|id| id.to_string())
                .unwrap_or_default();
            Err(ApiError::conflict(format!(
                "Security group rule already exists. Rule id is {existing}."
            ))
            .with_type("SecurityGroupRuleExists"))
        }
        Err(error) => Err(db_error(error)),
    }
}

async fn remove(
    State(state): State<NetworkState>,
    caller: Caller,
    Path(id): Path<SecurityGroupRuleId>,
) -> Result<StatusCode, ApiError> {
    let (rule, group_project) = find_visible(&state, &caller, &id).await?;
    caller.authorize(
        &state.policy,
        "delete_security_group_rule",
        &json!({"project_id": group_project, "tenant_id": group_project}),
    )?;
    if !db::security_groups::delete_rule(state.pool(), &id)
        .await
        .map_err(db_error)?
    {
        return Err(not_found(&id));
    }
    tracing::info!(security_group_rule_id = %id, security_group_id = %rule.security_group_id,
                   "deleted security group rule");
    Ok(StatusCode::NO_CONTENT)
}
