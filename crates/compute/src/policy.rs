//! Authorisation of compute requests: Nova's default rules for the
//! resources this crate serves, with Nova's rule names so an operator's
//! `policy.yaml` for Nova applies unchanged. Targets are offered under
//! `target.` (`%(target.project_id)s`), the form every OxStack service uses.

use oxstack_core::policy::{Credentials, Enforcer, PolicyLoadError};
use oxstack_core::{ApiError, RequestContext};
use serde_json::Value;

const ADMIN: &str = "rule:context_is_admin";

pub const DEFAULT_RULES: &[(&str, &str)] = &[
    ("context_is_admin", "role:admin"),
    (
        "project_reader_or_admin",
        "rule:context_is_admin or (role:reader and project_id:%(target.project_id)s)",
    ),
    (
        "admin_or_owner_user",
        "rule:context_is_admin or user_id:%(target.user_id)s",
    ),
    ("os_compute_api:os-flavor-manage:create", ADMIN),
    ("os_compute_api:os-flavor-manage:update", ADMIN),
    ("os_compute_api:os-flavor-manage:delete", ADMIN),
    ("os_compute_api:os-flavor-access", ADMIN),
    ("os_compute_api:os-flavor-access:add_tenant_access", ADMIN),
    (
        "os_compute_api:os-flavor-access:remove_tenant_access",
        ADMIN,
    ),
    ("os_compute_api:os-flavor-extra-specs:index", "@"),
    ("os_compute_api:os-flavor-extra-specs:show", "@"),
    ("os_compute_api:os-flavor-extra-specs:create", ADMIN),
    ("os_compute_api:os-flavor-extra-specs:update", ADMIN),
    ("os_compute_api:os-flavor-extra-specs:delete", ADMIN),
    (
        "os_compute_api:os-keypairs:index",
        "rule:admin_or_owner_user",
    ),
    (
        "os_compute_api:os-keypairs:show",
        "rule:admin_or_owner_user",
    ),
    (
        "os_compute_api:os-keypairs:create",
        "rule:admin_or_owner_user",
    ),
    (
        "os_compute_api:os-keypairs:delete",
        "rule:admin_or_owner_user",
    ),
    (
        "os_compute_api:os-quota-sets:show",
        "rule:project_reader_or_admin",
    ),
    (
        "os_compute_api:os-quota-sets:detail",
        "rule:project_reader_or_admin",
    ),
    ("os_compute_api:os-quota-sets:defaults", "@"),
    ("os_compute_api:os-quota-sets:update", ADMIN),
    ("os_compute_api:os-quota-sets:delete", ADMIN),
    ("os_compute_api:os-quota-class-sets:show", ADMIN),
    ("os_compute_api:os-quota-class-sets:update", ADMIN),
    ("os_compute_api:limits", "@"),
    ("os_compute_api:os-availability-zone:list", "@"),
    ("os_compute_api:os-availability-zone:detail", ADMIN),
];

/// Builds the enforcer from the defaults and the operator's policy file.
pub fn load(policy_file: Option<&std::path::Path>) -> Result<Enforcer, PolicyLoadError> {
    match policy_file {
        Some(path) => Enforcer::with_policy_file(DEFAULT_RULES, path),
        None => Enforcer::from_defaults(DEFAULT_RULES),
    }
}

/// The caller of one request and the credentials its rules see.
pub struct Caller {
    pub ctx: RequestContext,
    credentials: Credentials,
    is_admin: bool,
}

impl Caller {
    pub fn new(policy: &Enforcer, ctx: RequestContext) -> Self {
        let credentials = ctx.auth.credentials();
        let is_admin = policy.is_allowed("context_is_admin", &Value::Null, &credentials);
        Caller {
            ctx,
            credentials,
            is_admin,
        }
    }

    pub fn is_admin(&self) -> bool {
        self.is_admin
    }

    pub fn user_id(&self) -> &str {
        &self.ctx.auth.user_id
    }

    /// Returns the project of a project-scoped token, or "" for other scopes.
    pub fn project_id(&self) -> &str {
        self.ctx.auth.project_id.as_deref().unwrap_or("")
    }

    /// Checks `action` against `target` (the fields offered under
    /// `target.`); a denial is Nova's 403.
    pub fn authorize(
        &self,
        policy: &Enforcer,
        action: &str,
        target: Value,
    ) -> Result<(), ApiError> {
        let target = serde_json::json!({ "target": target });
        if policy.is_allowed(action, &target, &self.credentials) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "Policy doesn't allow {action} to be performed."
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_rules_link() {
        let enforcer = Enforcer::from_defaults(DEFAULT_RULES).expect("defaults load");
        assert!(enforcer.undefined_references().is_empty());
    }
}
