//! The right-hand side of a check: a literal, or text with `%(path)s`
//! substitutions from the target, and the rendering of JSON values as the
//! strings oslo.policy compares.

use std::borrow::Cow;

use serde_json::Value;

/// A parsed match string, ready to render against a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Template {
    /// Constant text. A quoted match string is stored without its quotes.
    Literal(String),
    /// Exactly one substitution and nothing else, the common case, which
    /// renders without allocating when the target value is a string.
    Target(TargetPath),
    /// Substitutions mixed with text, such as `prefix-%(id)s`.
    Mixed(Vec<Part>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Part {
    Text(String),
    Target(TargetPath),
}

/// A dotted path such as `target.project.id` into the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TargetPath {
    full: String,
    segments: Vec<String>,
}

impl TargetPath {
    fn new(full: &str) -> Self {
        Self {
            full: full.to_owned(),
            segments: full.split('.').map(str::to_owned).collect(),
        }
    }

    /// Looks the path up in `target`. A top-level key equal to the whole
    /// path wins, because Keystone passes flattened targets such as
    /// `{"target.project.id": ...}`. Otherwise each segment descends one level
    /// into nested objects.
    pub(crate) fn lookup<'t>(&self, target: &'t Value) -> Option<&'t Value> {
        if let Some(value) = target.get(&self.full) {
            return Some(value);
        }
        self.segments
            .iter()
            .try_fold(target, |value, segment| value.get(segment))
    }
}

impl Template {
    /// Parses a match string. A literal percent sign is written `%%`, and any
    /// other `%` must start a `%(path)s` substitution, else the error is the reason.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        if let Some(inner) = strip_quotes(text) {
            return Ok(Self::Literal(inner.to_owned()));
        }

        let parts = parse_parts(text)?;
        Ok(match <[Part; 1]>::try_from(parts) {
            Ok([Part::Target(path)]) => Self::Target(path),
            Ok([Part::Text(text)]) => Self::Literal(text),
            Err(parts) if parts.is_empty() => Self::Literal(String::new()),
            Err(parts) => Self::Mixed(parts),
        })
    }

    /// Returns the text this template stands for under `target`, or `None`
    /// when a substituted key is missing or its value cannot be compared,
    /// which makes the check fail.
    pub(crate) fn render<'a>(&'a self, target: &'a Value) -> Option<Cow<'a, str>> {
        match self {
            Self::Literal(text) => Some(Cow::Borrowed(text)),
            Self::Target(path) => path.lookup(target).and_then(render_value),
            Self::Mixed(parts) => {
                let mut rendered = String::new();
                for part in parts {
                    match part {
                        Part::Text(text) => rendered.push_str(text),
                        Part::Target(path) => {
                            rendered.push_str(&render_value(path.lookup(target)?)?);
                        }
                    }
                }
                Some(Cow::Owned(rendered))
            }
        }
    }
}

fn parse_parts(text: &str) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some(percent) = rest.find('%') {
        literal.push_str(&rest[..percent]);
        let after = &rest[percent + 1..];
        if let Some(tail) = after.strip_prefix('%') {
            literal.push('%');
            rest = tail;
            continue;
        }

        let (path, tail) = parse_substitution(after)?;
        if !literal.is_empty() {
            parts.push(Part::Text(std::mem::take(&mut literal)));
        }
        parts.push(Part::Target(TargetPath::new(path)));
        rest = tail;
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        parts.push(Part::Text(literal));
    }
    Ok(parts)
}

/// Parses `(path)s` after a `%` and returns the path and the remaining text.
fn parse_substitution(after_percent: &str) -> Result<(&str, &str), String> {
    let Some(inner) = after_percent.strip_prefix('(') else {
        return Err(
            "'%' must start a '%(name)s' substitution; write '%%' for a literal '%'".into(),
        );
    };
    let Some(close) = inner.find(')') else {
        return Err("'%(' has no closing ')'".into());
    };

    let path = &inner[..close];
    if path.is_empty() || path.split('.').any(str::is_empty) {
        return Err(format!("'%({path})s' does not name a target attribute"));
    }
    match inner[close + 1..].strip_prefix('s') {
        Some(tail) => Ok((path, tail)),
        None => Err(format!("'%({path})' must be followed by 's'")),
    }
}

/// Returns the text between matching single or double quotes, if `text` is
/// quoted as a whole.
pub(crate) fn strip_quotes(text: &str) -> Option<&str> {
    ['\'', '"'].into_iter().find_map(|quote| {
        text.strip_prefix(quote)
            .and_then(|rest| rest.strip_suffix(quote))
    })
}

/// Renders a JSON value as Python's `str()` would render the same value,
/// which is what oslo.policy compares: `true` becomes `True`.
///
/// NOTE: null, arrays and objects return `None` so that they never match.
/// oslo.policy compares `"None"` and Python list reprs, which lets a missing
/// project id in the target match a token without one.
pub(crate) fn render_value(value: &Value) -> Option<Cow<'_, str>> {
    match value {
        Value::String(text) => Some(Cow::Borrowed(text)),
        Value::Bool(true) => Some(Cow::Borrowed("True")),
        Value::Bool(false) => Some(Cow::Borrowed("False")),
        Value::Number(number) => Some(Cow::Owned(number.to_string())),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn render(template: &str, target: &Value) -> Option<String> {
        let template = Template::parse(template).expect("template parses");
        template.render(target).map(Cow::into_owned)
    }

    #[test]
    fn literal_renders_unchanged() {
        assert_eq!(render("admin", &json!({})).as_deref(), Some("admin"));
        assert_eq!(
            render("'my project'", &json!({})).as_deref(),
            Some("my project")
        );
        assert_eq!(render("\"x\"", &json!({})).as_deref(), Some("x"));
        assert_eq!(render("", &json!({})).as_deref(), Some(""));
    }

    #[test]
    fn substitution_walks_nested_objects() {
        let target = json!({"target": {"project": {"id": "p1", "enabled": true, "size": 20}}});
        assert_eq!(
            render("%(target.project.id)s", &target).as_deref(),
            Some("p1")
        );
        assert_eq!(
            render("%(target.project.enabled)s", &target).as_deref(),
            Some("True")
        );
        assert_eq!(
            render("%(target.project.size)s", &target).as_deref(),
            Some("20")
        );
    }

    #[test]
    fn substitution_prefers_flattened_key() {
        let target = json!({"target.project.id": "flat", "target": {"project": {"id": "nested"}}});
        assert_eq!(
            render("%(target.project.id)s", &target).as_deref(),
            Some("flat")
        );
    }

    #[test]
    fn missing_or_uncomparable_value_renders_nothing() {
        let target = json!({"a": {"b": null, "list": [1], "object": {}}, "s": "x"});
        assert_eq!(render("%(a.missing)s", &target), None);
        assert_eq!(render("%(a.b)s", &target), None);
        assert_eq!(render("%(a.list)s", &target), None);
        assert_eq!(render("%(a.object)s", &target), None);
        assert_eq!(render("%(s.deeper)s", &target), None);
        assert_eq!(render("x-%(a.missing)s", &target), None);
    }

    #[test]
    fn mixed_template_concatenates_parts() {
        let target = json!({"id": "42", "zone": "z"});
        assert_eq!(
            render("vm-%(id)s@%(zone)s", &target).as_deref(),
            Some("vm-42@z")
        );
        assert_eq!(render("100%%", &target).as_deref(), Some("100%"));
    }

    #[test]
    fn malformed_substitution_is_rejected() {
        for bad in ["%(x", "%()s", "%(x)d", "%(x)", "50%", "%(a..b)s", "%x"] {
            assert!(Template::parse(bad).is_err(), "{bad} should be rejected");
        }
    }
}
