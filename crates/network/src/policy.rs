//! Authorisation of network, subnet, port, security group, router, floating
//! IP, quota and agent requests: Neutron's default rules (the
//! 2023.2 "new defaults"), in oslo.policy syntax, and the checks handlers
//! call. Targets are offered under `target.` (`%(target.project_id)s`), the
//! form every OxStack service uses.
//!
//! Attribute rules (`create_network:shared`) guard single fields, as in
//! Neutron: a request that sets the field, or a response that would show
//! it, is checked against the rule of that field as well.

use oxstack_core::policy::{Credentials, Enforcer, PolicyLoadError};
use oxstack_core::{ApiError, RequestContext};
use serde_json::{json, Value};

use crate::model::{FloatingIp, Network, Port, Router, SecurityGroup, SecurityGroupRule, Subnet};

const ADMIN: &str = "rule:context_is_admin";

pub const DEFAULT_RULES: &[(&str, &str)] = &[
    ("context_is_admin", "role:admin"),
    ("admin_only", ADMIN),
    (
        "project_member",
        "role:member and project_id:%(target.project_id)s",
    ),
    (
        "project_reader",
        "role:reader and project_id:%(target.project_id)s",
    ),
    (
        "admin_or_project_member",
        "rule:context_is_admin or rule:project_member",
    ),
    (
        "admin_or_project_reader",
        "rule:context_is_admin or rule:project_reader",
    ),
    ("shared", "'True':%(target.shared)s"),
    ("external", "'True':%(target.external)s"),
    (
        "network_owner",
        "role:member and project_id:%(target.network_project_id)s",
    ),
    (
        "admin_or_network_owner",
        "rule:context_is_admin or rule:network_owner",
    ),
    // Networks.
    ("create_network", "rule:admin_or_project_member"),
    ("create_network:shared", ADMIN),
    ("create_network:router:external", ADMIN),
    ("create_network:is_default", ADMIN),
    ("create_network:provider:network_type", ADMIN),
    ("create_network:provider:physical_network", ADMIN),
    ("create_network:provider:segmentation_id", ADMIN),
    (
        "get_network",
        "rule:admin_or_project_reader or rule:shared or rule:external",
    ),
    ("get_network:provider:network_type", ADMIN),
    ("get_network:provider:physical_network", ADMIN),
    ("get_network:provider:segmentation_id", ADMIN),
    ("update_network", "rule:admin_or_project_member"),
    ("update_network:shared", ADMIN),
    ("update_network:router:external", ADMIN),
    ("update_network:is_default", ADMIN),
    ("delete_network", "rule:admin_or_project_member"),
    // Subnets: the owner of the network manages them.
    ("create_subnet", "rule:admin_or_network_owner"),
    (
        "get_subnet",
        "rule:admin_or_project_reader or rule:shared or rule:external",
    ),
    ("update_subnet", "rule:admin_or_network_owner"),
    ("delete_subnet", "rule:admin_or_network_owner"),
    // Ports: the port's project, and the owner of its network, manage it.
    (
        "network_owner_reader",
        "role:reader and project_id:%(target.network_project_id)s",
    ),
    ("create_port", "rule:admin_or_project_member"),
    ("create_port:device_owner", "rule:admin_or_network_owner"),
    ("create_port:mac_address", "rule:admin_or_network_owner"),
    (
        "create_port:fixed_ips:ip_address",
        "rule:admin_or_network_owner",
    ),
    (
        "create_port:fixed_ips:subnet_id",
        "rule:admin_or_network_owner or rule:shared",
    ),
    (
        "create_port:port_security_enabled",
        "rule:admin_or_network_owner",
    ),
    (
        "create_port:allowed_address_pairs",
        "rule:admin_or_network_owner",
    ),
    ("create_port:binding:host_id", ADMIN),
    ("create_port:binding:profile", ADMIN),
    (
        "create_port:binding:vnic_type",
        "rule:admin_or_project_member",
    ),
    (
        "get_port",
        "rule:admin_or_project_reader or rule:network_owner_reader",
    ),
    ("get_port:binding:vif_type", ADMIN),
    ("get_port:binding:vif_details", ADMIN),
    ("get_port:binding:host_id", ADMIN),
    ("get_port:binding:profile", ADMIN),
    (
        "update_port",
        "rule:admin_or_project_member or rule:network_owner",
    ),
    ("update_port:device_owner", "rule:admin_or_network_owner"),
    ("update_port:mac_address", ADMIN),
    (
        "update_port:fixed_ips:ip_address",
        "rule:admin_or_network_owner",
    ),
    (
        "update_port:fixed_ips:subnet_id",
        "rule:admin_or_network_owner or rule:shared",
    ),
    (
        "update_port:port_security_enabled",
        "rule:admin_or_network_owner",
    ),
    (
        "update_port:allowed_address_pairs",
        "rule:admin_or_network_owner",
    ),
    ("update_port:binding:host_id", ADMIN),
    ("update_port:binding:profile", ADMIN),
    (
        "update_port:binding:vnic_type",
        "rule:admin_or_project_member",
    ),
    (
        "delete_port",
        "rule:admin_or_project_member or rule:network_owner",
    ),
    // Security groups and their rules belong to one project.
    ("create_security_group", "rule:admin_or_project_member"),
    ("get_security_group", "rule:admin_or_project_reader"),
    ("update_security_group", "rule:admin_or_project_member"),
    ("delete_security_group", "rule:admin_or_project_member"),
    (
        "security_group_owner",
        "role:reader and project_id:%(target.security_group_project_id)s",
    ),
    ("create_security_group_rule", "rule:admin_or_project_member"),
    (
        "get_security_group_rule",
        "rule:admin_or_project_reader or rule:security_group_owner",
    ),
    ("delete_security_group_rule", "rule:admin_or_project_member"),
    // Routers: their project manages them; gateway SNAT and fixed
    // gateway addresses are the operator's.
    ("create_router", "rule:admin_or_project_member"),
    (
        "create_router:external_gateway_info",
        "rule:admin_or_project_member",
    ),
    ("create_router:external_gateway_info:enable_snat", ADMIN),
    (
        "create_router:external_gateway_info:external_fixed_ips",
        ADMIN,
    ),
    ("get_router", "rule:admin_or_project_reader"),
    ("update_router", "rule:admin_or_project_member"),
    (
        "update_router:external_gateway_info",
        "rule:admin_or_project_member",
    ),
    ("update_router:external_gateway_info:enable_snat", ADMIN),
    (
        "update_router:external_gateway_info:external_fixed_ips",
        ADMIN,
    ),
    ("delete_router", "rule:admin_or_project_member"),
    ("add_router_interface", "rule:admin_or_project_member"),
    ("remove_router_interface", "rule:admin_or_project_member"),
    // Floating IPs belong to one project; choosing the address is the
    // operator's.
    ("create_floatingip", "rule:admin_or_project_member"),
    ("create_floatingip:floating_ip_address", ADMIN),
    ("get_floatingip", "rule:admin_or_project_reader"),
    ("update_floatingip", "rule:admin_or_project_member"),
    ("delete_floatingip", "rule:admin_or_project_member"),
    // Quotas: a project reads its own; admins set them.
    ("get_quota", "rule:admin_or_project_reader"),
    ("update_quota", ADMIN),
    ("delete_quota", ADMIN),
    // Agents are the operator's.
    ("get_agent", ADMIN),
    ("update_agent", ADMIN),
    ("delete_agent", ADMIN),
];

/// Builds the enforcer from the defaults and the operator's policy file.
pub fn load(policy_file: Option<&std::path::Path>) -> Result<Enforcer, PolicyLoadError> {
    match policy_file {
        Some(path) => Enforcer::with_policy_file(DEFAULT_RULES, path),
        None => Enforcer::from_defaults(DEFAULT_RULES),
    }
}

/// The caller of one request as the rules see it.
pub struct Caller {
    /// The project of a project-scoped token; empty for other scopes.
    pub project_id: String,
    pub is_admin: bool,
    credentials: Credentials,
}

impl Caller {
    pub fn new(policy: &Enforcer, ctx: &RequestContext) -> Self {
        let credentials = ctx.auth.credentials();
        let is_admin = policy.is_allowed("context_is_admin", &json!({}), &credentials);
        Caller {
            project_id: ctx.auth.project_id.clone().unwrap_or_default(),
            is_admin,
            credentials,
        }
    }

    /// Builds the caller of an in-process request made with `auth`, the
    /// token of the user on whose behalf another service calls.
    pub fn from_auth(policy: &Enforcer, auth: &oxstack_core::AuthContext) -> Self {
        let credentials = auth.credentials();
        let is_admin = policy.is_allowed("context_is_admin", &json!({}), &credentials);
        Caller {
            project_id: auth.project_id.clone().unwrap_or_default(),
            is_admin,
            credentials,
        }
    }

    /// Builds the caller of the cloud's own work done without a user's
    /// token (a server build, a network agent, bootstrap): an admin scoped
    /// to `project_id`, so resources it creates belong to that project.
    pub fn service(policy: &Enforcer, project_id: &str) -> Self {
        let credentials = Credentials {
            roles: vec!["admin".into(), "member".into(), "reader".into()],
            project_id: Some(project_id.to_owned()),
            ..Default::default()
        };
        let is_admin = policy.is_allowed("context_is_admin", &json!({}), &credentials);
        Caller {
            project_id: project_id.to_owned(),
            is_admin,
            credentials,
        }
    }

    pub fn allows(&self, policy: &Enforcer, action: &str, target: &Value) -> bool {
        policy.is_allowed(action, &json!({ "target": target }), &self.credentials)
    }

    /// Allows `action` or returns Neutron's 403 naming the rule.
    pub fn authorize(
        &self,
        policy: &Enforcer,
        action: &str,
        target: &Value,
    ) -> Result<(), ApiError> {
        if self.allows(policy, action, target) {
            return Ok(());
        }
        Err(
            ApiError::forbidden(format!("(rule:{action}) is disallowed by policy"))
                .with_type("PolicyNotAuthorized"),
        )
    }
}

pub fn network_target(network: &Network) -> Value {
    json!({
        "id": network.id,
        "project_id": network.project_id,
        "tenant_id": network.project_id,
        "network_project_id": network.project_id,
        "shared": network.shared,
        "external": network.external,
    })
}

/// The target of a subnet, which carries its network's owner and sharing,
/// because those decide who reads and manages the subnet.
pub fn subnet_target(subnet: &Subnet, network: &Network) -> Value {
    json!({
        "id": subnet.id,
        "project_id": subnet.project_id,
        "tenant_id": subnet.project_id,
        "network_id": network.id,
        "network_project_id": network.project_id,
        "shared": network.shared,
        "external": network.external,
    })
}

/// Returns the target of a port, which carries its network's owner and
/// sharing.
pub fn port_target(port: &Port, network: &Network) -> Value {
    json!({
        "id": port.id,
        "project_id": port.project_id,
        "tenant_id": port.project_id,
        "network_id": network.id,
        "network_project_id": network.project_id,
        "shared": network.shared,
        "external": network.external,
        "device_owner": port.device_owner,
    })
}

pub fn router_target(router: &Router) -> Value {
    json!({
        "id": router.id,
        "project_id": router.project_id,
        "tenant_id": router.project_id,
    })
}

pub fn floatingip_target(fip: &FloatingIp) -> Value {
    json!({
        "id": fip.id,
        "project_id": fip.project_id,
        "tenant_id": fip.project_id,
    })
}

pub fn security_group_target(group: &SecurityGroup) -> Value {
    json!({
        "id": group.id,
        "project_id": group.project_id,
        "tenant_id": group.project_id,
    })
}

/// Returns the target of a rule, which carries its group's owner: the owner
/// of a group reads every rule in it, also those another project created.
pub fn security_group_rule_target(rule: &SecurityGroupRule, group_project: &str) -> Value {
    json!({
        "id": rule.id,
        "project_id": rule.project_id,
        "tenant_id": rule.project_id,
        "security_group_id": rule.security_group_id,
        "security_group_project_id": group_project,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member_of(project: &str) -> Credentials {
        Credentials {
            roles: vec!["member".into(), "reader".into()],
            user_id: Some("u1".into()),
            project_id: Some(project.into()),
            ..Default::default()
        }
    }

    fn target(project: &str, shared: bool, external: bool) -> Value {
        json!({"target": {"project_id": project, "shared": shared, "external": external}})
    }

    #[test]
    fn member_sees_own_shared_and_external_networks() {
        let policy = load(None).unwrap();
        let member = member_of("p1");
        assert!(policy.is_allowed("get_network", &target("p1", false, false), &member));
        assert!(policy.is_allowed("get_network", &target("p2", true, false), &member));
        assert!(policy.is_allowed("get_network", &target("p2", false, true), &member));
        assert!(!policy.is_allowed("get_network", &target("p2", false, false), &member));
    }

    #[test]
    fn provider_attributes_are_admin_only() {
        let policy = load(None).unwrap();
        let admin = Credentials {
            roles: vec!["admin".into()],
            ..Default::default()
        };
        let empty = json!({"target": {}});
        assert!(!policy.is_allowed(
            "create_network:provider:network_type",
            &empty,
            &member_of("p1")
        ));
        assert!(policy.is_allowed("create_network:provider:network_type", &empty, &admin));
    }
}
