//! Rule sets: references, the default rule, load-time errors and denials.

use serde_json::json;

use super::with_roles;
use crate::policy::{Enforcer, ParseError, PolicyError, PolicyLoadError, RuleOrigin};

#[test]
fn rule_reference_uses_named_rule() {
    let enforcer = Enforcer::from_defaults(&[
        ("admin_required", "role:admin"),
        ("owner", "user_id:%(user_id)s"),
        ("update", "rule:admin_required or rule:owner"),
    ])
    .unwrap();
    let target = json!({"user_id": "u1"});

    assert!(enforcer.is_allowed("update", &target, &with_roles(&["admin"])));
    let mut owner = with_roles(&[]);
    owner.user_id = Some("u1".into());
    assert!(enforcer.is_allowed("update", &target, &owner));
    assert!(!enforcer.is_allowed("update", &target, &with_roles(&["member"])));
}

#[test]
fn rule_may_reference_rule_defined_later() {
    let enforcer = Enforcer::from_defaults(&[("a", "rule:b"), ("b", "role:x")]).unwrap();
    assert!(enforcer.is_allowed("a", &json!({}), &with_roles(&["x"])));
}

#[test]
fn undefined_reference_fails_closed() {
    let enforcer = Enforcer::from_defaults(&[
        ("a", "rule:missing or role:x"),
        ("b", "not rule:also_missing"),
    ])
    .unwrap();
    assert!(!enforcer.is_allowed("a", &json!({}), &with_roles(&["y"])));
    assert!(enforcer.is_allowed("a", &json!({}), &with_roles(&["x"])));
    assert!(enforcer.is_allowed("b", &json!({}), &with_roles(&[])));
    assert_eq!(
        enforcer.undefined_references(),
        vec![("a", "missing"), ("b", "also_missing")]
    );
}

#[test]
fn reference_cycle_is_rejected_at_load() {
    let error = Enforcer::from_defaults(&[
        ("start", "rule:a"),
        ("a", "role:x or rule:b"),
        ("b", "not rule:c"),
        ("c", "rule:a and role:y"),
    ])
    .unwrap_err();
    match error {
        PolicyLoadError::RuleCycle { cycle } => assert_eq!(cycle, vec!["a", "b", "c", "a"]),
        other => panic!("expected a cycle, got {other:?}"),
    }
}

#[test]
fn self_reference_is_rejected_at_load() {
    let error = Enforcer::from_defaults(&[("loop", "role:x or rule:loop")]).unwrap_err();
    assert_eq!(
        error.to_string(),
        "policy rules reference each other in a cycle: loop -> loop"
    );
}

#[test]
fn deep_reference_chain_is_rejected() {
    let names: Vec<String> = (0..=40).map(|index| format!("r{index}")).collect();
    let checks: Vec<String> = (0..40)
        .map(|index| format!("rule:r{}", index + 1))
        .chain(["role:x".to_owned()])
        .collect();
    let rules: Vec<(&str, &str)> = names
        .iter()
        .zip(&checks)
        .map(|(name, check)| (name.as_str(), check.as_str()))
        .collect();

    let error = Enforcer::from_defaults(&rules).unwrap_err();
    assert!(
        matches!(error, PolicyLoadError::RuleChainTooDeep { ref rule, max: 32 } if rule == "r7"),
        "{error:?}"
    );

    // The last 30 rules form a chain of 29 references, within the limit.
    let enforcer = Enforcer::from_defaults(&rules[11..]).unwrap();
    assert!(enforcer.is_allowed("r11", &json!({}), &with_roles(&["x"])));
}

#[test]
fn unknown_action_falls_back_to_default_rule() {
    let enforcer = Enforcer::from_defaults(&[("default", "role:admin"), ("list", "@")]).unwrap();
    assert!(enforcer.is_allowed("list", &json!({}), &with_roles(&[])));
    assert!(enforcer.is_allowed("unregistered", &json!({}), &with_roles(&["admin"])));
    assert!(!enforcer.is_allowed("unregistered", &json!({}), &with_roles(&["member"])));
}

#[test]
fn unknown_action_without_default_is_denied() {
    let enforcer = Enforcer::from_defaults(&[("list", "@")]).unwrap();
    assert!(!enforcer.has_rule("unregistered"));
    assert_eq!(
        enforcer.enforce("unregistered", &json!({}), &with_roles(&["admin"])),
        Err(PolicyError::Forbidden {
            action: "unregistered".into()
        })
    );
}

#[test]
fn denial_names_action_as_openstack_does() {
    let enforcer = Enforcer::from_defaults(&[("compute:delete", "role:admin")]).unwrap();
    let error = enforcer
        .enforce("compute:delete", &json!({}), &with_roles(&["member"]))
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "Policy doesn't allow compute:delete to be performed."
    );
    assert_eq!(
        enforcer.enforce("compute:delete", &json!({}), &with_roles(&["admin"])),
        Ok(())
    );
}

#[test]
fn invalid_default_names_rule_and_token() {
    let error = Enforcer::from_defaults(&[
        ("fine", "role:a"),
        ("identity:broken", "role:a or or role:b"),
    ])
    .unwrap_err();

    let PolicyLoadError::InvalidRule {
        ref rule,
        origin,
        error: ref parse_error,
    } = error
    else {
        panic!("expected InvalidRule, got {error:?}");
    };
    assert_eq!(rule, "identity:broken");
    assert_eq!(origin, RuleOrigin::ServiceDefault);
    assert_eq!(
        *parse_error,
        ParseError::UnexpectedToken {
            token: "or".into(),
            column: 11
        }
    );
    assert_eq!(
        error.to_string(),
        "policy rule \"identity:broken\" from the service defaults has an invalid check \
         string: unexpected token 'or' at column 11"
    );
}

#[test]
fn duplicate_default_is_rejected() {
    let error = Enforcer::from_defaults(&[("a", "@"), ("a", "!")]).unwrap_err();
    assert!(
        matches!(error, PolicyLoadError::DuplicateDefault { ref rule } if rule == "a"),
        "{error:?}"
    );
}

#[test]
fn validate_check_string_reports_position() {
    assert_eq!(
        crate::policy::validate_check_string("role:a and (role:b or role:c)"),
        Ok(())
    );
    assert_eq!(
        crate::policy::validate_check_string("(role:a"),
        Err(ParseError::UnclosedParenthesis { column: 1 })
    );
}
