//! Authorisation of placement requests. Placement's defaults allow every
//! action to administrators only (`role:admin`), because its callers are
//! other services and operators; operators may relax single rules.

use oxstack_core::policy::{Enforcer, PolicyLoadError};
use oxstack_core::{ApiError, RequestContext};
use serde_json::json;

const ADMIN: &str = "rule:admin_api";

/// Rule names as OpenStack Placement names them.
pub const DEFAULT_RULES: &[(&str, &str)] = &[
    ("admin_api", "role:admin"),
    ("placement:resource_providers:list", ADMIN),
    ("placement:resource_providers:create", ADMIN),
    ("placement:resource_providers:show", ADMIN),
    ("placement:resource_providers:update", ADMIN),
    ("placement:resource_providers:delete", ADMIN),
    ("placement:resource_providers:inventories:list", ADMIN),
    ("placement:resource_providers:inventories:create", ADMIN),
    ("placement:resource_providers:inventories:show", ADMIN),
    ("placement:resource_providers:inventories:update", ADMIN),
    ("placement:resource_providers:inventories:delete", ADMIN),
    ("placement:resource_providers:aggregates:list", ADMIN),
    ("placement:resource_providers:aggregates:update", ADMIN),
    ("placement:resource_providers:usages", ADMIN),
    ("placement:resource_providers:allocations:list", ADMIN),
    ("placement:resource_providers:traits:list", ADMIN),
    ("placement:resource_providers:traits:update", ADMIN),
    ("placement:resource_providers:traits:delete", ADMIN),
    ("placement:resource_classes:list", ADMIN),
    ("placement:resource_classes:create", ADMIN),
    ("placement:resource_classes:show", ADMIN),
    ("placement:resource_classes:update", ADMIN),
    ("placement:resource_classes:delete", ADMIN),
    ("placement:traits:list", ADMIN),
    ("placement:traits:show", ADMIN),
    ("placement:traits:update", ADMIN),
    ("placement:traits:delete", ADMIN),
    ("placement:allocations:list", ADMIN),
    ("placement:allocations:manage", ADMIN),
    ("placement:allocations:update", ADMIN),
    ("placement:allocations:delete", ADMIN),
    ("placement:usages", ADMIN),
    ("placement:allocation_candidates:list", ADMIN),
];

pub fn load(policy_file: Option<&std::path::Path>) -> Result<Enforcer, PolicyLoadError> {
    match policy_file {
        Some(path) => Enforcer::with_policy_file(DEFAULT_RULES, path),
        None => Enforcer::from_defaults(DEFAULT_RULES),
    }
}

/// Allows `action` for the caller or returns placement's 403.
pub fn authorize(policy: &Enforcer, ctx: &RequestContext, action: &str) -> Result<(), ApiError> {
    let target = json!({
        "target": {"project_id": ctx.auth.project_id, "user_id": ctx.auth.user_id}
    });
    if policy.is_allowed(action, &target, &ctx.auth.credentials()) {
        return Ok(());
    }
    Err(ApiError::forbidden(format!(
        "Policy does not allow {action} to be performed."
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use oxstack_core::policy::Credentials;

    #[test]
    fn defaults_admit_admin_only() {
        let policy = load(None).unwrap();
        let admin = Credentials {
            roles: vec!["admin".into()],
            ..Default::default()
        };
        let member = Credentials {
            roles: vec!["member".into(), "reader".into()],
            ..Default::default()
        };
        for (rule, _) in DEFAULT_RULES {
            assert!(policy.is_allowed(rule, &json!({}), &admin), "{rule}");
            assert!(!policy.is_allowed(rule, &json!({}), &member), "{rule}");
        }
    }
}
