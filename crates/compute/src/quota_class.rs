//! Quota classes: named sets of limits. Only the `default` class has an
//! effect, because its limits replace the built-in defaults of every
//! project, as in Nova.

use std::collections::BTreeMap;

use oxstack_core::microversion::Microversion;
use oxstack_core::ApiError;

use crate::api::db_error;
use crate::quota;
use crate::ComputeService;

/// The class whose limits are every project's defaults.
pub const DEFAULT_CLASS: &str = "default";

/// Returns true when `resource` exists in the quota class API at `version`:
/// server group quotas appear and the network ones go at 2.50, and the file
/// injection ones go at 2.57.
pub fn shown_at(resource: &str, version: Microversion) -> bool {
    let server_groups = matches!(resource, "server_groups" | "server_group_members");
    if version.at_least(2, 50) {
        let network = matches!(
            resource,
            "fixed_ips" | "floating_ips" | "security_group_rules" | "security_groups"
        );
        if network {
            return false;
        }
    } else if server_groups {
        return false;
    }
    if version.at_least(2, 57) && resource.starts_with("injected_file") {
        return false;
    }
    quota::DEFAULTS.iter().any(|(name, _)| *name == resource)
}

async fn stored(service: &ComputeService, class: &str) -> Result<Vec<(String, i64)>, ApiError> {
    sqlx::query_as("SELECT resource, hard_limit FROM compute_quota_classes WHERE class_name = $1")
        .bind(class)
        .fetch_all(service.pool())
        .await
        .map_err(db_error)
}

/// Loads the limits of `class`: the built-in defaults, overridden by the
/// `default` class, overridden by `class` itself.
pub async fn class_limits(
    service: &ComputeService,
    class: &str,
) -> Result<BTreeMap<String, i64>, ApiError> {
    let mut limits = quota::builtin_defaults();
    limits.extend(stored(service, DEFAULT_CLASS).await?);
    if class != DEFAULT_CLASS {
        limits.extend(stored(service, class).await?);
    }
    Ok(limits)
}

/// Stores new limits for `class`.
pub async fn set_class_limits(
    service: &ComputeService,
    class: &str,
    changes: &BTreeMap<String, i64>,
) -> Result<(), ApiError> {
    let mut transaction = service.pool().begin().await.map_err(db_error)?;
    for (resource, limit) in changes {
        sqlx::query("DELETE FROM compute_quota_classes WHERE class_name = $1 AND resource = $2")
            .bind(class)
            .bind(resource)
            .execute(&mut *transaction)
            .await
            .map_err(db_error)?;
        sqlx::query(
            "INSERT INTO compute_quota_classes (class_name, resource, hard_limit) \
             VALUES ($1, $2, $3)",
        )
        .bind(class)
        .bind(resource)
        .bind(*limit)
        .execute(&mut *transaction)
        .await
        .map_err(db_error)?;
    }
    transaction.commit().await.map_err(db_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_group_quotas_appear_at_2_50() {
        assert!(!shown_at("server_groups", Microversion::new(2, 49)));
        assert!(shown_at("server_groups", Microversion::new(2, 50)));
        assert!(shown_at("floating_ips", Microversion::new(2, 49)));
        assert!(!shown_at("floating_ips", Microversion::new(2, 50)));
        assert!(shown_at("injected_files", Microversion::new(2, 56)));
        assert!(!shown_at("injected_files", Microversion::new(2, 57)));
    }
}
