//! Rows of `GET /v3/role_assignments`, and their expansion in effective
//! mode. Effective mode lists the roles each user has on each target, as a
//! token would carry them:
//! - a group assignment becomes one user assignment per member, which
//!   remembers the group (`links.membership`);
//! - an inherited assignment becomes one assignment on every project below
//!   its target (every project of a domain, or a project's subtree without
//!   the project itself), which remembers where it was made;
//! - every role implied by an assigned role is added, remembering the role
//!   that implied it (`links.prior_role`);
//! - domain-specific roles are dropped, since tokens never carry them.
//!
//! The functions here work on data already loaded, so they can be tested
//! without a database.

use std::collections::{BTreeMap, BTreeSet};

use crate::db::assignments::{Assignment, AssignmentType};
use crate::db::projects::Project;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Actor {
    User(String),
    Group(String),
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    Project(String),
    Domain(String),
    System,
}

/// One role assignment as the API lists it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Entry {
    pub scope: Scope,
    pub actor: Actor,
    pub role_id: String,
    /// Made with `OS-INHERIT`, or applied to a project from such an
    /// assignment on a domain or ancestor.
    pub inherited: bool,
    /// The domain or ancestor project an inherited assignment was made on,
    /// when it is shown on a project below it.
    pub inherited_from: Option<Scope>,
    /// The group through which the user has this role.
    pub via_group: Option<String>,
    /// The role that implies this one.
    pub prior_role_id: Option<String>,
}

impl Entry {
    /// Builds the row of a stored assignment, before any expansion.
    pub fn direct(a: &Assignment) -> Entry {
        let actor = if a.kind.is_group() {
            Actor::Group(a.actor_id.clone())
        } else {
            Actor::User(a.actor_id.clone())
        };
        let scope = match a.kind {
            AssignmentType::UserProject | AssignmentType::GroupProject => {
                Scope::Project(a.target_id.clone())
            }
            AssignmentType::UserDomain | AssignmentType::GroupDomain => {
                Scope::Domain(a.target_id.clone())
            }
            AssignmentType::UserSystem | AssignmentType::GroupSystem => Scope::System,
        };
        Entry {
            scope,
            actor,
            role_id: a.role_id.clone(),
            inherited: a.inherited,
            inherited_from: None,
            via_group: None,
            prior_role_id: None,
        }
    }
}

/// The data that expansion reads besides the assignments.
pub struct World<'a> {
    /// (group id, user id) pairs.
    pub memberships: &'a [(String, String)],
    pub projects: &'a [Project],
    /// (prior role id, implied role id) pairs.
    pub implications: &'a [(String, String)],
    /// Ids of the roles that belong to a domain.
    pub domain_role_ids: &'a BTreeSet<String>,
}

/// Expands `assignments` as effective mode does. With `only_user`, group
/// assignments expand to that user only, and other users' rows are left
/// out. The result is sorted and free of duplicates.
pub fn expand(
    assignments: &[Assignment],
    only_user: Option<&str>,
    world: &World<'_>,
) -> Vec<Entry> {
    let children = children_by_parent(world.projects);
    let mut entries = Vec::new();
    for assignment in assignments {
        let direct = Entry::direct(assignment);
        let users = users_of(assignment, only_user, world.memberships);
        let scopes: Vec<(Scope, Option<Scope>)> = if assignment.inherited {
            projects_below(&direct.scope, world.projects, &children)
                .into_iter()
                .map(|p| (Scope::Project(p), Some(direct.scope.clone())))
                .collect()
        } else {
            vec![(direct.scope.clone(), None)]
        };
        for (user_id, via_group) in &users {
            for (scope, inherited_from) in &scopes {
                entries.push(Entry {
                    scope: scope.clone(),
                    actor: Actor::User(user_id.clone()),
                    inherited_from: inherited_from.clone(),
                    via_group: via_group.clone(),
                    ..direct.clone()
                });
            }
        }
    }
    let mut entries = add_implied(entries, world.implications);
    entries.retain(|e| !world.domain_role_ids.contains(&e.role_id));
    entries.sort();
    entries.dedup();
    entries
}

/// Returns the users an assignment applies to, each with the group it
/// comes through.
fn users_of(
    a: &Assignment,
    only_user: Option<&str>,
    memberships: &[(String, String)],
) -> Vec<(String, Option<String>)> {
    let wanted = |user: &str| only_user.is_none_or(|u| u == user);
    if !a.kind.is_group() {
        return if wanted(&a.actor_id) {
            vec![(a.actor_id.clone(), None)]
        } else {
            Vec::new()
        };
    }
    memberships
        .iter()
        .filter(|(group, user)| *group == a.actor_id && wanted(user))
        .map(|(_, user)| (user.clone(), Some(a.actor_id.clone())))
        .collect()
}

fn children_by_parent(projects: &[Project]) -> BTreeMap<&str, Vec<&str>> {
    let mut children: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for project in projects {
        if let Some(parent) = &project.parent_id {
            children
                .entry(parent.as_str())
                .or_default()
                .push(project.id.as_str());
        }
    }
    children
}

/// Returns the projects an inherited assignment on `scope` reaches: all projects of
/// a domain, or the descendants of a project (not the project itself).
fn projects_below(
    scope: &Scope,
    projects: &[Project],
    children: &BTreeMap<&str, Vec<&str>>,
) -> Vec<String> {
    match scope {
        Scope::Domain(domain_id) => projects
            .iter()
            .filter(|p| p.domain_id == *domain_id)
            .map(|p| p.id.clone())
            .collect(),
        Scope::Project(project_id) => descendants(project_id, children),
        Scope::System => Vec::new(),
    }
}

/// Returns the ids of every project below `project_id`, nearest first.
pub fn descendants(project_id: &str, children: &BTreeMap<&str, Vec<&str>>) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let mut next = 0;
    let mut frontier: Vec<&str> = children.get(project_id).cloned().unwrap_or_default();
    // Breadth first; `found` doubles as the visited set against corrupt cycles.
    while next < frontier.len() {
        let id = frontier[next];
        next += 1;
        if found.iter().any(|f| f == id) || id == project_id {
            continue;
        }
        found.push(id.to_owned());
        frontier.extend(children.get(id).cloned().unwrap_or_default());
    }
    found
}

/// Returns the ids of every project below `project_id` in `projects`.
pub fn subtree_ids(project_id: &str, projects: &[Project]) -> Vec<String> {
    descendants(project_id, &children_by_parent(projects))
}

/// Adds a copy of each entry for every role its role implies, transitively.
/// Each copy names the role that implied it directly.
fn add_implied(entries: Vec<Entry>, implications: &[(String, String)]) -> Vec<Entry> {
    let mut seen: BTreeSet<Entry> = entries.iter().cloned().collect();
    let mut pending = entries.clone();
    let mut result = entries;
    while let Some(entry) = pending.pop() {
        for (_, implied) in implications
            .iter()
            .filter(|(prior, _)| *prior == entry.role_id)
        {
            let copy = Entry {
                role_id: implied.clone(),
                prior_role_id: Some(entry.role_id.clone()),
                ..entry.clone()
            };
            // The set bounds the walk: a cycle of rules repeats an entry.
            if seen.insert(copy.clone()) {
                result.push(copy.clone());
                pending.push(copy);
            }
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn project(id: &str, domain: &str, parent: Option<&str>) -> Project {
        Project {
            id: id.into(),
            name: id.into(),
            domain_id: domain.into(),
            parent_id: parent.map(Into::into),
            description: String::new(),
            enabled: true,
            tags: json!([]),
            options: json!({}),
        }
    }

    fn assignment(
        kind: AssignmentType,
        actor: &str,
        target: &str,
        role: &str,
        inherited: bool,
    ) -> Assignment {
        Assignment {
            kind,
            actor_id: actor.into(),
            target_id: target.into(),
            role_id: role.into(),
            inherited,
        }
    }

    fn pair(a: &str, b: &str) -> (String, String) {
        (a.into(), b.into())
    }

    struct Fixture {
        memberships: Vec<(String, String)>,
        projects: Vec<Project>,
        implications: Vec<(String, String)>,
        domain_roles: BTreeSet<String>,
    }

    impl Fixture {
        fn new() -> Self {
            Fixture {
                memberships: vec![pair("g1", "alice"), pair("g1", "bob")],
                projects: vec![
                    project("p1", "d1", None),
                    project("p2", "d1", Some("p1")),
                    project("p3", "d1", Some("p2")),
                ],
                implications: vec![pair("a", "b"), pair("b", "c")],
                domain_roles: ["dr".to_owned()].into(),
            }
        }

        fn world(&self) -> World<'_> {
            World {
                memberships: &self.memberships,
                projects: &self.projects,
                implications: &self.implications,
                domain_role_ids: &self.domain_roles,
            }
        }
    }

    #[test]
    fn group_assignment_expands_to_members() {
        let fixture = Fixture::new();
        let input = [assignment(
            AssignmentType::GroupProject,
            "g1",
            "p1",
            "x",
            false,
        )];
        let entries = expand(&input, None, &fixture.world());
        assert_eq!(entries.len(), 2);
        assert!(entries.iter().all(|e| e.via_group.as_deref() == Some("g1")));
        assert_eq!(entries[0].actor, Actor::User("alice".into()));
        let only_bob = expand(&input, Some("bob"), &fixture.world());
        assert_eq!(only_bob.len(), 1);
        assert_eq!(only_bob[0].actor, Actor::User("bob".into()));
    }

    #[test]
    fn inherited_project_assignment_reaches_descendants_only() {
        let fixture = Fixture::new();
        let input = [assignment(
            AssignmentType::UserProject,
            "alice",
            "p1",
            "x",
            true,
        )];
        let scopes: Vec<Scope> = expand(&input, None, &fixture.world())
            .into_iter()
            .map(|e| e.scope)
            .collect();
        assert_eq!(
            scopes,
            vec![Scope::Project("p2".into()), Scope::Project("p3".into())]
        );
    }

    #[test]
    fn inherited_domain_assignment_reaches_every_project() {
        let fixture = Fixture::new();
        let input = [assignment(
            AssignmentType::UserDomain,
            "alice",
            "d1",
            "x",
            true,
        )];
        let entries = expand(&input, None, &fixture.world());
        assert_eq!(entries.len(), 3);
        assert!(entries
            .iter()
            .all(|e| e.inherited && e.inherited_from == Some(Scope::Domain("d1".into()))));
    }

    #[test]
    fn implied_roles_name_their_prior_role() {
        let fixture = Fixture::new();
        let input = [assignment(
            AssignmentType::UserProject,
            "alice",
            "p1",
            "a",
            false,
        )];
        let entries = expand(&input, None, &fixture.world());
        let roles: Vec<(&str, Option<&str>)> = entries
            .iter()
            .map(|e| (e.role_id.as_str(), e.prior_role_id.as_deref()))
            .collect();
        assert_eq!(roles, vec![("a", None), ("b", Some("a")), ("c", Some("b"))]);
    }

    #[test]
    fn implication_cycle_terminates() {
        let mut fixture = Fixture::new();
        fixture.implications.push(pair("c", "a"));
        let input = [assignment(
            AssignmentType::UserProject,
            "alice",
            "p1",
            "a",
            false,
        )];
        let entries = expand(&input, None, &fixture.world());
        assert!(entries.len() >= 3);
    }

    #[test]
    fn domain_specific_roles_are_dropped() {
        let fixture = Fixture::new();
        let input = [assignment(
            AssignmentType::UserProject,
            "alice",
            "p1",
            "dr",
            false,
        )];
        assert!(expand(&input, None, &fixture.world()).is_empty());
    }

    #[test]
    fn subtree_of_leaf_is_empty() {
        let fixture = Fixture::new();
        assert_eq!(
            subtree_ids("p1", &fixture.projects),
            vec!["p2".to_owned(), "p3".to_owned()]
        );
        assert!(subtree_ids("p3", &fixture.projects).is_empty());
    }
}
