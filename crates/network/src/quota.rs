//! Per-project limits on network resources, with Neutron's resources and
//! default values, and their enforcement on create.
//!
//! A create checks the limit inside the transaction that inserts the row,
//! after taking the project's row in `network_quota_locks`, so concurrent
//! creates of one project count one after the other and never pass the
//! limit together.

use oxstack_core::ApiError;
use oxstack_store::{Any, Row};
use sqlx::Executor;

use crate::model::ProjectId;

/// A resource with a quota. The names are Neutron's quota keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    Network,
    Subnet,
    Port,
    Router,
    FloatingIp,
    SecurityGroup,
    SecurityGroupRule,
    RbacPolicy,
    SubnetPool,
}

/// Every resource in the order `GET /v2.0/quotas/{project_id}` lists them.
pub const RESOURCES: &[Resource] = &[
    Resource::Network,
    Resource::Subnet,
    Resource::Port,
    Resource::Router,
    Resource::FloatingIp,
    Resource::SecurityGroup,
    Resource::SecurityGroupRule,
    Resource::RbacPolicy,
    Resource::SubnetPool,
];

/// The limit that means no limit.
pub const UNLIMITED: i64 = -1;

impl Resource {
    pub fn name(self) -> &'static str {
        match self {
            Resource::Network => "network",
            Resource::Subnet => "subnet",
            Resource::Port => "port",
            Resource::Router => "router",
            Resource::FloatingIp => "floatingip",
            Resource::SecurityGroup => "security_group",
            Resource::SecurityGroupRule => "security_group_rule",
            Resource::RbacPolicy => "rbac_policy",
            Resource::SubnetPool => "subnetpool",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        RESOURCES.iter().copied().find(|r| r.name() == name)
    }

    /// Returns Neutron's default limit (`[quotas] quota_<resource>`).
    pub fn default_limit(self) -> i64 {
        match self {
            Resource::Network | Resource::Subnet | Resource::SecurityGroupRule => 100,
            Resource::Port => 500,
            Resource::Router | Resource::SecurityGroup | Resource::RbacPolicy => 10,
            Resource::FloatingIp => 50,
            Resource::SubnetPool => UNLIMITED,
        }
    }

    // The table whose rows of a project count against the limit. RBAC
    // policies and subnet pools do not exist here, so nothing uses them.
    fn table(self) -> Option<&'static str> {
        match self {
            Resource::Network => Some("networks"),
            Resource::Subnet => Some("subnets"),
            Resource::Port => Some("ports"),
            Resource::Router => Some("routers"),
            Resource::FloatingIp => Some("floatingips"),
            Resource::SecurityGroup => Some("security_groups"),
            Resource::SecurityGroupRule => Some("security_group_rules"),
            Resource::RbacPolicy | Resource::SubnetPool => None,
        }
    }
}

/// Returns the limit of `resource` for `project_id`: the stored one, or
/// the default.
pub async fn limit<'c>(
    db: impl Executor<'c, Database = Any>,
    project_id: &ProjectId,
    resource: Resource,
) -> Result<i64, sqlx::Error> {
    let row = sqlx::query(
        "SELECT hard_limit FROM network_quotas WHERE project_id = $1 AND resource = $2",
    )
    .bind(project_id.as_str())
    .bind(resource.name())
    .fetch_optional(db)
    .await?;
    match row {
        Some(row) => row.try_get("hard_limit"),
        None => Ok(resource.default_limit()),
    }
}

/// Returns the limits stored for `project_id`, without defaults.
pub async fn stored_limits<'c>(
    db: impl Executor<'c, Database = Any>,
    project_id: &ProjectId,
) -> Result<Vec<(Resource, i64)>, sqlx::Error> {
    let rows = sqlx::query("SELECT resource, hard_limit FROM network_quotas WHERE project_id = $1")
        .bind(project_id.as_str())
        .fetch_all(db)
        .await?;
    let mut limits = Vec::new();
    for row in &rows {
        let name: String = row.try_get("resource")?;
        if let Some(resource) = Resource::parse(&name) {
            limits.push((resource, row.try_get("hard_limit")?));
        }
    }
    Ok(limits)
}

/// Returns the projects that have at least one stored limit.
pub async fn projects_with_limits<'c>(
    db: impl Executor<'c, Database = Any>,
) -> Result<Vec<ProjectId>, sqlx::Error> {
    let rows = sqlx::query("SELECT DISTINCT project_id FROM network_quotas ORDER BY project_id")
        .fetch_all(db)
        .await?;
    rows.iter()
        .map(|row| Ok(ProjectId::new(row.try_get::<String, _>("project_id")?)))
        .collect()
}

pub async fn set_limit<'c>(
    db: impl Executor<'c, Database = Any>,
    project_id: &ProjectId,
    resource: Resource,
    hard_limit: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO network_quotas (project_id, resource, hard_limit) VALUES ($1, $2, $3) \
         ON CONFLICT (project_id, resource) DO UPDATE SET hard_limit = excluded.hard_limit",
    )
    .bind(project_id.as_str())
    .bind(resource.name())
    .bind(hard_limit)
    .execute(db)
    .await?;
    Ok(())
}

/// Deletes the stored limits of `project_id`, so the defaults apply again.
pub async fn reset<'c>(
    db: impl Executor<'c, Database = Any>,
    project_id: &ProjectId,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM network_quotas WHERE project_id = $1")
        .bind(project_id.as_str())
        .execute(db)
        .await?;
    Ok(())
}

/// Counts the rows of `resource` that `project_id` owns.
pub async fn usage<'c>(
    db: impl Executor<'c, Database = Any>,
    project_id: &ProjectId,
    resource: Resource,
) -> Result<i64, sqlx::Error> {
    let Some(table) = resource.table() else {
        return Ok(0);
    };
    let row = sqlx::query(&format!(
        "SELECT COUNT(*) AS n FROM {table} WHERE project_id = $1"
    ))
    .bind(project_id.as_str())
    .fetch_one(db)
    .await?;
    row.try_get("n")
}

/// A failed quota check: over the limit, or the database failed.
#[derive(Debug, thiserror::Error)]
pub enum QuotaError {
    #[error(
        "Quota exceeded for resources: ['{resource}']: {used} of {limit} in use for project \
         {project_id}; delete some or ask an admin to raise the quota."
    )]
    Over {
        resource: &'static str,
        project_id: ProjectId,
        used: i64,
        limit: i64,
    },
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

impl From<QuotaError> for ApiError {
    fn from(error: QuotaError) -> Self {
        match error {
            QuotaError::Over { .. } => ApiError::conflict(error.to_string()).with_type("OverQuota"),
            QuotaError::Database(error) => oxstack_store::api_error(error),
        }
    }
}

/// Checks, inside the transaction that will insert `adding` rows of
/// `resource` for `project_id`, that they fit the project's limit. It
/// first takes the project's lock row, which the transaction holds until
/// it ends.
pub async fn check(
    db: &mut sqlx::AnyConnection,
    project_id: &ProjectId,
    resource: Resource,
    adding: i64,
) -> Result<(), QuotaError> {
    sqlx::query(
        "INSERT INTO network_quota_locks (project_id, generation) VALUES ($1, 0) \
         ON CONFLICT (project_id) DO NOTHING",
    )
    .bind(project_id.as_str())
    .execute(&mut *db)
    .await?;
    sqlx::query("UPDATE network_quota_locks SET generation = generation + 1 WHERE project_id = $1")
        .bind(project_id.as_str())
        .execute(&mut *db)
        .await?;
    let limit = limit(&mut *db, project_id, resource).await?;
    if limit == UNLIMITED {
        return Ok(());
    }
    let used = usage(&mut *db, project_id, resource).await?;
    if used + adding > limit {
        return Err(QuotaError::Over {
            resource: resource.name(),
            project_id: project_id.clone(),
            used,
            limit,
        });
    }
    Ok(())
}
