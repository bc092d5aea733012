//! Compute quotas: Nova's resources, their defaults, the limits stored per
//! project, and which resources each microversion shows.

use std::collections::BTreeMap;

use oxstack_core::microversion::Microversion;
use oxstack_core::ApiError;

use crate::api::db_error;
use crate::ComputeService;

/// Nova's quota resources and their default limits (Nova's `[quota]`
/// defaults). A limit of -1 means unlimited.
pub const DEFAULTS: &[(&str, i64)] = &[
    ("cores", 20),
    ("fixed_ips", -1),
    ("floating_ips", 10),
    ("injected_file_content_bytes", 10240),
    ("injected_file_path_bytes", 255),
    ("injected_files", 5),
    ("instances", 10),
    ("key_pairs", 100),
    ("metadata_items", 128),
    ("ram", 51200),
    ("security_group_rules", 20),
    ("security_groups", 10),
    ("server_group_members", 10),
    ("server_groups", 10),
];

/// Network proxy quotas, dropped from the API at 2.36.
const NETWORK_RESOURCES: &[&str] = &[
    "fixed_ips",
    "floating_ips",
    "security_group_rules",
    "security_groups",
];

/// File injection quotas, dropped from the API at 2.57.
const INJECTION_RESOURCES: &[&str] = &[
    "injected_file_content_bytes",
    "injected_file_path_bytes",
    "injected_files",
];

/// Returns true when `resource` exists in the quota API at `version`.
pub fn shown_at(resource: &str, version: Microversion) -> bool {
    if version.at_least(2, 36) && NETWORK_RESOURCES.contains(&resource) {
        return false;
    }
    if version.at_least(2, 57) && INJECTION_RESOURCES.contains(&resource) {
        return false;
    }
    DEFAULTS.iter().any(|(name, _)| *name == resource)
}

/// Returns the built-in default limits, by resource.
pub fn builtin_defaults() -> BTreeMap<String, i64> {
    DEFAULTS
        .iter()
        .map(|(name, limit)| (name.to_string(), *limit))
        .collect()
}

/// Loads the default limits: the built-in ones, overridden by the
/// `default` quota class.
pub async fn defaults(service: &ComputeService) -> Result<BTreeMap<String, i64>, ApiError> {
    crate::quota_class::class_limits(service, crate::quota_class::DEFAULT_CLASS).await
}

/// Loads the limits of `project_id`: its stored overrides over the
/// defaults, and with `user_id` the user's own overrides over those.
pub async fn limits(
    service: &ComputeService,
    project_id: &str,
    user_id: Option<&str>,
) -> Result<BTreeMap<String, i64>, ApiError> {
    let mut limits = defaults(service).await?;
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT resource, hard_limit FROM compute_quotas WHERE project_id = $1")
            .bind(project_id)
            .fetch_all(service.pool())
            .await
            .map_err(db_error)?;
    limits.extend(rows);
    if let Some(user_id) = user_id {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT resource, hard_limit FROM compute_user_quotas \
             WHERE project_id = $1 AND user_id = $2",
        )
        .bind(project_id)
        .bind(user_id)
        .fetch_all(service.pool())
        .await
        .map_err(db_error)?;
        limits.extend(rows);
    }
    Ok(limits)
}

/// Checks per-user limits against the project's, as Nova does: a user may
/// not get more than the project, nor unlimited within a limited project.
pub fn check_user_limits(
    changes: &BTreeMap<String, i64>,
    project_limits: &BTreeMap<String, i64>,
) -> Result<(), ApiError> {
    for (resource, limit) in changes {
        let maximum = project_limits.get(resource).copied().unwrap_or(-1);
        if maximum == -1 {
            continue;
        }
        if *limit == -1 {
            return Err(ApiError::bad_request(format!(
                "Quota limit -1 for {resource} must be greater than or equal to 0, because the \
                 project limit is {maximum}."
            )));
        }
        if *limit > maximum {
            return Err(ApiError::bad_request(format!(
                "Quota limit {limit} for {resource} must be less than or equal to {maximum}."
            )));
        }
    }
    Ok(())
}

/// Counts the usage of each resource: the servers of `project_id` (only
/// those of `user_id` when `per_user`) with their cores and RAM, and the
/// keypairs of `user_id` (Nova counts keypairs per user) and the server
/// groups. `server_group_members` is counted per group, so it shows 0.
pub async fn usage(
    service: &ComputeService,
    project_id: &str,
    user_id: &str,
    per_user: bool,
) -> Result<BTreeMap<String, i64>, ApiError> {
    let mut usage: BTreeMap<String, i64> = DEFAULTS
        .iter()
        .map(|(name, _)| (name.to_string(), 0))
        .collect();
    usage.insert("key_pairs".into(), count_keypairs(service, user_id).await?);
    let servers = server_usage(service.pool(), project_id, per_user.then_some(user_id))
        .await
        .map_err(db_error)?;
    usage.insert("instances".into(), servers.instances);
    usage.insert("cores".into(), servers.cores);
    usage.insert("ram".into(), servers.ram);
    let groups =
        crate::server_group::count(service.pool(), project_id, per_user.then_some(user_id))
            .await
            .map_err(db_error)?;
    usage.insert("server_groups".into(), groups);
    Ok(usage)
}

/// The instances, cores and RAM (MiB) that servers hold until they are
/// deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ServerUsage {
    pub instances: i64,
    pub cores: i64,
    pub ram: i64,
}

/// Counts the servers of `project_id` (of `user_id` within it, when given)
/// that are not deleted. `db` may be a transaction, so a create counts and
/// inserts under one lock.
pub async fn server_usage<'c>(
    db: impl sqlx::Executor<'c, Database = sqlx::Any>,
    project_id: &str,
    user_id: Option<&str>,
) -> Result<ServerUsage, sqlx::Error> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT user_id, doc FROM compute_servers WHERE project_id = $1 AND deleted = 0",
    )
    .bind(project_id)
    .fetch_all(db)
    .await?;
    let mut usage = ServerUsage::default();
    for (owner, doc) in rows {
        if user_id.is_some_and(|user| user != owner) {
            continue;
        }
        let doc: serde_json::Value =
            serde_json::from_str(&doc).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
        usage.instances += 1;
        usage.cores += doc["flavor"]["vcpus"].as_i64().unwrap_or(0);
        usage.ram += doc["flavor"]["ram"].as_i64().unwrap_or(0);
    }
    Ok(usage)
}

/// Loads the limits stored for `user_id` in `project_id` itself, without
/// the project's; Nova checks a user's server usage only when the user has
/// limits of its own.
pub async fn user_overrides(
    service: &ComputeService,
    project_id: &str,
    user_id: &str,
) -> Result<BTreeMap<String, i64>, ApiError> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT resource, hard_limit FROM compute_user_quotas WHERE project_id = $1 AND user_id = $2",
    )
    .bind(project_id)
    .bind(user_id)
    .fetch_all(service.pool())
    .await
    .map_err(db_error)?;
    Ok(rows.into_iter().collect())
}

/// Returns how many keypairs `user_id` owns.
pub async fn count_keypairs(service: &ComputeService, user_id: &str) -> Result<i64, ApiError> {
    let (count,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM compute_keypairs WHERE user_id = $1")
            .bind(user_id)
            .fetch_one(service.pool())
            .await
            .map_err(db_error)?;
    Ok(count)
}

/// Stores new limits for `project_id`, or with `user_id` for that user in
/// the project.
pub async fn set_limits(
    service: &ComputeService,
    project_id: &str,
    user_id: Option<&str>,
    changes: &BTreeMap<String, i64>,
) -> Result<(), ApiError> {
    let mut transaction = service.pool().begin().await.map_err(db_error)?;
    for (resource, limit) in changes {
        match user_id {
            None => {
                sqlx::query("DELETE FROM compute_quotas WHERE project_id = $1 AND resource = $2")
                    .bind(project_id)
                    .bind(resource)
                    .execute(&mut *transaction)
                    .await
                    .map_err(db_error)?;
                sqlx::query(
                    "INSERT INTO compute_quotas (project_id, resource, hard_limit) \
                     VALUES ($1, $2, $3)",
                )
                .bind(project_id)
                .bind(resource)
                .bind(*limit)
                .execute(&mut *transaction)
                .await
                .map_err(db_error)?;
            }
            Some(user_id) => {
                sqlx::query(
                    "DELETE FROM compute_user_quotas \
                     WHERE project_id = $1 AND user_id = $2 AND resource = $3",
                )
                .bind(project_id)
                .bind(user_id)
                .bind(resource)
                .execute(&mut *transaction)
                .await
                .map_err(db_error)?;
                sqlx::query(
                    "INSERT INTO compute_user_quotas (project_id, user_id, resource, hard_limit) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(project_id)
                .bind(user_id)
                .bind(resource)
                .bind(*limit)
                .execute(&mut *transaction)
                .await
                .map_err(db_error)?;
            }
        }
    }
    transaction.commit().await.map_err(db_error)
}

/// Removes the stored limits of `project_id` (its users' included), or
/// with `user_id` only that user's, so the next level's limits apply again.
pub async fn reset(
    service: &ComputeService,
    project_id: &str,
    user_id: Option<&str>,
) -> Result<(), ApiError> {
    let mut transaction = service.pool().begin().await.map_err(db_error)?;
    match user_id {
        None => {
            for table in ["compute_quotas", "compute_user_quotas"] {
                sqlx::query(&format!("DELETE FROM {table} WHERE project_id = $1"))
                    .bind(project_id)
                    .execute(&mut *transaction)
                    .await
                    .map_err(db_error)?;
            }
        }
        Some(user_id) => {
            sqlx::query("DELETE FROM compute_user_quotas WHERE project_id = $1 AND user_id = $2")
                .bind(project_id)
                .bind(user_id)
                .execute(&mut *transaction)
                .await
                .map_err(db_error)?;
        }
    }
    transaction.commit().await.map_err(db_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_quotas_hidden_from_2_36() {
        assert!(shown_at("floating_ips", Microversion::new(2, 35)));
        assert!(!shown_at("floating_ips", Microversion::new(2, 36)));
        assert!(shown_at("injected_files", Microversion::new(2, 56)));
        assert!(!shown_at("injected_files", Microversion::new(2, 57)));
        assert!(shown_at("key_pairs", Microversion::new(2, 100)));
    }
}
