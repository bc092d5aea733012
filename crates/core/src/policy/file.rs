//! Reads an operator's policy file: a flat JSON or YAML map from rule name to
//! check string, as oslo.policy's `policy.yaml` and legacy `policy.json`.

use std::collections::BTreeMap;

use super::error::PolicyLoadError;

/// Parses the text of a policy file into rule name → check string.
///
/// Text that starts with `{` is read as JSON first, and as YAML only if
/// that fails, because a YAML flow mapping also starts with `{`. Everything
/// else is read as YAML. An empty or comment-only YAML file has no rules.
pub fn parse_policy_file(text: &str) -> Result<BTreeMap<String, String>, PolicyLoadError> {
    if text.trim_start().starts_with('{') {
        let json_error = match serde_json::from_str::<serde_json::Value>(text) {
            Ok(value) => return rules_from_json(value),
            Err(error) => error,
        };
        // The JSON error is the helpful one for a file that looks like JSON.
        return match serde_yaml::from_str::<serde_yaml::Value>(text) {
            Ok(value) => rules_from_yaml(value),
            Err(_) => Err(PolicyLoadError::PolicyFileJson { source: json_error }),
        };
    }

    let value = serde_yaml::from_str::<serde_yaml::Value>(text)
        .map_err(|source| PolicyLoadError::PolicyFileYaml { source })?;
    rules_from_yaml(value)
}

fn rules_from_json(value: serde_json::Value) -> Result<BTreeMap<String, String>, PolicyLoadError> {
    let serde_json::Value::Object(entries) = value else {
        return Err(PolicyLoadError::PolicyFileNotMap);
    };
    entries
        .into_iter()
        .map(|(rule, check)| match check {
            serde_json::Value::String(check) => Ok((rule, check)),
            _ => Err(PolicyLoadError::RuleNotString { rule }),
        })
        .collect()
}

fn rules_from_yaml(value: serde_yaml::Value) -> Result<BTreeMap<String, String>, PolicyLoadError> {
    let entries = match value {
        serde_yaml::Value::Null => return Ok(BTreeMap::new()),
        serde_yaml::Value::Mapping(entries) => entries,
        _ => return Err(PolicyLoadError::PolicyFileNotMap),
    };
    entries
        .into_iter()
        .map(|(rule, check)| {
            let serde_yaml::Value::String(rule) = rule else {
                return Err(PolicyLoadError::PolicyFileNotMap);
            };
            match check {
                serde_yaml::Value::String(check) => Ok((rule, check)),
                _ => Err(PolicyLoadError::RuleNotString { rule }),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(name, check)| (name.to_string(), check.to_string()))
            .collect()
    }

    #[test]
    fn yaml_file_parses() {
        let text = "# operator overrides\n\"admin_required\": \"role:admin\"\nidentity:get_user: ''\nalways: \"@\"\n";
        let expected = rules(&[
            ("admin_required", "role:admin"),
            ("identity:get_user", ""),
            ("always", "@"),
        ]);
        assert_eq!(parse_policy_file(text).unwrap(), expected);
    }

    #[test]
    fn json_file_parses() {
        let text = r#"{"admin_required": "role:admin", "default": "!"}"#;
        let expected = rules(&[("admin_required", "role:admin"), ("default", "!")]);
        assert_eq!(parse_policy_file(text).unwrap(), expected);
    }

    #[test]
    fn yaml_flow_mapping_parses() {
        let text = "{admin_required: role:admin}";
        let expected = rules(&[("admin_required", "role:admin")]);
        assert_eq!(parse_policy_file(text).unwrap(), expected);
    }

    #[test]
    fn empty_yaml_file_has_no_rules() {
        assert!(parse_policy_file("").unwrap().is_empty());
        assert!(parse_policy_file("# nothing overridden\n")
            .unwrap()
            .is_empty());
    }

    #[test]
    fn broken_json_reports_json_position() {
        let error = parse_policy_file("{\n  \"a\": \"role:x\",,\n}").unwrap_err();
        assert!(
            matches!(error, PolicyLoadError::PolicyFileJson { .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains("line 2"), "{error}");
    }

    #[test]
    fn broken_yaml_reports_yaml_position() {
        let error = parse_policy_file("a: role:x\n  b: [\n").unwrap_err();
        assert!(
            matches!(error, PolicyLoadError::PolicyFileYaml { .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains("line"), "{error}");
    }

    #[test]
    fn non_string_check_names_the_rule() {
        let cases = [
            r#"{"legacy": [["role:admin"]]}"#,
            "unquoted_never: !\n",
            "empty_value:\n",
            "flag: true\n",
        ];
        for text in cases {
            let error = parse_policy_file(text).unwrap_err();
            assert!(
                matches!(error, PolicyLoadError::RuleNotString { .. }),
                "{text:?}: {error:?}"
            );
        }
        let error = parse_policy_file("legacy: [[role:admin]]\n").unwrap_err();
        assert!(error.to_string().contains("\"legacy\""), "{error}");
    }

    #[test]
    fn non_map_file_is_rejected() {
        for text in [
            "- role:admin\n",
            "[\"role:admin\"]",
            "just text",
            "1: role:admin\n",
        ] {
            let error = parse_policy_file(text).unwrap_err();
            assert!(
                matches!(error, PolicyLoadError::PolicyFileNotMap),
                "{text:?}: {error:?}"
            );
        }
    }
}
