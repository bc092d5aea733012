//! Operator policy files overriding and extending a service's defaults.

use std::path::PathBuf;

use serde_json::json;

use super::with_roles;
use crate::policy::{Enforcer, ParseError, PolicyLoadError, RuleOrigin};

const DEFAULTS: &[(&str, &str)] = &[
    ("admin_required", "role:admin"),
    ("compute:start", "rule:admin_required"),
    ("compute:list", "@"),
];

#[test]
fn yaml_override_replaces_default_and_adds_rule() {
    let policy = "\
# Let operators start servers too.
\"operators\": \"role:operator\"
\"compute:start\": \"rule:admin_required or rule:operators\"
\"compute:list\": \"!\"
";
    let enforcer = Enforcer::with_policy_text(DEFAULTS, policy).unwrap();

    assert!(enforcer.has_rule("operators"));
    assert!(enforcer.is_allowed("compute:start", &json!({}), &with_roles(&["operator"])));
    assert!(enforcer.is_allowed("compute:start", &json!({}), &with_roles(&["admin"])));
    assert!(!enforcer.is_allowed("compute:start", &json!({}), &with_roles(&["member"])));
    assert!(!enforcer.is_allowed("compute:list", &json!({}), &with_roles(&["admin"])));
}

#[test]
fn json_override_replaces_referenced_rule() {
    let policy = r#"{"admin_required": "role:cloud_admin", "extra:unused": "role:x"}"#;
    let enforcer = Enforcer::with_policy_text(DEFAULTS, policy).unwrap();

    assert!(enforcer.is_allowed("compute:start", &json!({}), &with_roles(&["cloud_admin"])));
    assert!(!enforcer.is_allowed("compute:start", &json!({}), &with_roles(&["admin"])));
    assert!(enforcer.has_rule("extra:unused"));
    assert!(enforcer.is_allowed("compute:list", &json!({}), &with_roles(&[])));
}

#[test]
fn override_can_add_default_rule() {
    let enforcer = Enforcer::with_policy_text(DEFAULTS, "default: role:admin\n").unwrap();
    assert!(enforcer.is_allowed("compute:unknown", &json!({}), &with_roles(&["admin"])));
    assert!(!enforcer.is_allowed("compute:unknown", &json!({}), &with_roles(&["member"])));
}

#[test]
fn invalid_override_names_rule_and_origin() {
    let policy = "\"compute:start\": \"(role:admin\"\n";
    let error = Enforcer::with_policy_text(DEFAULTS, policy).unwrap_err();
    let PolicyLoadError::InvalidRule {
        rule,
        origin,
        error: parse_error,
    } = error
    else {
        panic!("expected InvalidRule, got {error:?}");
    };
    assert_eq!(rule, "compute:start");
    assert_eq!(origin, RuleOrigin::PolicyFile);
    assert_eq!(parse_error, ParseError::UnclosedParenthesis { column: 1 });
}

#[test]
fn override_creating_cycle_is_rejected() {
    let policy = r#"{"admin_required": "rule:compute:start"}"#;
    let error = Enforcer::with_policy_text(DEFAULTS, policy).unwrap_err();
    assert!(
        matches!(error, PolicyLoadError::RuleCycle { .. }),
        "{error:?}"
    );
}

#[test]
fn unsupported_http_check_is_rejected() {
    let policy = "\"compute:start\": \"http://127.0.0.1:8080/check\"\n";
    let error = Enforcer::with_policy_text(DEFAULTS, policy).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("remote HTTP checks are not supported"),
        "{error}"
    );
}

/// A file in the system temp directory, removed when dropped.
struct TempPolicyFile(PathBuf);

impl TempPolicyFile {
    fn create(name: &str, contents: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("oxstack-policy-{}-{name}", std::process::id()));
        std::fs::write(&path, contents).expect("temp file is writable");
        Self(path)
    }
}

impl Drop for TempPolicyFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn policy_file_is_read_from_disk() {
    let file = TempPolicyFile::create("policy.yaml", "compute:list: role:reader\n");
    let enforcer = Enforcer::with_policy_file(DEFAULTS, &file.0).unwrap();
    assert!(enforcer.is_allowed("compute:list", &json!({}), &with_roles(&["reader"])));
    assert!(!enforcer.is_allowed("compute:list", &json!({}), &with_roles(&[])));
}

#[test]
fn missing_policy_file_names_path() {
    let path = std::env::temp_dir().join("oxstack-policy-does-not-exist.yaml");
    let error = Enforcer::with_policy_file(DEFAULTS, &path).unwrap_err();
    assert!(
        matches!(error, PolicyLoadError::ReadPolicyFile { .. }),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains("oxstack-policy-does-not-exist.yaml"),
        "{error}"
    );
}
