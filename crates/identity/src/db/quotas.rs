//! Per-project quota limits kept by the identity service.
//!
//! NOTE: compute and network keep their own limit tables today, so nothing
//! outside this crate reads these rows yet.
//!
//! A limit is stored per (project, resource name), for example
//! (`p1`, `instances`) → 10. Resource names belong to the service that
//! enforces them, so this module does not check them against a list. A
//! project without a row for a resource uses that service's default.

use std::collections::HashMap;

use oxstack_core::ApiError;
use oxstack_store::{Pool, Row};

use super::db_error;

/// The limit that means "no limit", as Nova and Neutron write it.
pub const UNLIMITED: i64 = -1;

/// Returns the limits set for `project_id`, by resource name. Resources
/// without a stored limit are absent.
pub async fn get_limits(pool: &Pool, project_id: &str) -> Result<HashMap<String, i64>, ApiError> {
    let rows = sqlx::query("SELECT resource, hard_limit FROM project_quotas WHERE project_id = $1")
        .bind(project_id)
        .fetch_all(pool)
        .await
        .map_err(db_error)?;
    let mut limits = HashMap::with_capacity(rows.len());
    for row in &rows {
        let resource: String = row.try_get("resource").map_err(db_error)?;
        let limit: i64 = row.try_get("hard_limit").map_err(db_error)?;
        limits.insert(resource, limit);
    }
    Ok(limits)
}

/// Sets the limit of `resource` for `project_id`, replacing any earlier one.
/// `limit` is a count of at least 0, or `UNLIMITED`.
pub async fn set_limit(
    pool: &Pool,
    project_id: &str,
    resource: &str,
    limit: i64,
) -> Result<(), ApiError> {
    if resource.is_empty() || resource.len() > 255 {
        return Err(ApiError::bad_request(format!(
            "Invalid quota resource name '{resource}': it must be 1 to 255 characters."
        )));
    }
    if limit < UNLIMITED {
        return Err(ApiError::bad_request(format!(
            "Invalid quota limit {limit} for {resource}: use a count of 0 or more, or -1 for unlimited."
        )));
    }
    // SQLite (3.24 and later) and PostgreSQL share this upsert syntax.
    sqlx::query(
        "INSERT INTO project_quotas (project_id, resource, hard_limit) VALUES ($1, $2, $3)
         ON CONFLICT (project_id, resource) DO UPDATE SET hard_limit = excluded.hard_limit",
    )
    .bind(project_id)
    .bind(resource)
    .bind(limit)
    .execute(pool)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Removes every limit of `project_id`, so the services' defaults apply
/// again. Returns how many limits were removed.
pub async fn delete_limits(pool: &Pool, project_id: &str) -> Result<u64, ApiError> {
    let result = sqlx::query("DELETE FROM project_quotas WHERE project_id = $1")
        .bind(project_id)
        .execute(pool)
        .await
        .map_err(db_error)?;
    Ok(result.rows_affected())
}
