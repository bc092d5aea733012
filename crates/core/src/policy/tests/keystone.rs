//! Rules in the shape of Keystone's defaults, with system, domain and
//! project scoped callers.

use serde_json::{json, Value};

use crate::policy::{Credentials, Enforcer};

const RULES: &[(&str, &str)] = &[
    ("admin_required", "role:admin or is_admin:1"),
    (
        "identity:get_project",
        "(role:reader and system_scope:all) or (role:reader and domain_id:%(target.domain_id)s) \
         or project_id:%(target.project.id)s",
    ),
    (
        "identity:get_user",
        "rule:admin_required or (role:reader and user_id:%(target.user.id)s)",
    ),
];

fn enforcer() -> Enforcer {
    Enforcer::from_defaults(RULES).expect("Keystone-style rules load")
}

fn project_target(project_id: &str, domain_id: &str) -> Value {
    json!({"target": {"domain_id": domain_id, "project": {"id": project_id, "domain_id": domain_id}}})
}

fn caller(roles: &[&str]) -> Credentials {
    Credentials {
        roles: roles.iter().map(|role| role.to_string()).collect(),
        user_id: Some("u1".into()),
        ..Credentials::default()
    }
}

#[test]
fn system_reader_gets_any_project() {
    let mut system_reader = caller(&["reader"]);
    system_reader.system_scope = Some("all".into());
    let target = project_target("p9", "d9");
    assert!(enforcer().is_allowed("identity:get_project", &target, &system_reader));

    let mut system_member = caller(&["member"]);
    system_member.system_scope = Some("all".into());
    assert!(!enforcer().is_allowed("identity:get_project", &target, &system_member));
}

#[test]
fn domain_reader_gets_projects_of_own_domain() {
    let mut domain_reader = caller(&["Reader"]);
    domain_reader.domain_id = Some("d1".into());
    let enforcer = enforcer();
    assert!(enforcer.is_allowed(
        "identity:get_project",
        &project_target("p1", "d1"),
        &domain_reader
    ));
    assert!(!enforcer.is_allowed(
        "identity:get_project",
        &project_target("p2", "d2"),
        &domain_reader
    ));

    let mut domain_member = caller(&["member"]);
    domain_member.domain_id = Some("d1".into());
    assert!(!enforcer.is_allowed(
        "identity:get_project",
        &project_target("p1", "d1"),
        &domain_member
    ));
}

#[test]
fn project_member_gets_own_project_only() {
    let mut member = caller(&["member"]);
    member.project_id = Some("p1".into());
    let enforcer = enforcer();
    assert!(enforcer.is_allowed("identity:get_project", &project_target("p1", "d1"), &member));
    assert!(!enforcer.is_allowed("identity:get_project", &project_target("p2", "d1"), &member));
    assert!(!enforcer.is_allowed("identity:get_project", &json!({}), &member));
}

#[test]
fn flattened_target_works_like_nested() {
    let mut member = caller(&["member"]);
    member.project_id = Some("p1".into());
    let flat = json!({"target.project.id": "p1", "target.domain_id": "d1"});
    assert!(enforcer().is_allowed("identity:get_project", &flat, &member));
}

#[test]
fn user_reads_self_or_admin_reads_anyone() {
    let enforcer = enforcer();
    let own = json!({"target": {"user": {"id": "u1"}}});
    let other = json!({"target": {"user": {"id": "u2"}}});

    assert!(enforcer.is_allowed("identity:get_user", &own, &caller(&["reader"])));
    assert!(!enforcer.is_allowed("identity:get_user", &other, &caller(&["reader"])));
    assert!(!enforcer.is_allowed("identity:get_user", &own, &caller(&[])));
    assert!(enforcer.is_allowed("identity:get_user", &other, &caller(&["ADMIN"])));
}

#[test]
fn legacy_is_admin_attribute_is_compared_as_text() {
    let mut legacy_admin = caller(&[]);
    legacy_admin.extra.insert("is_admin".into(), json!(1));
    let other = json!({"target": {"user": {"id": "u2"}}});
    assert!(enforcer().is_allowed("identity:get_user", &other, &legacy_admin));

    legacy_admin.extra.insert("is_admin".into(), json!(0));
    assert!(!enforcer().is_allowed("identity:get_user", &other, &legacy_admin));
}
