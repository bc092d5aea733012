//! Default authorisation rules of the identity service, in oslo.policy
//! syntax, and the check handlers call. Operators override any rule in the
//! policy file.
//!
//! The defaults follow Keystone's: cloud administration needs the `admin`
//! role; readers and members see their own user, projects and tokens.

use oxstack_core::policy::Enforcer;
use oxstack_core::{ApiError, RequestContext};
use serde_json::Value;

use crate::Identity;

pub const DEFAULT_RULES: &[(&str, &str)] = &[
    ("admin_required", "role:admin"),
    ("system_reader", "role:reader and system_scope:all"),
    ("admin_or_system_reader", "rule:admin_required or rule:system_reader"),
    ("owner", "user_id:%(target.user.id)s"),
    ("admin_or_owner", "rule:admin_required or rule:owner"),
    // Domains.
    ("identity:get_domain", "rule:admin_or_system_reader or domain_id:%(target.domain.id)s or project_domain_id:%(target.domain.id)s"),
    ("identity:list_domains", "rule:admin_or_system_reader"),
    ("identity:create_domain", "rule:admin_required"),
    ("identity:update_domain", "rule:admin_required"),
    ("identity:delete_domain", "rule:admin_required"),
    // Projects.
    ("identity:get_project", "rule:admin_or_system_reader or project_id:%(target.project.id)s or (role:reader and domain_id:%(target.project.domain_id)s)"),
    ("identity:list_projects", "rule:admin_or_system_reader or (role:reader and domain_id:%(target.domain_id)s)"),
    ("identity:list_user_projects", "rule:admin_or_owner or rule:system_reader"),
    ("identity:create_project", "rule:admin_required"),
    ("identity:update_project", "rule:admin_required"),
    ("identity:delete_project", "rule:admin_required"),
    ("identity:list_project_tags", "rule:admin_or_system_reader or project_id:%(target.project.id)s"),
    ("identity:update_project_tags", "rule:admin_required"),
    // Users.
    ("identity:get_user", "rule:admin_or_owner or rule:system_reader"),
    ("identity:list_users", "rule:admin_or_system_reader"),
    ("identity:create_user", "rule:admin_required"),
    ("identity:update_user", "rule:admin_required"),
    ("identity:delete_user", "rule:admin_required"),
    ("identity:change_password", "rule:admin_or_owner"),
    // Groups.
    ("identity:get_group", "rule:admin_or_system_reader"),
    ("identity:list_groups", "rule:admin_or_system_reader"),
    ("identity:list_groups_for_user", "rule:admin_or_owner or rule:system_reader"),
    ("identity:create_group", "rule:admin_required"),
    ("identity:update_group", "rule:admin_required"),
    ("identity:delete_group", "rule:admin_required"),
    ("identity:list_users_in_group", "rule:admin_or_system_reader"),
    ("identity:add_user_to_group", "rule:admin_required"),
    ("identity:remove_user_from_group", "rule:admin_required"),
    ("identity:check_user_in_group", "rule:admin_or_system_reader"),
    // Roles and implied roles.
    ("identity:get_role", "rule:admin_or_system_reader"),
    ("identity:list_roles", "rule:admin_or_system_reader"),
    ("identity:create_role", "rule:admin_required"),
    ("identity:update_role", "rule:admin_required"),
    ("identity:delete_role", "rule:admin_required"),
    ("identity:get_implied_role", "rule:admin_or_system_reader"),
    ("identity:list_implied_roles", "rule:admin_or_system_reader"),
    ("identity:list_role_inference_rules", "rule:admin_or_system_reader"),
    ("identity:create_implied_role", "rule:admin_required"),
    ("identity:delete_implied_role", "rule:admin_required"),
    // Grants and assignments.
    ("identity:check_grant", "rule:admin_or_system_reader"),
    ("identity:list_grants", "rule:admin_or_system_reader"),
    ("identity:create_grant", "rule:admin_required"),
    ("identity:revoke_grant", "rule:admin_required"),
    ("identity:list_role_assignments", "rule:admin_or_system_reader"),
    ("identity:list_role_assignments_for_tree", "rule:admin_required"),
    // Catalog.
    ("identity:get_service", "rule:admin_or_system_reader"),
    ("identity:list_services", "rule:admin_or_system_reader"),
    ("identity:create_service", "rule:admin_required"),
    ("identity:update_service", "rule:admin_required"),
    ("identity:delete_service", "rule:admin_required"),
    ("identity:get_endpoint", "rule:admin_or_system_reader"),
    ("identity:list_endpoints", "rule:admin_or_system_reader"),
    ("identity:create_endpoint", "rule:admin_required"),
    ("identity:update_endpoint", "rule:admin_required"),
    ("identity:delete_endpoint", "rule:admin_required"),
    ("identity:get_region", ""),
    ("identity:list_regions", ""),
    ("identity:create_region", "rule:admin_required"),
    ("identity:update_region", "rule:admin_required"),
    ("identity:delete_region", "rule:admin_required"),
    // Tokens: any token holder may validate or revoke their own.
    ("identity:validate_token", "rule:admin_or_system_reader or user_id:%(target.token.user_id)s"),
    ("identity:revoke_token", "rule:admin_required or user_id:%(target.token.user_id)s"),
    // Application credentials belong to their user.
    ("identity:get_application_credential", "rule:admin_or_owner or rule:system_reader"),
    ("identity:list_application_credentials", "rule:admin_or_owner or rule:system_reader"),
    ("identity:create_application_credential", "rule:owner"),
    ("identity:delete_application_credential", "rule:admin_or_owner"),
    // Project quotas stored for the other services.
    ("identity:get_project_quotas", "rule:admin_or_system_reader or project_id:%(target.project.id)s"),
    ("identity:update_project_quotas", "rule:admin_required"),
];

/// Allows the request or returns Keystone's 403.
pub fn authorize(
    identity: &Identity,
    ctx: &RequestContext,
    action: &str,
    target: &Value,
) -> Result<(), ApiError> {
    // Rules name target values as `%(target.project.id)s`.
    let target = serde_json::json!({ "target": target });
    identity
        .policy
        .enforce(action, &target, &ctx.auth.credentials())
        .map_err(|_| {
            ApiError::forbidden(format!(
                "You are not authorized to perform the requested action: {action}."
            ))
        })
}

/// Builds the enforcer from the defaults and the operator's policy file.
pub fn load(
    policy_file: Option<&std::path::Path>,
) -> Result<Enforcer, oxstack_core::policy::PolicyLoadError> {
    match policy_file {
        Some(path) => Enforcer::with_policy_file(DEFAULT_RULES, path),
        None => Enforcer::from_defaults(DEFAULT_RULES),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oxstack_core::policy::Credentials;
    use serde_json::json;

    fn member_of(project: &str) -> Credentials {
        Credentials {
            roles: vec!["member".into(), "reader".into()],
            user_id: Some("u1".into()),
            project_id: Some(project.into()),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_load() {
        load(None).unwrap();
    }

    #[test]
    fn member_cannot_create_project() {
        let enforcer = load(None).unwrap();
        assert!(!enforcer.is_allowed("identity:create_project", &json!({}), &member_of("p1")));
    }

    #[test]
    fn member_sees_own_project_only() {
        let enforcer = load(None).unwrap();
        let own = json!({"target": {"project": {"id": "p1", "domain_id": "default"}}});
        let other = json!({"target": {"project": {"id": "p2", "domain_id": "default"}}});
        assert!(enforcer.is_allowed("identity:get_project", &own, &member_of("p1")));
        assert!(!enforcer.is_allowed("identity:get_project", &other, &member_of("p1")));
    }

    #[test]
    fn admin_role_is_cloud_admin() {
        let enforcer = load(None).unwrap();
        let admin = Credentials {
            roles: vec!["admin".into()],
            ..Default::default()
        };
        assert!(enforcer.is_allowed("identity:delete_user", &json!({}), &admin));
    }
}
