//! `/v2.0/security-groups`, and the `default` group every project gets on
//! first use.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use oxstack_core::time::{from_unix, iso8601};
use oxstack_core::ApiError;
use serde_json::{json, Map, Value};

use super::body::{self, NeutronBody};
use super::networks::MAX_NAME_LEN;
use super::query::{select_fields, ListQuery, QueryPairs};
use super::security_group_rules::{self, rule_key};
use super::{db_error, NetworkState};
use crate::db;
use crate::model::{
    now, ProjectId, SecurityGroup, SecurityGroupId, SecurityGroupRule, SecurityGroupRuleId,
};
use crate::policy::{security_group_target, Caller};
use crate::quota::{self, QuotaError};
use crate::NetworkService;

pub const DEFAULT_NAME: &str = "default";
const CREATE_ATTRIBUTES: &[&str] = &["name", "description", "stateful", "project_id", "tenant_id"];
const UPDATE_ATTRIBUTES: &[&str] = &[
    "name",
    "description",
    "stateful",
    "id",
    "project_id",
    "tenant_id",
    "security_group_rules",
    "created_at",
    "updated_at",
    "revision_number",
];
const READ_ONLY: &[&str] = &[
    "id",
    "project_id",
    "tenant_id",
    "security_group_rules",
    "created_at",
    "updated_at",
    "revision_number",
];
const SORTABLE: &[&str] = &[
    "id",
    "name",
    "description",
    "project_id",
    "tenant_id",
    "created_at",
    "updated_at",
    "revision_number",
];

pub fn routes() -> Router<NetworkState> {
    Router::new()
        .route("/v2.0/security-groups", get(list).post(create))
        .route(
            "/v2.0/security-groups/{security_group_id}",
            get(show).put(update).delete(remove),
        )
}

pub fn render(group: &SecurityGroup, rules: &[SecurityGroupRule], is_default: bool) -> Value {
    let rules: Vec<Value> = rules
        .iter()
        .map(|rule| security_group_rules::render(rule, is_default))
        .collect();
    json!({
        "id": group.id,
        "name": group.name,
        "description": group.description,
        "tenant_id": group.project_id,
        "project_id": group.project_id,
        "security_group_rules": rules,
        "stateful": group.stateful,
        "shared": false,
        "tags": group.tags,
        "created_at": iso8601(from_unix(group.created_at)),
        "updated_at": iso8601(from_unix(group.updated_at)),
        "revision_number": group.revision_number,
    })
}

pub fn not_found(id: &SecurityGroupId) -> ApiError {
    ApiError::not_found(format!("Security group {id} does not exist"))
        .with_type("SecurityGroupNotFound")
}

fn in_use_conflict(message: String, error_type: &'static str) -> ApiError {
    ApiError::conflict(message).with_type(error_type)
}

/// Loads a group the caller may see. Any other is `SecurityGroupNotFound`.
pub async fn find_visible(
    state: &NetworkService,
    caller: &Caller,
    id: &SecurityGroupId,
) -> Result<SecurityGroup, ApiError> {
    let group = db::security_groups::get_group(state.pool(), id)
        .await
        .map_err(db_error)?
        .ok_or_else(|| not_found(id))?;
    if !caller.allows(
        &state.policy,
        "get_security_group",
        &security_group_target(&group),
    ) {
        return Err(not_found(id));
    }
    Ok(group)
}

/// Returns the rules Neutron gives a new group: any egress traffic, IPv4
/// and IPv6.
/// A project's default group also admits ingress from its own members.
fn initial_rules(group: &SecurityGroup, is_default: bool) -> Vec<SecurityGroupRule> {
    let mut shapes = vec![("egress", "IPv4", None), ("egress", "IPv6", None)];
    if is_default {
        shapes.push(("ingress", "IPv4", Some(group.id.clone())));
        shapes.push(("ingress", "IPv6", Some(group.id.clone())));
    }
    shapes
        .into_iter()
        .map(
            |(direction, ethertype, remote_group_id)| SecurityGroupRule {
                id: SecurityGroupRuleId::generate(),
                project_id: group.project_id.clone(),
                security_group_id: group.id.clone(),
                direction: direction.to_owned(),
                ethertype: ethertype.to_owned(),
                protocol: None,
                port_range_min: None,
                port_range_max: None,
                remote_ip_prefix: None,
                remote_group_id,
                description: String::new(),
                revision_number: 0,
                created_at: group.created_at,
                updated_at: group.created_at,
            },
        )
        .collect()
}

fn new_group(project_id: ProjectId, name: String, description: String) -> SecurityGroup {
    let created = now();
    SecurityGroup {
        id: SecurityGroupId::generate(),
        project_id,
        name,
        description,
        stateful: true,
        tags: Vec::new(),
        revision_number: 1,
        created_at: created,
        updated_at: created,
    }
}

/// Inserts `group` with its initial rules in one transaction. `is_default`
/// also records it as its project's default group. Creating any other
/// group checks the project's `security_group` quota, in which the default
/// group counts. The default group itself is created on first use whatever
/// the quota, as Neutron does.
async fn insert_with_rules(
    state: &NetworkService,
    group: &SecurityGroup,
    is_default: bool,
) -> Result<(), QuotaError> {
    let mut tx = state.pool().begin().await?;
    if !is_default {
        quota::check(
            &mut tx,
            &group.project_id,
            quota::Resource::SecurityGroup,
            1,
        )
        .await?;
    }
    db::security_groups::insert_group(&mut *tx, group).await?;
    if is_default {
        db::security_groups::insert_default(&mut *tx, &group.project_id, &group.id).await?;
    }
    for rule in initial_rules(group, is_default) {
        db::security_groups::insert_rule(&mut *tx, &rule, &rule_key(&rule)).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Returns the `default` group of `project_id`, creating it with Neutron's
/// four default rules when the project has none yet. Concurrent first uses
/// create one group: the loser's insert breaks the unique key on the
/// project and it reads the winner's group.
pub async fn ensure_default_group(
    state: &NetworkService,
    project_id: &ProjectId,
) -> Result<SecurityGroupId, ApiError> {
    if let Some(id) = db::security_groups::default_group_of(state.pool(), project_id)
        .await
        .map_err(db_error)?
    {
        return Ok(id);
    }
    let group = new_group(
        project_id.clone(),
        DEFAULT_NAME.to_owned(),
        "Default security group".to_owned(),
    );
    match insert_with_rules(state, &group, true).await {
        Ok(()) => {
            tracing::info!(security_group_id = %group.id, project_id = %project_id,
                           "created default security group");
            Ok(group.id)
        }
        Err(QuotaError::Database(error)) if oxstack_store::is_unique_violation(&error) => {
            db::security_groups::default_group_of(state.pool(), project_id)
                .await
                .map_err(db_error)?
                .ok_or_else(|| db_error(error))
        }
        Err(error) => Err(error.into()),
    }
}

/// Creates the caller's default group if the caller has a project and none
/// exists yet, as Neutron does on a project's first request.
pub async fn ensure_caller_default(
    state: &NetworkService,
    caller: &Caller,
) -> Result<(), ApiError> {
    if caller.project_id.is_empty() {
        return Ok(());
    }
    ensure_default_group(state, &ProjectId::new(caller.project_id.clone())).await?;
    Ok(())
}

fn check_name_not_default(name: &str) -> Result<(), ApiError> {
    if name.eq_ignore_ascii_case(DEFAULT_NAME) {
        return Err(in_use_conflict(
            "Default security group already exists.".to_owned(),
            "SecurityGroupDefaultAlreadyExists",
        ));
    }
    Ok(())
}

async fn list(
    State(state): State<NetworkState>,
    caller: Caller,
    QueryPairs(pairs): QueryPairs,
) -> Result<Json<Value>, ApiError> {
    ensure_caller_default(&state, &caller).await?;
    // An admin listing another project's groups gets that project's default
    // group too, as Neutron creates it for the project filtered on.
    let filtered_project = pairs
        .iter()
        .find(|(key, _)| key == "project_id" || key == "tenant_id")
        .map(|(_, value)| ProjectId::new(value.clone()));
    if let Some(project) = filtered_project.filter(|_| caller.is_admin) {
        ensure_default_group(&state, &project).await?;
    }

    // NOTE: an admin lists only its own project's groups unless it filters
    // on project_id or tenant_id, so that the CLI's lookup of `default` by
    // name finds one group, not every project's.
    let project_filtered = pairs
        .iter()
        .any(|(key, _)| key == "project_id" || key == "tenant_id");
    let query = ListQuery::parse(pairs, SORTABLE)?;

    let defaults = db::security_groups::default_group_ids(state.pool())
        .await
        .map_err(db_error)?;
    let mut rules_by_group: HashMap<SecurityGroupId, Vec<SecurityGroupRule>> = HashMap::new();
    for rule in db::security_groups::list_rules(state.pool())
        .await
        .map_err(db_error)?
    {
        rules_by_group
            .entry(rule.security_group_id.clone())
            .or_default()
            .push(rule);
    }

    let items: Vec<Value> = db::security_groups::list_groups(state.pool())
        .await
        .map_err(db_error)?
        .iter()
        .filter(|group| {
            project_filtered || !caller.is_admin || group.project_id.as_str() == caller.project_id
        })
        .filter(|group| {
            caller.allows(
                &state.policy,
                "get_security_group",
                &security_group_target(group),
            )
        })
        .map(|group| {
            let rules = rules_by_group.remove(&group.id).unwrap_or_default();
            render(group, &rules, defaults.contains(&group.id))
        })
        .collect();
    Ok(Json(query.respond(
        "security_groups",
        &state.v2_url("security-groups"),
        items,
    )?))
}

async fn render_stored(state: &NetworkService, group: &SecurityGroup) -> Result<Value, ApiError> {
    let rules = db::security_groups::rules_of(state.pool(), &group.id)
        .await
        .map_err(db_error)?;
    let is_default = is_default_group(state, group).await?;
    Ok(render(group, &rules, is_default))
}

async fn is_default_group(state: &NetworkService, group: &SecurityGroup) -> Result<bool, ApiError> {
    let default = db::security_groups::default_group_of(state.pool(), &group.project_id)
        .await
        .map_err(db_error)?;
    Ok(default.as_ref() == Some(&group.id))
}

async fn show(
    State(state): State<NetworkState>,
    caller: Caller,
    Path(id): Path<SecurityGroupId>,
    QueryPairs(pairs): QueryPairs,
) -> Result<Json<Value>, ApiError> {
    let group = find_visible(&state, &caller, &id).await?;
    let fields: Vec<String> = pairs
        .into_iter()
        .filter(|(k, _)| k == "fields")
        .map(|(_, v)| v)
        .collect();
    let body = select_fields(render_stored(&state, &group).await?, &fields);
    Ok(Json(json!({ "security_group": body })))
}

async fn create(
    State(state): State<NetworkState>,
    caller: Caller,
    NeutronBody(request): NeutronBody,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let object = body::resource_object(request, "security_group", CREATE_ATTRIBUTES)?;
    let project_id = body::owner_project(&caller, &object)?;
    let target = json!({"project_id": project_id, "tenant_id": project_id});
    caller.authorize(&state.policy, "create_security_group", &target)?;
    let name = body::string(&object, "name", MAX_NAME_LEN)?.unwrap_or_default();
    check_name_not_default(&name)?;
    let description = body::string(&object, "description", MAX_NAME_LEN)?.unwrap_or_default();
    ensure_default_group(&state, &project_id).await?;

    let mut group = new_group(project_id, name, description);
    group.stateful = body::boolean(&object, "stateful")?.unwrap_or(true);
    insert_with_rules(&state, &group, false).await?;
    tracing::info!(security_group_id = %group.id, project_id = %group.project_id,
                   "created security group");
    let body = render_stored(&state, &group).await?;
    Ok((StatusCode::CREATED, Json(json!({ "security_group": body }))))
}

fn apply_update(
    group: &mut SecurityGroup,
    object: &Map<String, Value>,
    is_default: bool,
) -> Result<(), ApiError> {
    if let Some(name) = body::string(object, "name", MAX_NAME_LEN)? {
        check_name_not_default(&name)?;
        if is_default {
            return Err(in_use_conflict(
                "Updating default security group not allowed.".to_owned(),
                "SecurityGroupCannotUpdateDefault",
            ));
        }
        group.name = name;
    }
    if let Some(description) = body::string(object, "description", MAX_NAME_LEN)? {
        group.description = description;
    }
    Ok(())
}

async fn update(
    State(state): State<NetworkState>,
    caller: Caller,
    Path(id): Path<SecurityGroupId>,
    NeutronBody(request): NeutronBody,
) -> Result<Json<Value>, ApiError> {
    let object = body::resource_object(request, "security_group", UPDATE_ATTRIBUTES)?;
    body::reject_read_only(&object, READ_ONLY)?;
    let mut group = find_visible(&state, &caller, &id).await?;
    caller.authorize(
        &state.policy,
        "update_security_group",
        &security_group_target(&group),
    )?;
    let is_default = is_default_group(&state, &group).await?;
    apply_update(&mut group, &object, is_default)?;
    if let Some(stateful) = body::boolean(&object, "stateful")? {
        // Neutron refuses to change statefulness under ports that use it,
        // because their firewalls would have to be rebuilt in place.
        if stateful != group.stateful && ports_using(&state, &id).await? > 0 {
            return Err(in_use(&id));
        }
        group.stateful = stateful;
    }

    group.revision_number += 1;
    group.updated_at = now();
    if !db::security_groups::update_group(state.pool(), &group)
        .await
        .map_err(db_error)?
    {
        return Err(ApiError::conflict(format!(
            "Security group {id} was changed by another request; retry the update."
        ))
        .with_type("Conflict"));
    }
    Ok(Json(
        json!({ "security_group": render_stored(&state, &group).await? }),
    ))
}

async fn ports_using(state: &NetworkService, id: &SecurityGroupId) -> Result<i64, ApiError> {
    db::ports::count_with_group(state.pool(), id)
        .await
        .map_err(db_error)
}

fn in_use(id: &SecurityGroupId) -> ApiError {
    in_use_conflict(format!("Security Group {id} in use."), "SecurityGroupInUse")
}

async fn remove(
    State(state): State<NetworkState>,
    caller: Caller,
    Path(id): Path<SecurityGroupId>,
) -> Result<StatusCode, ApiError> {
    let group = find_visible(&state, &caller, &id).await?;
    caller.authorize(
        &state.policy,
        "delete_security_group",
        &security_group_target(&group),
    )?;

    if ports_using(&state, &id).await? > 0 {
        return Err(in_use(&id));
    }
    if is_default_group(&state, &group).await? && !caller.is_admin {
        return Err(in_use_conflict(
            "Insufficient rights for removing default security group.".to_owned(),
            "SecurityGroupCannotRemoveDefault",
        ));
    }
    // A port that takes the group after the check above makes the delete
    // break the foreign key of port_security_groups, reported the same way.
    let in_use_or_db = |error: sqlx::Error| match &error {
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => in_use(&id),
        _ => db_error(error),
    };

    let mut tx = state.pool().begin().await.map_err(db_error)?;
    let deleted = db::security_groups::delete_group(&mut tx, &id)
        .await
        .map_err(in_use_or_db)?;
    tx.commit().await.map_err(in_use_or_db)?;
    if !deleted {
        return Err(not_found(&id));
    }
    tracing::info!(security_group_id = %id, "deleted security group");
    Ok(StatusCode::NO_CONTENT)
}
