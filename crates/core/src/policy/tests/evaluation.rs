//! Check strings evaluated against credentials and targets.

use serde_json::json;

use super::{allows, with_roles};
use crate::policy::Credentials;

#[test]
fn special_checks_decide_alone() {
    let nobody = Credentials::default();
    assert!(allows("@", &json!({}), &nobody));
    assert!(allows("", &json!({}), &nobody));
    assert!(allows("  ", &json!({}), &nobody));
    assert!(!allows("!", &json!({}), &nobody));
    assert!(!allows("not @", &json!({}), &nobody));
    assert!(allows("not !", &json!({}), &nobody));
}

#[test]
fn and_binds_tighter_than_or() {
    let rule = "role:a or role:b and role:c";
    assert!(allows(rule, &json!({}), &with_roles(&["a"])));
    assert!(!allows(rule, &json!({}), &with_roles(&["b"])));
    assert!(allows(rule, &json!({}), &with_roles(&["b", "c"])));
}

#[test]
fn not_binds_tighter_than_and() {
    let rule = "not role:a and role:b";
    assert!(allows(rule, &json!({}), &with_roles(&["b"])));
    assert!(!allows(rule, &json!({}), &with_roles(&["a", "b"])));
    assert!(!allows(rule, &json!({}), &with_roles(&[])));
}

#[test]
fn parentheses_group_before_and() {
    let rule = "(role:a or role:b) and role:c";
    assert!(!allows(rule, &json!({}), &with_roles(&["a"])));
    assert!(allows(rule, &json!({}), &with_roles(&["a", "c"])));
    assert!(allows(rule, &json!({}), &with_roles(&["b", "c"])));
    assert!(!allows(rule, &json!({}), &with_roles(&["c"])));

    let negated = "not (role:a or role:b)";
    assert!(allows(negated, &json!({}), &with_roles(&["c"])));
    assert!(!allows(negated, &json!({}), &with_roles(&["b"])));
}

#[test]
fn role_check_ignores_case() {
    assert!(allows("role:Admin", &json!({}), &with_roles(&["admin"])));
    assert!(allows("role:admin", &json!({}), &with_roles(&["ADMIN"])));
    assert!(!allows(
        "role:admin",
        &json!({}),
        &with_roles(&["administrator"])
    ));
    assert!(!allows("role:admin", &json!({}), &with_roles(&[])));
}

#[test]
fn role_name_can_come_from_target() {
    let target = json!({"target": {"role": {"name": "Member"}}});
    let rule = "role:%(target.role.name)s";
    assert!(allows(rule, &target, &with_roles(&["member"])));
    assert!(!allows(rule, &target, &with_roles(&["reader"])));
    assert!(!allows(rule, &json!({}), &with_roles(&["member"])));
}

#[test]
fn attribute_matches_nested_target_path() {
    let credentials = Credentials {
        project_id: Some("p1".into()),
        ..Credentials::default()
    };
    let rule = "project_id:%(target.project.id)s";
    assert!(allows(
        rule,
        &json!({"target": {"project": {"id": "p1"}}}),
        &credentials
    ));
    assert!(!allows(
        rule,
        &json!({"target": {"project": {"id": "p2"}}}),
        &credentials
    ));
    assert!(allows(
        rule,
        &json!({"target.project.id": "p1"}),
        &credentials
    ));
}

#[test]
fn missing_target_key_fails_check() {
    let credentials = Credentials {
        project_id: Some("p1".into()),
        ..Credentials::default()
    };
    let rule = "project_id:%(target.project.id)s";
    assert!(!allows(rule, &json!({}), &credentials));
    assert!(!allows(rule, &json!({"target": {}}), &credentials));
    assert!(!allows(rule, &json!({"target": "p1"}), &credentials));
    assert!(!allows(rule, &json!(null), &credentials));
    assert!(!allows(rule, &json!([1, 2]), &credentials));

    // As in oslo.policy, `not` inverts the failed check.
    assert!(allows(
        "not project_id:%(target.x)s",
        &json!({}),
        &credentials
    ));
}

#[test]
fn null_never_matches_absent_credential() {
    let system_token = Credentials {
        system_scope: Some("all".into()),
        ..Credentials::default()
    };
    let rule = "project_id:%(project_id)s";
    assert!(!allows(rule, &json!({"project_id": null}), &system_token));
    assert!(!allows(rule, &json!({"project_id": "None"}), &system_token));
}

#[test]
fn literal_value_is_compared_with_credential() {
    let credentials = Credentials {
        domain_id: Some("default".into()),
        ..Credentials::default()
    };
    assert!(allows("domain_id:default", &json!({}), &credentials));
    assert!(allows("domain_id:'default'", &json!({}), &credentials));
    assert!(allows("domain_id:\"default\"", &json!({}), &credentials));
    assert!(!allows("domain_id:Default", &json!({}), &credentials));
    assert!(!allows("user_id:default", &json!({}), &credentials));
}

#[test]
fn extra_attribute_bool_matches_python_spelling() {
    let mut credentials = Credentials::default();
    credentials
        .extra
        .insert("is_admin_project".into(), json!(true));
    assert!(allows("is_admin_project:True", &json!({}), &credentials));
    assert!(!allows("is_admin_project:False", &json!({}), &credentials));
    assert!(!allows("is_admin_project:true", &json!({}), &credentials));
}

#[test]
fn literal_on_left_is_compared_with_target() {
    let nobody = Credentials::default();
    let rule = "True:%(target.user.enabled)s";
    assert!(allows(
        rule,
        &json!({"target": {"user": {"enabled": true}}}),
        &nobody
    ));
    assert!(allows(
        rule,
        &json!({"target": {"user": {"enabled": "True"}}}),
        &nobody
    ));
    assert!(!allows(
        rule,
        &json!({"target": {"user": {"enabled": false}}}),
        &nobody
    ));
    assert!(!allows(rule, &json!({}), &nobody));

    let quoted = "'Member':%(role.name)s";
    assert!(allows(
        quoted,
        &json!({"role": {"name": "Member"}}),
        &nobody
    ));
    assert!(!allows(
        quoted,
        &json!({"role": {"name": "member"}}),
        &nobody
    ));
}

#[test]
fn literal_on_left_is_compared_with_credential() {
    let credentials = Credentials {
        project_id: Some("myproject".into()),
        ..Credentials::default()
    };
    assert!(allows("'myproject':project_id", &json!({}), &credentials));
    assert!(!allows("'other':project_id", &json!({}), &credentials));
    assert!(!allows("'myproject':user_id", &json!({}), &credentials));
}

#[test]
fn substitution_with_surrounding_text() {
    let credentials = Credentials {
        user_id: Some("user-42".into()),
        ..Credentials::default()
    };
    let rule = "user_id:user-%(target.id)s";
    assert!(allows(rule, &json!({"target": {"id": 42}}), &credentials));
    assert!(!allows(rule, &json!({"target": {"id": 43}}), &credentials));
}
