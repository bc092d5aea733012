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
    ("os_compute_api:limits:other_project", ADMIN),
    (
        "project_member_or_admin",
        "rule:context_is_admin or (role:member and project_id:%(target.project_id)s)",
    ),
    (
        "os_compute_api:servers:index",
        "rule:project_reader_or_admin",
    ),
    (
        "os_compute_api:servers:detail",
        "rule:project_reader_or_admin",
    ),
    ("os_compute_api:servers:index:get_all_tenants", ADMIN),
    ("os_compute_api:servers:detail:get_all_tenants", ADMIN),
    ("os_compute_api:servers:allow_all_filters", ADMIN),
    (
        "os_compute_api:servers:show",
        "rule:project_reader_or_admin",
    ),
    (
        "os_compute_api:servers:show:flavor-extra-specs",
        "rule:project_reader_or_admin",
    ),
    ("os_compute_api:servers:show:host_status", ADMIN),
    (
        "os_compute_api:servers:show:host_status:unknown-only",
        ADMIN,
    ),
    (
        "os_compute_api:servers:create",
        "rule:project_member_or_admin",
    ),
    ("os_compute_api:servers:create:forced_host", ADMIN),
    ("compute:servers:create:requested_destination", ADMIN),
    (
        "os_compute_api:servers:create:attach_volume",
        "rule:project_member_or_admin",
    ),
    (
        "os_compute_api:servers:create:attach_network",
        "rule:project_member_or_admin",
    ),
    (
        "os_compute_api:servers:create:trusted_certs",
        "rule:project_member_or_admin",
    ),
    ("os_compute_api:servers:create:zero_disk_flavor", ADMIN),
    ("network:attach_external_network", ADMIN),
    (
        "os_compute_api:servers:delete",
        "rule:project_member_or_admin",
    ),
    (
        "os_compute_api:servers:update",
        "rule:project_member_or_admin",
    ),
    (
        "os_compute_api:servers:reboot",
        "rule:project_member_or_admin",
    ),
    (
        "os_compute_api:servers:start",
        "rule:project_member_or_admin",
    ),
    (
        "os_compute_api:servers:stop",
        "rule:project_member_or_admin",
    ),
    ("os_compute_api:os-extended-server-attributes", ADMIN),
    (
        "os_compute_api:os-pause-server:pause",
        "rule:project_member_or_admin",
    ),
    (
        "os_compute_api:os-pause-server:unpause",
        "rule:project_member_or_admin",
    ),
    (
        "os_compute_api:os-suspend-server:suspend",
        "rule:project_member_or_admin",
    ),
    (
        "os_compute_api:os-suspend-server:resume",
        "rule:project_member_or_admin",
    ),
    (
        "os_compute_api:os-lock-server:lock",
        "rule:project_member_or_admin",
    ),
    (
        "os_compute_api:os-lock-server:unlock",
        "rule:project_member_or_admin",
    ),
    (
        "os_compute_api:os-lock-server:unlock:unlock_override",
        ADMIN,
    ),
    (
        "os_compute_api:os-console-output",
        "rule:project_member_or_admin",
    ),
    (
        "os_compute_api:os-instance-actions:list",
        "rule:project_reader_or_admin",
    ),
    (
        "os_compute_api:os-instance-actions:show",
        "rule:project_reader_or_admin",
    ),
    ("os_compute_api:os-instance-actions:events", ADMIN),
    ("os_compute_api:os-instance-actions:events:details", ADMIN),
    (
        "os_compute_api:server-metadata:index",
        "rule:project_reader_or_admin",
    ),
    (
        "os_compute_api:server-metadata:show",
        "rule:project_reader_or_admin",
    ),
    (
        "os_compute_api:server-metadata:create",
        "rule:project_member_or_admin",
    ),
    (
        "os_compute_api:server-metadata:update_all",
        "rule:project_member_or_admin",
    ),
    (
        "os_compute_api:server-metadata:update",
        "rule:project_member_or_admin",
    ),
    (
        "os_compute_api:server-metadata:delete",
        "rule:project_member_or_admin",
    ),
    (
        "os_compute_api:os-server-tags:index",
        "rule:project_reader_or_admin",
    ),
    (
        "os_compute_api:os-server-tags:show",
        "rule:project_reader_or_admin",
    ),
    (
        "os_compute_api:os-server-tags:update",
        "rule:project_member_or_admin",
    ),
    (
        "os_compute_api:os-server-tags:update_all",
        "rule:project_member_or_admin",
    ),
    (
        "os_compute_api:os-server-tags:delete",
        "rule:project_member_or_admin",
    ),
    (
        "os_compute_api:os-server-tags:delete_all",
        "rule:project_member_or_admin",
    ),
    ("os_compute_api:ips:index", "rule:project_reader_or_admin"),
    ("os_compute_api:ips:show", "rule:project_reader_or_admin"),
    ("os_compute_api:os-admin-actions:reset_state", ADMIN),
    (
        "os_compute_api:os-attach-interfaces:list",
        "rule:project_reader_or_admin",
    ),
    (
        "os_compute_api:os-attach-interfaces:show",
        "rule:project_reader_or_admin",
    ),
    (
        "os_compute_api:os-attach-interfaces:create",
        "rule:project_member_or_admin",
    ),
    (
        "os_compute_api:os-attach-interfaces:delete",
        "rule:project_member_or_admin",
    ),
    (
        "os_compute_api:os-deferred-delete:force",
        "rule:project_member_or_admin",
    ),
    (
        "os_compute_api:os-deferred-delete:restore",
        "rule:project_member_or_admin",
    ),
    ("os_compute_api:os-availability-zone:list", "@"),
    ("os_compute_api:os-availability-zone:detail", ADMIN),
    ("os_compute_api:os-hypervisors:list", ADMIN),
    ("os_compute_api:os-hypervisors:list-detail", ADMIN),
    ("os_compute_api:os-hypervisors:show", ADMIN),
    ("os_compute_api:os-hypervisors:statistics", ADMIN),
    ("os_compute_api:os-hypervisors:uptime", ADMIN),
    ("os_compute_api:os-hypervisors:search", ADMIN),
    ("os_compute_api:os-hypervisors:servers", ADMIN),
    ("os_compute_api:os-services:list", ADMIN),
    ("os_compute_api:os-services:update", ADMIN),
    ("os_compute_api:os-services:delete", ADMIN),
    (
        "os_compute_api:os-security-groups:add",
        "rule:project_member_or_admin",
    ),
    (
        "os_compute_api:os-security-groups:remove",
        "rule:project_member_or_admin",
    ),
    (
        "os_compute_api:os-security-groups:list",
        "rule:project_reader_or_admin",
    ),
    (
        "os_compute_api:os-server-groups:create",
        "rule:project_member_or_admin",
    ),
    (
        "os_compute_api:os-server-groups:delete",
        "rule:project_member_or_admin",
    ),
    (
        "os_compute_api:os-server-groups:index",
        "rule:project_reader_or_admin",
    ),
    ("os_compute_api:os-server-groups:index:all_projects", ADMIN),
    (
        "os_compute_api:os-server-groups:show",
        "rule:project_reader_or_admin",
    ),
    ("os_compute_api:os-aggregates:index", ADMIN),
    ("os_compute_api:os-aggregates:create", ADMIN),
    ("os_compute_api:os-aggregates:show", ADMIN),
    ("os_compute_api:os-aggregates:update", ADMIN),
    ("os_compute_api:os-aggregates:delete", ADMIN),
    ("os_compute_api:os-aggregates:add_host", ADMIN),
    ("os_compute_api:os-aggregates:remove_host", ADMIN),
    ("os_compute_api:os-aggregates:set_metadata", ADMIN),
    ("os_compute_api:os-simple-tenant-usage:list", ADMIN),
    (
        "os_compute_api:os-simple-tenant-usage:show",
        "rule:project_reader_or_admin",
    ),
    ("os_compute_api:os-server-diagnostics", ADMIN),
    (
        "os_compute_api:os-server-external-events:create",
        "rule:context_is_admin or role:service",
    ),
    (
        "os_compute_api:os-server-password:show",
        "rule:project_reader_or_admin",
    ),
    (
        "os_compute_api:os-server-password:clear",
        "rule:project_member_or_admin",
    ),
    ("os_compute_api:os-migrations:index", ADMIN),
    ("os_compute_api:os-hosts:list", ADMIN),
    ("os_compute_api:os-hosts:show", ADMIN),
    ("os_compute_api:os-hosts:update", ADMIN),
    ("os_compute_api:os-hosts:start", ADMIN),
    ("os_compute_api:os-hosts:shutdown", ADMIN),
    ("os_compute_api:os-hosts:reboot", ADMIN),
    ("os_compute_api:os-instance-usage-audit-log:list", ADMIN),
    ("os_compute_api:os-instance-usage-audit-log:show", ADMIN),
    ("os_compute_api:extensions", "@"),
];

/// Builds the enforcer from the defaults and the operator's policy file.
pub fn load(policy_file: Option<&std::path::Path>) -> Result<Enforcer, PolicyLoadError> {
    match policy_file {
        Some(path) => Enforcer::with_policy_file(DEFAULT_RULES, path),
        None => Enforcer::from_defaults(DEFAULT_RULES),
    }
}

/// The caller of one request and the credentials its policy rules check.
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
