//! The caller's attributes that policy checks compare against, taken from
//! the validated token.

use std::collections::BTreeMap;

use serde_json::Value;

use super::template::render_value;

/// Attributes of the caller. Generic checks such as `project_id:...` name
/// these fields, and any other name is looked up in `extra`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Credentials {
    /// Role names, matched case-insensitively by `role:` checks.
    pub roles: Vec<String>,
    pub user_id: Option<String>,
    /// Set for project-scoped tokens.
    pub project_id: Option<String>,
    /// Set for domain-scoped tokens.
    pub domain_id: Option<String>,
    /// `all` for system-scoped tokens, as Keystone's `system_scope:all` expects.
    pub system_scope: Option<String>,
    /// Other attributes, such as `user_domain_id` or `is_admin_project`.
    /// Keys must not repeat the names of the fields above, because checks
    /// read those names from the fields only.
    pub extra: BTreeMap<String, Value>,
}

impl Credentials {
    /// Returns whether the caller has `role`, ignoring case.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|held| eq_ignore_case(held, role))
    }

    /// Returns whether the attribute at `path` equals `expected`.
    ///
    /// `path` contains the segments of a dotted name such as `token.user.id`.
    /// Segments after the first descend into objects in `extra`. Where a segment leads
    /// to an array, any element may match, as in oslo.policy. An absent or
    /// null attribute matches nothing.
    pub(crate) fn attribute_matches(&self, path: &[String], expected: &str) -> bool {
        let Some((name, rest)) = path.split_first() else {
            return false;
        };

        let typed = match name.as_str() {
            "roles" => return rest.is_empty() && self.roles.iter().any(|role| role == expected),
            "user_id" => &self.user_id,
            "project_id" => &self.project_id,
            "domain_id" => &self.domain_id,
            "system_scope" => &self.system_scope,
            _ => {
                return self
                    .extra
                    .get(name)
                    .is_some_and(|value| value_matches(value, rest, expected));
            }
        };
        rest.is_empty() && typed.as_deref() == Some(expected)
    }
}

/// Compares a value reached by one path segment: arrays are searched
/// element by element before the remaining segments apply.
fn value_matches(value: &Value, rest: &[String], expected: &str) -> bool {
    match value {
        Value::Array(items) => items
            .iter()
            .any(|item| element_matches(item, rest, expected)),
        _ => element_matches(value, rest, expected),
    }
}

fn element_matches(value: &Value, rest: &[String], expected: &str) -> bool {
    match rest.split_first() {
        None => render_value(value).is_some_and(|text| text == expected),
        Some((segment, deeper)) => value
            .get(segment.as_str())
            .is_some_and(|child| value_matches(child, deeper, expected)),
    }
}

/// Compares with Unicode lower-casing, as Python's `str.lower()` does in
/// oslo.policy's role check, without allocating.
fn eq_ignore_case(left: &str, right: &str) -> bool {
    left.chars()
        .flat_map(char::to_lowercase)
        .eq(right.chars().flat_map(char::to_lowercase))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn path(dotted: &str) -> Vec<String> {
        dotted.split('.').map(str::to_owned).collect()
    }

    fn sample() -> Credentials {
        let mut credentials = Credentials {
            roles: vec!["Reader".into(), "member".into()],
            user_id: Some("u1".into()),
            project_id: Some("p1".into()),
            domain_id: None,
            system_scope: Some("all".into()),
            extra: BTreeMap::new(),
        };
        credentials
            .extra
            .insert("is_admin_project".into(), json!(true));
        credentials.extra.insert(
            "token".into(),
            json!({"groups": [{"id": "g1"}, {"id": "g2"}], "user": {"id": "u1"}}),
        );
        credentials.extra.insert("tags".into(), json!(["a", "b"]));
        credentials.extra.insert("nothing".into(), Value::Null);
        credentials
    }

    #[test]
    fn has_role_ignores_case() {
        let credentials = sample();
        assert!(credentials.has_role("reader"));
        assert!(credentials.has_role("READER"));
        assert!(credentials.has_role("Member"));
        assert!(!credentials.has_role("admin"));
    }

    #[test]
    fn eq_ignore_case_handles_non_ascii() {
        assert!(eq_ignore_case("ÉDITEUR", "éditeur"));
        assert!(!eq_ignore_case("editor", "éditeur"));
    }

    #[test]
    fn typed_attributes_match_exactly() {
        let credentials = sample();
        assert!(credentials.attribute_matches(&path("project_id"), "p1"));
        assert!(!credentials.attribute_matches(&path("project_id"), "P1"));
        assert!(credentials.attribute_matches(&path("user_id"), "u1"));
        assert!(credentials.attribute_matches(&path("system_scope"), "all"));
        assert!(!credentials.attribute_matches(&path("project_id.id"), "p1"));
    }

    #[test]
    fn absent_attribute_never_matches() {
        let credentials = sample();
        assert!(!credentials.attribute_matches(&path("domain_id"), ""));
        assert!(!credentials.attribute_matches(&path("domain_id"), "None"));
        assert!(!credentials.attribute_matches(&path("nothing"), "None"));
        assert!(!credentials.attribute_matches(&path("unknown"), "x"));
    }

    #[test]
    fn roles_attribute_matches_any_role_exactly() {
        let credentials = sample();
        assert!(credentials.attribute_matches(&path("roles"), "Reader"));
        assert!(!credentials.attribute_matches(&path("roles"), "reader"));
    }

    #[test]
    fn extra_attributes_render_like_python() {
        let credentials = sample();
        assert!(credentials.attribute_matches(&path("is_admin_project"), "True"));
        assert!(!credentials.attribute_matches(&path("is_admin_project"), "true"));
    }

    #[test]
    fn extra_paths_descend_and_search_arrays() {
        let credentials = sample();
        assert!(credentials.attribute_matches(&path("token.user.id"), "u1"));
        assert!(credentials.attribute_matches(&path("token.groups.id"), "g2"));
        assert!(!credentials.attribute_matches(&path("token.groups.id"), "g3"));
        assert!(credentials.attribute_matches(&path("tags"), "b"));
        assert!(!credentials.attribute_matches(&path("token.user.missing"), "u1"));
    }
}
