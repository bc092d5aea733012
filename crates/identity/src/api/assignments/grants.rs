//! Grants of one role to one actor on one target:
//! `PUT/HEAD/GET/DELETE /v3/{projects|domains}/{id}/{users|groups}/{id}/roles/{role_id}`,
//! their `OS-INHERIT/…/inherited_to_projects` forms (the role applies to
//! every project below the target, not to the target itself), the system
//! forms under `/v3/system/{users|groups}/{id}/roles`, and the lists of
//! roles granted to an actor directly on a target.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use oxstack_core::{ApiError, RequestContext};
use serde_json::{json, Value};

use crate::api::{list_body, roles as role_api};
use crate::db::assignments::{self, Assignment, AssignmentType, SYSTEM_TARGET};
use crate::db::roles::Role;
use crate::db::{domains, groups, projects, roles, users};
use crate::policy::authorize;
use crate::{Identity, IdentityState};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    Project,
    Domain,
    System,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Actor {
    User,
    Group,
}

/// One family of grant routes: who receives the role, on what, and whether
/// it is inherited by the projects below.
#[derive(Clone, Copy, Debug)]
struct GrantKind {
    target: Target,
    actor: Actor,
    inherited: bool,
}

impl GrantKind {
    fn assignment_type(self) -> AssignmentType {
        match (self.actor, self.target) {
            (Actor::User, Target::Project) => AssignmentType::UserProject,
            (Actor::Group, Target::Project) => AssignmentType::GroupProject,
            (Actor::User, Target::Domain) => AssignmentType::UserDomain,
            (Actor::Group, Target::Domain) => AssignmentType::GroupDomain,
            (Actor::User, Target::System) => AssignmentType::UserSystem,
            (Actor::Group, Target::System) => AssignmentType::GroupSystem,
        }
    }

    /// Returns the route of one grant and the route of the list.
    fn paths(self) -> (String, String) {
        let actor = match self.actor {
            Actor::User => "users/{user_id}",
            Actor::Group => "groups/{group_id}",
        };
        let base = match self.target {
            Target::Project => format!("projects/{{project_id}}/{actor}/roles"),
            Target::Domain => format!("domains/{{domain_id}}/{actor}/roles"),
            Target::System => format!("system/{actor}/roles"),
        };
        if self.inherited {
            (
                format!("/v3/OS-INHERIT/{base}/{{role_id}}/inherited_to_projects"),
                format!("/v3/OS-INHERIT/{base}/inherited_to_projects"),
            )
        } else {
            (format!("/v3/{base}/{{role_id}}"), format!("/v3/{base}"))
        }
    }

    /// Returns the ids the route named: target, actor and (for one grant)
    /// role.
    fn ids(self, params: &HashMap<String, String>) -> (String, String, String) {
        let param = |key: &str| params.get(key).cloned().unwrap_or_default();
        let target_id = match self.target {
            Target::Project => param("project_id"),
            Target::Domain => param("domain_id"),
            Target::System => SYSTEM_TARGET.to_owned(),
        };
        let actor_id = match self.actor {
            Actor::User => param("user_id"),
            Actor::Group => param("group_id"),
        };
        (target_id, actor_id, param("role_id"))
    }
}

fn all_kinds() -> Vec<GrantKind> {
    let mut kinds = Vec::new();
    for actor in [Actor::User, Actor::Group] {
        for target in [Target::Project, Target::Domain] {
            for inherited in [false, true] {
                kinds.push(GrantKind {
                    target,
                    actor,
                    inherited,
                });
            }
        }
        kinds.push(GrantKind {
            target: Target::System,
            actor,
            inherited: false,
        });
    }
    kinds
}

type Params = Path<HashMap<String, String>>;

pub fn routes() -> Router<IdentityState> {
    let mut router = Router::new();
    for kind in all_kinds() {
        let (one_path, list_path) = kind.paths();
        // GET also serves HEAD: both return 204 when the grant exists.
        let one_routes = get(
            move |state: State<IdentityState>, ctx: RequestContext, params: Params| {
                check(state, ctx, params, kind)
            },
        )
        .put(
            move |state: State<IdentityState>, ctx: RequestContext, params: Params| {
                grant(state, ctx, params, kind)
            },
        )
        .delete(
            move |state: State<IdentityState>, ctx: RequestContext, params: Params| {
                revoke(state, ctx, params, kind)
            },
        );
        let list_routes = get(
            move |state: State<IdentityState>, ctx: RequestContext, params: Params| {
                list(state, ctx, params, kind)
            },
        );
        router = router
            .route(&one_path, one_routes)
            .route(&list_path, list_routes);
    }
    router
}

/// Looks up the actor (404 when missing unless `allow_missing`) and adds it
/// to the policy target.
async fn add_actor(
    state: &Identity,
    kind: GrantKind,
    actor_id: &str,
    allow_missing: bool,
    policy_target: &mut Value,
) -> Result<(), ApiError> {
    match kind.actor {
        Actor::User => match users::get(state.pool(), actor_id).await? {
            Some(user) => {
                policy_target["user"] = json!({"id": user.id, "domain_id": user.domain_id})
            }
            None if allow_missing => policy_target["user"] = json!({"id": actor_id}),
            None => {
                return Err(ApiError::not_found(format!(
                    "Could not find user: {actor_id}."
                )))
            }
        },
        Actor::Group => match groups::get(state.pool(), actor_id).await? {
            Some(group) => {
                policy_target["group"] = json!({"id": group.id, "domain_id": group.domain_id})
            }
            None if allow_missing => policy_target["group"] = json!({"id": actor_id}),
            None => {
                return Err(ApiError::not_found(format!(
                    "Could not find group: {actor_id}."
                )))
            }
        },
    }
    Ok(())
}

/// Looks up the project or domain (404 when missing) and adds it to the
/// policy target. Returns the project's domain for a project target.
async fn add_target(
    state: &Identity,
    kind: GrantKind,
    target_id: &str,
    policy_target: &mut Value,
) -> Result<Option<String>, ApiError> {
    match kind.target {
        Target::Project => {
            let project = projects::get(state.pool(), target_id)
                .await?
                .ok_or_else(|| {
                    ApiError::not_found(format!("Could not find project: {target_id}."))
                })?;
            policy_target["project"] = json!({"id": project.id, "domain_id": project.domain_id});
            Ok(Some(project.domain_id))
        }
        Target::Domain => {
            let domain = domains::get(state.pool(), target_id)
                .await?
                .ok_or_else(|| {
                    ApiError::not_found(format!("Could not find domain: {target_id}."))
                })?;
            policy_target["domain"] = json!({"id": domain.id});
            Ok(None)
        }
        Target::System => {
            policy_target["system"] = json!("all");
            Ok(None)
        }
    }
}

/// Resolves the role, actor and target named by a one-grant route, in
/// Keystone's order (role, actor, target), so that 404 names the first
/// missing one. Returns the assignment, its role, the project's domain for
/// a project grant, and the policy target.
async fn resolve(
    state: &Identity,
    kind: GrantKind,
    params: &HashMap<String, String>,
    allow_missing_actor: bool,
) -> Result<(Assignment, Role, Option<String>, Value), ApiError> {
    let (target_id, actor_id, role_id) = kind.ids(params);
    let role = role_api::find(state, &role_id).await?;
    let mut policy_target =
        json!({"role": {"id": role.id, "name": role.name, "domain_id": role.domain_id}});
    add_actor(
        state,
        kind,
        &actor_id,
        allow_missing_actor,
        &mut policy_target,
    )
    .await?;
    let project_domain = add_target(state, kind, &target_id, &mut policy_target).await?;
    let assignment = Assignment {
        kind: kind.assignment_type(),
        actor_id,
        target_id,
        role_id: role.id.clone(),
        inherited: kind.inherited,
    };
    Ok((assignment, role, project_domain, policy_target))
}

fn assignment_not_found(a: &Assignment) -> ApiError {
    ApiError::not_found(format!(
        "Could not find role assignment with role: {}, user or group: {}, project, domain, or system: {}.",
        a.role_id, a.actor_id, a.target_id
    ))
}

async fn check(
    State(state): State<IdentityState>,
    ctx: RequestContext,
    Path(params): Params,
    kind: GrantKind,
) -> Result<StatusCode, ApiError> {
    let (assignment, _, _, policy_target) = resolve(&state, kind, &params, false).await?;
    authorize(&state, &ctx, "identity:check_grant", &policy_target)?;
    if !assignments::exists(state.pool(), &assignment).await? {
        return Err(assignment_not_found(&assignment));
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn grant(
    State(state): State<IdentityState>,
    ctx: RequestContext,
    Path(params): Params,
    kind: GrantKind,
) -> Result<StatusCode, ApiError> {
    let (assignment, role, project_domain, policy_target) =
        resolve(&state, kind, &params, false).await?;
    authorize(&state, &ctx, "identity:create_grant", &policy_target)?;
    if let (Some(role_domain), Some(project_domain)) = (&role.domain_id, &project_domain) {
        if role_domain != project_domain {
            return Err(ApiError::forbidden(format!(
                "Project {} must be in the same domain as the role {} being assigned.",
                assignment.target_id, role.id
            )));
        }
    }
    if kind.target == Target::System && role.domain_id.is_some() {
        return Err(ApiError::bad_request(format!(
            "Role {} is a domain-specific role. Unable to use a domain-specific role in a system assignment.",
            role.id
        )));
    }
    assignments::grant(state.pool(), &assignment).await?;
    tracing::info!(
        assignment_type = assignment.kind.as_str(),
        actor_id = %assignment.actor_id,
        target_id = %assignment.target_id,
        role_id = %assignment.role_id,
        inherited = assignment.inherited,
        "granted role"
    );
    Ok(StatusCode::NO_CONTENT)
}

async fn revoke(
    State(state): State<IdentityState>,
    ctx: RequestContext,
    Path(params): Params,
    kind: GrantKind,
) -> Result<StatusCode, ApiError> {
    // A grant left behind by a deleted user or group can still be revoked.
    let (assignment, _, _, policy_target) = resolve(&state, kind, &params, true).await?;
    authorize(&state, &ctx, "identity:revoke_grant", &policy_target)?;
    if !assignments::revoke(state.pool(), &assignment).await? {
        return Err(assignment_not_found(&assignment));
    }
    tracing::info!(
        assignment_type = assignment.kind.as_str(),
        actor_id = %assignment.actor_id,
        target_id = %assignment.target_id,
        role_id = %assignment.role_id,
        inherited = assignment.inherited,
        "revoked role"
    );
    Ok(StatusCode::NO_CONTENT)
}

async fn list(
    State(state): State<IdentityState>,
    ctx: RequestContext,
    Path(params): Params,
    kind: GrantKind,
) -> Result<Json<Value>, ApiError> {
    let (target_id, actor_id, _) = kind.ids(&params);
    let mut policy_target = json!({});
    add_actor(&state, kind, &actor_id, false, &mut policy_target).await?;
    add_target(&state, kind, &target_id, &mut policy_target).await?;
    authorize(&state, &ctx, "identity:list_grants", &policy_target)?;
    let ids = assignments::granted_role_ids(
        state.pool(),
        kind.assignment_type(),
        &actor_id,
        &target_id,
        kind.inherited,
    )
    .await?;
    let all = roles::all_by_id(state.pool()).await?;
    let items = ids
        .iter()
        .filter_map(|id| all.get(id))
        .map(|r| role_api::render(&state, r))
        .collect();
    let (_, list_path) = kind.paths();
    let path = list_path
        .trim_start_matches("/v3/")
        .replace("{project_id}", &target_id)
        .replace("{domain_id}", &target_id)
        .replace("{user_id}", &actor_id)
        .replace("{group_id}", &actor_id);
    Ok(Json(list_body(&state, "roles", &path, items)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_distinct() {
        let mut paths: Vec<String> = all_kinds()
            .into_iter()
            .flat_map(|k| {
                let (one, list) = k.paths();
                [one, list]
            })
            .collect();
        let count = paths.len();
        paths.sort();
        paths.dedup();
        assert_eq!(paths.len(), count);
        assert_eq!(count, 20);
    }

    #[test]
    fn inherited_paths_follow_os_inherit() {
        let kind = GrantKind {
            target: Target::Domain,
            actor: Actor::Group,
            inherited: true,
        };
        let (one, list) = kind.paths();
        assert_eq!(one, "/v3/OS-INHERIT/domains/{domain_id}/groups/{group_id}/roles/{role_id}/inherited_to_projects");
        assert_eq!(
            list,
            "/v3/OS-INHERIT/domains/{domain_id}/groups/{group_id}/roles/inherited_to_projects"
        );
    }
}
