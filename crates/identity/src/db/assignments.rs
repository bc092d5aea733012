//! Role assignments: which actor (user or group) has which role on which
//! target (project, domain or the system), possibly inherited down the
//! project tree.

use std::collections::BTreeSet;

use oxstack_core::ApiError;
use oxstack_store::{Pool, Row};
use sqlx::any::AnyRow;

use super::{db_error, placeholders};

/// The target id of system assignments.
pub const SYSTEM_TARGET: &str = "system";

/// Keystone's assignment types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AssignmentType {
    UserProject,
    GroupProject,
    UserDomain,
    GroupDomain,
    UserSystem,
    GroupSystem,
}

impl AssignmentType {
    pub fn as_str(self) -> &'static str {
        match self {
            AssignmentType::UserProject => "UserProject",
            AssignmentType::GroupProject => "GroupProject",
            AssignmentType::UserDomain => "UserDomain",
            AssignmentType::GroupDomain => "GroupDomain",
            AssignmentType::UserSystem => "UserSystem",
            AssignmentType::GroupSystem => "GroupSystem",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "UserProject" => AssignmentType::UserProject,
            "GroupProject" => AssignmentType::GroupProject,
            "UserDomain" => AssignmentType::UserDomain,
            "GroupDomain" => AssignmentType::GroupDomain,
            "UserSystem" => AssignmentType::UserSystem,
            "GroupSystem" => AssignmentType::GroupSystem,
            _ => return None,
        })
    }

    pub fn is_group(self) -> bool {
        matches!(
            self,
            AssignmentType::GroupProject
                | AssignmentType::GroupDomain
                | AssignmentType::GroupSystem
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Assignment {
    pub kind: AssignmentType,
    pub actor_id: String,
    pub target_id: String,
    pub role_id: String,
    pub inherited: bool,
}

fn from_row(row: &AnyRow) -> Result<Assignment, sqlx::Error> {
    let kind: String = row.try_get("type")?;
    Ok(Assignment {
        kind: AssignmentType::parse(&kind)
            .ok_or_else(|| sqlx::Error::Decode(format!("unknown assignment type {kind}").into()))?,
        actor_id: row.try_get("actor_id")?,
        target_id: row.try_get("target_id")?,
        role_id: row.try_get("role_id")?,
        inherited: row.try_get::<i64, _>("inherited")? != 0,
    })
}

/// Grants a role; granting one that exists already is not an error.
pub async fn grant(pool: &Pool, a: &Assignment) -> Result<(), ApiError> {
    let result = sqlx::query(
        "INSERT INTO assignments (type, actor_id, target_id, role_id, inherited) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(a.kind.as_str())
    .bind(&a.actor_id)
    .bind(&a.target_id)
    .bind(&a.role_id)
    .bind(i64::from(a.inherited))
    .execute(pool)
    .await;
    match result {
        Ok(_) => Ok(()),
        Err(e) if oxstack_store::is_unique_violation(&e) => Ok(()),
        Err(e) => Err(db_error(e)),
    }
}

/// Revokes a role; returns false when there was no such assignment.
pub async fn revoke(pool: &Pool, a: &Assignment) -> Result<bool, ApiError> {
    let result = sqlx::query(
        "DELETE FROM assignments WHERE type = $1 AND actor_id = $2 AND target_id = $3 AND role_id = $4 AND inherited = $5",
    )
    .bind(a.kind.as_str())
    .bind(&a.actor_id)
    .bind(&a.target_id)
    .bind(&a.role_id)
    .bind(i64::from(a.inherited))
    .execute(pool)
    .await
    .map_err(db_error)?;
    Ok(result.rows_affected() > 0)
}

pub async fn exists(pool: &Pool, a: &Assignment) -> Result<bool, ApiError> {
    let row = sqlx::query(
        "SELECT role_id FROM assignments WHERE type = $1 AND actor_id = $2 AND target_id = $3 AND role_id = $4 AND inherited = $5",
    )
    .bind(a.kind.as_str())
    .bind(&a.actor_id)
    .bind(&a.target_id)
    .bind(&a.role_id)
    .bind(i64::from(a.inherited))
    .fetch_optional(pool)
    .await
    .map_err(db_error)?;
    Ok(row.is_some())
}

/// Returns the ids of the roles granted to one actor on one target, as
/// `GET /v3/projects/{p}/users/{u}/roles` lists them.
pub async fn granted_role_ids(
    pool: &Pool,
    kind: AssignmentType,
    actor_id: &str,
    target_id: &str,
    inherited: bool,
) -> Result<Vec<String>, ApiError> {
    let rows = sqlx::query(
        "SELECT role_id FROM assignments WHERE type = $1 AND actor_id = $2 AND target_id = $3 AND inherited = $4
         ORDER BY role_id",
    )
    .bind(kind.as_str())
    .bind(actor_id)
    .bind(target_id)
    .bind(i64::from(inherited))
    .fetch_all(pool)
    .await
    .map_err(db_error)?;
    rows.iter()
        .map(|r| r.try_get("role_id"))
        .collect::<Result<_, _>>()
        .map_err(db_error)
}

/// Lists every assignment, for the `role_assignments` API to filter.
pub async fn list_all(pool: &Pool) -> Result<Vec<Assignment>, ApiError> {
    let rows = sqlx::query("SELECT type, actor_id, target_id, role_id, inherited FROM assignments ORDER BY type, actor_id, target_id, role_id")
        .fetch_all(pool)
        .await
        .map_err(db_error)?;
    rows.iter()
        .map(from_row)
        .collect::<Result<_, _>>()
        .map_err(db_error)
}

/// Lists the assignments whose actor is one of `actor_ids` and whose target
/// is one of `target_ids`.
pub async fn for_actors_on_targets(
    pool: &Pool,
    actor_ids: &[String],
    target_ids: &[String],
) -> Result<Vec<Assignment>, ApiError> {
    if actor_ids.is_empty() || target_ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT type, actor_id, target_id, role_id, inherited FROM assignments
         WHERE actor_id IN ({}) AND target_id IN ({})",
        placeholders(1, actor_ids.len()),
        placeholders(actor_ids.len() + 1, target_ids.len())
    );
    let mut query = sqlx::query(&sql);
    for id in actor_ids.iter().chain(target_ids) {
        query = query.bind(id);
    }
    let rows = query.fetch_all(pool).await.map_err(db_error)?;
    rows.iter()
        .map(from_row)
        .collect::<Result<_, _>>()
        .map_err(db_error)
}

/// The scope a token's roles are computed for.
#[derive(Clone, Debug)]
pub enum RoleScope<'a> {
    /// A project, its domain and its ancestors (nearest first), through
    /// which inherited assignments flow down.
    Project {
        project_id: &'a str,
        domain_id: &'a str,
        ancestors: &'a [String],
    },
    Domain(&'a str),
    System,
}

/// Returns the ids of the roles `actor_ids` (a user and their groups) hold
/// directly on `scope`, before implied roles are added.
pub async fn direct_role_ids(
    pool: &Pool,
    actor_ids: &[String],
    scope: &RoleScope<'_>,
) -> Result<BTreeSet<String>, ApiError> {
    let targets: Vec<String> = match scope {
        RoleScope::Project {
            project_id,
            domain_id,
            ancestors,
        } => {
            let mut targets = vec![project_id.to_string(), domain_id.to_string()];
            targets.extend(ancestors.iter().cloned());
            targets
        }
        RoleScope::Domain(domain_id) => vec![domain_id.to_string()],
        RoleScope::System => vec![SYSTEM_TARGET.to_owned()],
    };
    let found = for_actors_on_targets(pool, actor_ids, &targets).await?;
    let applies = |a: &Assignment| match scope {
        RoleScope::Project { project_id, .. } => {
            let on_project = matches!(
                a.kind,
                AssignmentType::UserProject | AssignmentType::GroupProject
            );
            let on_domain = matches!(
                a.kind,
                AssignmentType::UserDomain | AssignmentType::GroupDomain
            );
            // Direct grants count only on the project itself; grants on the
            // domain or an ancestor count when marked inherited.
            (on_project && a.target_id == *project_id && !a.inherited)
                || (a.inherited && (on_domain || (on_project && a.target_id != *project_id)))
        }
        RoleScope::Domain(_) => {
            matches!(
                a.kind,
                AssignmentType::UserDomain | AssignmentType::GroupDomain
            ) && !a.inherited
        }
        RoleScope::System => matches!(
            a.kind,
            AssignmentType::UserSystem | AssignmentType::GroupSystem
        ),
    };
    Ok(found
        .into_iter()
        .filter(applies)
        .map(|a| a.role_id)
        .collect())
}
