//! `GET /v3/role_assignments`: the filters `user.id`, `group.id`, `role.id`,
//! `scope.project.id`, `scope.domain.id`, `scope.system`,
//! `scope.OS-INHERIT:inherited_to`, and the flags `effective`,
//! `include_names` and `include_subtree`, with Keystone's rules on which
//! combinations are invalid.

use std::collections::{BTreeSet, HashMap};

use axum::extract::{RawQuery, State};
use axum::routing::get;
use axum::{Json, Router};
use oxstack_core::{ApiError, RequestContext};
use serde_json::{json, Value};

use super::effective::{self, Actor, Entry, Scope, World};
use crate::api::{collection_links, QueryMap};
use crate::db::projects::{Project, ProjectFilter};
use crate::db::{assignments, domains, groups, projects, roles, users};
use crate::policy::authorize;
use crate::{Identity, IdentityState};

pub fn routes() -> Router<IdentityState> {
    Router::new().route("/v3/role_assignments", get(list))
}

/// The query of one request, checked.
#[derive(Debug, Default)]
struct Filters {
    user_id: Option<String>,
    group_id: Option<String>,
    role_id: Option<String>,
    project_id: Option<String>,
    domain_id: Option<String>,
    system: bool,
    /// `Some(true)`: inherited assignments only; `Some(false)`: direct only.
    inherited: Option<bool>,
    effective: bool,
    include_names: bool,
    include_subtree: bool,
}

/// Keystone's reading of a flag: present and not `0` means true, even
/// without a value (`?effective`).
fn flag(query: &HashMap<String, String>, key: &str) -> bool {
    query.get(key).is_some_and(|v| v != "0")
}

impl Filters {
    fn parse(query: &HashMap<String, String>) -> Result<Filters, ApiError> {
        let text = |key: &str| query.get(key).filter(|v| !v.is_empty()).cloned();
        let filters = Filters {
            user_id: text("user.id"),
            group_id: text("group.id"),
            role_id: text("role.id"),
            project_id: text("scope.project.id"),
            domain_id: text("scope.domain.id"),
            // Keystone ignores any `scope.system` value other than `all`.
            system: query.get("scope.system").is_some_and(|v| v == "all"),
            inherited: query
                .get("scope.OS-INHERIT:inherited_to")
                .map(|v| v == "projects"),
            effective: flag(query, "effective"),
            include_names: flag(query, "include_names"),
            include_subtree: flag(query, "include_subtree"),
        };
        filters.check()?;
        Ok(filters)
    }

    fn check(&self) -> Result<(), ApiError> {
        let invalid = if self.domain_id.is_some() && self.project_id.is_some() {
            Some("Specify a domain or project, not both.")
        } else if self.system && self.domain_id.is_some() {
            Some("Specify system or domain, not both.")
        } else if self.system && self.project_id.is_some() {
            Some("Specify system or project, not both.")
        } else if self.user_id.is_some() && self.group_id.is_some() {
            Some("Specify a user or group, not both.")
        } else if self.effective && self.group_id.is_some() {
            Some("Combining effective and group filter will always result in an empty list.")
        } else if self.effective && self.inherited == Some(true) && self.domain_id.is_some() {
            Some("Combining effective, domain and inherited filters will always result in an empty list.")
        } else if self.include_subtree && self.project_id.is_none() {
            Some("scope.project.id must be specified if include_subtree is also specified.")
        } else {
            None
        };
        invalid.map_or(Ok(()), |message| Err(ApiError::bad_request(message)))
    }
}

async fn list(
    State(state): State<IdentityState>,
    ctx: RequestContext,
    query: QueryMap,
    RawQuery(raw_query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let filters = Filters::parse(&query)?;
    let pool = state.pool();
    let all_projects = projects::list(pool, &ProjectFilter::default()).await?;

    // Projects of interest: the named project, and its subtree on request.
    let mut project_ids: Option<BTreeSet<String>> = None;
    if let Some(project_id) = &filters.project_id {
        let mut ids: BTreeSet<String> = [project_id.clone()].into();
        if filters.include_subtree {
            let project = all_projects
                .iter()
                .find(|p| p.id == *project_id)
                .ok_or_else(|| {
                    ApiError::not_found(format!("Could not find project: {project_id}."))
                })?;
            let target = json!({"project": {"id": project.id, "domain_id": project.domain_id}, "domain_id": project.domain_id});
            authorize(
                &state,
                &ctx,
                "identity:list_role_assignments_for_tree",
                &target,
            )?;
            ids.extend(effective::subtree_ids(project_id, &all_projects));
        }
        project_ids = Some(ids);
    }
    if !filters.include_subtree {
        authorize(
            &state,
            &ctx,
            "identity:list_role_assignments",
            &json!({"domain_id": ctx.auth.domain_id}),
        )?;
    }

    let stored = assignments::list_all(pool).await?;
    let mut entries = if filters.effective {
        effective_entries(&state, &filters, &stored, &all_projects).await?
    } else {
        stored.iter().map(Entry::direct).collect()
    };
    entries.retain(|e| matches(e, &filters, project_ids.as_ref()));

    // A domain-scoped caller sees the assignments within their domain only.
    if let Some(domain_id) = &ctx.auth.domain_id {
        entries.retain(|e| match &e.scope {
            Scope::Domain(d) => d == domain_id,
            Scope::Project(p) => all_projects
                .iter()
                .any(|x| x.id == *p && x.domain_id == *domain_id),
            Scope::System => false,
        });
    }

    let names = if filters.include_names {
        Some(Names::load(&state, &all_projects).await?)
    } else {
        None
    };
    let items: Vec<Value> = entries
        .iter()
        .map(|e| render(&state, e, names.as_ref()))
        .collect();
    let path = match raw_query {
        Some(q) if !q.is_empty() => format!("role_assignments?{q}"),
        _ => "role_assignments".to_owned(),
    };
    Ok(Json(
        json!({ "role_assignments": items, "links": collection_links(&state, &path) }),
    ))
}

async fn effective_entries(
    state: &Identity,
    filters: &Filters,
    stored: &[assignments::Assignment],
    all_projects: &[Project],
) -> Result<Vec<Entry>, ApiError> {
    let pool = state.pool();
    let memberships = groups::memberships(pool).await?;
    let implications = roles::implications(pool).await?;
    let domain_role_ids: BTreeSet<String> = roles::all_by_id(pool)
        .await?
        .into_values()
        .filter(|r| r.domain_id.is_some())
        .map(|r| r.id)
        .collect();
    let world = World {
        memberships: &memberships,
        projects: all_projects,
        implications: &implications,
        domain_role_ids: &domain_role_ids,
    };
    Ok(effective::expand(
        stored,
        filters.user_id.as_deref(),
        &world,
    ))
}

/// Applies the filters to one row, after any expansion.
fn matches(entry: &Entry, filters: &Filters, project_ids: Option<&BTreeSet<String>>) -> bool {
    let actor_ok = match &entry.actor {
        Actor::User(id) => {
            filters.group_id.is_none() && filters.user_id.as_ref().is_none_or(|u| u == id)
        }
        Actor::Group(id) => {
            filters.user_id.is_none() && filters.group_id.as_ref().is_none_or(|g| g == id)
        }
    };
    let scope_ok = match &entry.scope {
        Scope::Project(id) => {
            filters.domain_id.is_none()
                && !filters.system
                && project_ids.is_none_or(|ids| ids.contains(id))
        }
        Scope::Domain(id) => {
            project_ids.is_none()
                && !filters.system
                && filters.domain_id.as_ref().is_none_or(|d| d == id)
        }
        // System assignments are never inherited.
        Scope::System => {
            project_ids.is_none() && filters.domain_id.is_none() && filters.inherited != Some(true)
        }
    };
    let inherited_ok = filters
        .inherited
        .is_none_or(|wanted| wanted == entry.inherited);
    let role_ok = filters.role_id.as_ref().is_none_or(|r| *r == entry.role_id);
    actor_ok && scope_ok && inherited_ok && role_ok
}

/// Names of everything a row can mention, for `include_names`.
struct Names {
    users: HashMap<String, (String, String)>,
    groups: HashMap<String, (String, String)>,
    projects: HashMap<String, (String, String)>,
    domains: HashMap<String, String>,
    roles: HashMap<String, roles::Role>,
}

impl Names {
    async fn load(state: &Identity, all_projects: &[Project]) -> Result<Names, ApiError> {
        let pool = state.pool();
        let users = users::list(pool, &Default::default())
            .await?
            .into_iter()
            .map(|u| (u.id, (u.name, u.domain_id)))
            .collect();
        let groups = groups::list(pool, &Default::default())
            .await?
            .into_iter()
            .map(|g| (g.id, (g.name, g.domain_id)))
            .collect();
        let projects = all_projects
            .iter()
            .map(|p| (p.id.clone(), (p.name.clone(), p.domain_id.clone())))
            .collect();
        let domains = domains::list(pool)
            .await?
            .into_iter()
            .map(|d| (d.id, d.name))
            .collect();
        let roles = roles::all_by_id(pool).await?;
        Ok(Names {
            users,
            groups,
            projects,
            domains,
            roles,
        })
    }

    fn domain(&self, id: &str) -> Value {
        json!({"id": id, "name": self.domains.get(id).cloned().unwrap_or_default()})
    }

    /// `{id, name, domain}` of a user, group or project; empty names when
    /// it is gone but still has assignments, as Keystone renders it.
    fn named(&self, table: &HashMap<String, (String, String)>, id: &str) -> Value {
        match table.get(id) {
            Some((name, domain_id)) => {
                json!({"id": id, "name": name, "domain": self.domain(domain_id)})
            }
            None => json!({"id": id, "name": "", "domain": {"id": "", "name": ""}}),
        }
    }

    fn role(&self, id: &str) -> Value {
        let Some(role) = self.roles.get(id) else {
            return json!({"id": id, "name": ""});
        };
        let mut body = json!({"id": id, "name": role.name});
        if let Some(domain_id) = &role.domain_id {
            body["domain"] = self.domain(domain_id);
        }
        body
    }
}

/// Renders a row as Keystone does, with `links.assignment` pointing at the
/// grant the row comes from.
fn render(state: &Identity, entry: &Entry, names: Option<&Names>) -> Value {
    let base = format!("{}/v3", state.public_url);
    let mut body = json!({"links": {}});

    let (scope, mut link) = render_scope(entry, names);
    body["scope"] = scope;

    match &entry.actor {
        Actor::User(id) => {
            body["user"] = names.map_or(json!({"id": id}), |n| n.named(&n.users, id));
            match &entry.via_group {
                Some(group_id) => {
                    body["links"]["membership"] =
                        json!(format!("{base}/groups/{group_id}/users/{id}"));
                    link.push_str(&format!("/groups/{group_id}"));
                }
                None => link.push_str(&format!("/users/{id}")),
            }
        }
        Actor::Group(id) => {
            body["group"] = names.map_or(json!({"id": id}), |n| n.named(&n.groups, id));
            link.push_str(&format!("/groups/{id}"));
        }
    }

    body["role"] = names.map_or(json!({"id": entry.role_id}), |n| n.role(&entry.role_id));
    // The grant behind an implied role is the grant of its prior role.
    link.push_str(&format!(
        "/roles/{}",
        entry.prior_role_id.as_ref().unwrap_or(&entry.role_id)
    ));

    if entry.inherited {
        body["scope"]["OS-INHERIT:inherited_to"] = json!("projects");
        link = format!("/OS-INHERIT{link}/inherited_to_projects");
    }
    body["links"]["assignment"] = json!(format!("{base}{link}"));
    if let Some(prior) = &entry.prior_role_id {
        // NOTE: Keystone writes this link as `/prior_role/{implied}/implies/{prior}`,
        // a path it does not serve; this one is the inference rule's own URL.
        body["links"]["prior_role"] =
            json!(format!("{base}/roles/{prior}/implies/{}", entry.role_id));
    }
    body
}

/// Renders the `scope` of a row, and returns it with the start of the
/// grant's path: the target the grant was made on.
fn render_scope(entry: &Entry, names: Option<&Names>) -> (Value, String) {
    match &entry.scope {
        Scope::Project(id) => {
            let scope =
                json!({"project": names.map_or(json!({"id": id}), |n| n.named(&n.projects, id))});
            let link = match &entry.inherited_from {
                Some(Scope::Domain(d)) => format!("/domains/{d}"),
                Some(Scope::Project(p)) => format!("/projects/{p}"),
                _ => format!("/projects/{id}"),
            };
            (scope, link)
        }
        Scope::Domain(id) => {
            let scope = json!({"domain": names.map_or(json!({"id": id}), |n| n.domain(id))});
            (scope, format!("/domains/{id}"))
        }
        Scope::System => (json!({"system": {"all": true}}), "/system".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn flags_follow_keystone() {
        let q = query(&[
            ("effective", ""),
            ("include_names", "0"),
            ("include_subtree", "false"),
        ]);
        assert!(flag(&q, "effective"));
        assert!(!flag(&q, "include_names"));
        assert!(flag(&q, "include_subtree"));
        assert!(!flag(&q, "missing"));
    }

    #[test]
    fn conflicting_filters_are_rejected() {
        for pairs in [
            vec![("user.id", "u"), ("group.id", "g")],
            vec![("scope.project.id", "p"), ("scope.domain.id", "d")],
            vec![("scope.system", "all"), ("scope.project.id", "p")],
            vec![("effective", ""), ("group.id", "g")],
            vec![("include_subtree", "")],
        ] {
            assert!(Filters::parse(&query(&pairs)).is_err(), "{pairs:?}");
        }
        assert!(Filters::parse(&query(&[("effective", ""), ("user.id", "u")])).is_ok());
    }

    #[test]
    fn system_rows_are_never_inherited() {
        let entry = Entry {
            scope: Scope::System,
            actor: Actor::User("u".into()),
            role_id: "r".into(),
            inherited: false,
            inherited_from: None,
            via_group: None,
            prior_role_id: None,
        };
        let inherited_only = Filters {
            inherited: Some(true),
            ..Default::default()
        };
        assert!(!matches(&entry, &inherited_only, None));
        assert!(matches(&entry, &Filters::default(), None));
        let project_only: BTreeSet<String> = ["p".to_owned()].into();
        assert!(!matches(&entry, &Filters::default(), Some(&project_only)));
    }
}
