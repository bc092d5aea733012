//! The parsed form of a check string and the parsing of single checks such
//! as `role:admin` or `project_id:%(target.project.id)s`.

use super::error::ParseError;
use super::lexer::Token;
use super::template::{strip_quotes, Template};

/// A parsed check string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Expr {
    /// `@` or an empty check string.
    Always,
    /// `!`.
    Never,
    Rule(RuleRef),
    /// `role:NAME`, compared case-insensitively with the caller's roles.
    Role(Template),
    Generic(Generic),
    Not(Box<Expr>),
    And(Vec<Expr>),
    Or(Vec<Expr>),
}

/// A `rule:NAME` reference. The enforcer fills in `slot`, the index of the
/// named rule, once all rules are known. A reference left at `None` names no
/// rule and fails, as oslo.policy fails closed on unknown rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RuleRef {
    pub name: String,
    pub slot: Option<usize>,
}

/// A generic `left:right` check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Generic {
    /// `project_id:%(target.project.id)s` or `domain_id:'d1'`: a credential
    /// attribute equals the rendered template.
    CredentialEquals {
        attribute: Vec<String>,
        expected: Template,
    },
    /// `True:%(target.user.enabled)s`: a literal equals a target value.
    LiteralEqualsTarget { literal: String, value: Template },
    /// `'admin':roles`: a literal equals a credential attribute.
    LiteralEqualsCredential {
        literal: String,
        attribute: Vec<String>,
    },
}

impl Expr {
    /// Calls `visit` on every `rule:` reference in this expression.
    pub(crate) fn for_each_rule_ref<'e>(&'e self, visit: &mut impl FnMut(&'e RuleRef)) {
        match self {
            Self::Rule(reference) => visit(reference),
            Self::Not(inner) => inner.for_each_rule_ref(visit),
            Self::And(items) | Self::Or(items) => {
                items.iter().for_each(|item| item.for_each_rule_ref(visit));
            }
            Self::Always | Self::Never | Self::Role(_) | Self::Generic(_) => {}
        }
    }

    /// Calls `visit` on every `rule:` reference, allowing it to set the slot.
    pub(crate) fn for_each_rule_ref_mut(&mut self, visit: &mut impl FnMut(&mut RuleRef)) {
        match self {
            Self::Rule(reference) => visit(reference),
            Self::Not(inner) => inner.for_each_rule_ref_mut(visit),
            Self::And(items) | Self::Or(items) => {
                items
                    .iter_mut()
                    .for_each(|item| item.for_each_rule_ref_mut(visit));
            }
            Self::Always | Self::Never | Self::Role(_) | Self::Generic(_) => {}
        }
    }
}

/// Parses one check token such as `role:admin`.
pub(crate) fn parse_check(token: &Token<'_>) -> Result<Expr, ParseError> {
    let invalid = |reason: String| ParseError::InvalidCheck {
        token: token.text.to_owned(),
        column: token.column,
        reason,
    };

    match token.text {
        "@" => return Ok(Expr::Always),
        "!" => return Ok(Expr::Never),
        _ => {}
    }
    let Some((kind, right)) = token.text.split_once(':') else {
        return Err(invalid("expected KIND:VALUE, '@' or '!'".into()));
    };

    match kind {
        "rule" if right.is_empty() => Err(invalid("'rule:' needs a rule name".into())),
        "rule" => Ok(Expr::Rule(RuleRef {
            name: right.to_owned(),
            slot: None,
        })),
        "role" if right.is_empty() => Err(invalid("'role:' needs a role name".into())),
        "role" => Ok(Expr::Role(Template::parse(right).map_err(invalid)?)),
        "http" | "https" => Err(invalid("remote HTTP checks are not supported".into())),
        "" => Err(invalid("the attribute before ':' is empty".into())),
        _ => parse_generic(kind, right)
            .map(Expr::Generic)
            .map_err(invalid),
    }
}

fn parse_generic(left: &str, right: &str) -> Result<Generic, String> {
    let Some(literal) = python_literal(left) else {
        return Ok(Generic::CredentialEquals {
            attribute: parse_attribute(left)?,
            expected: Template::parse(right)?,
        });
    };

    // With a literal on the left, a bare name on the right is a credential
    // attribute, as oslo.policy's documentation describes `'myproject':<variable>`.
    // NOTE: oslo.policy's code compares such a name as literal text instead.
    let right_is_attribute =
        python_literal(right).is_none() && strip_quotes(right).is_none() && !right.contains('%');
    if right_is_attribute {
        return Ok(Generic::LiteralEqualsCredential {
            literal,
            attribute: parse_attribute(right)?,
        });
    }
    Ok(Generic::LiteralEqualsTarget {
        literal,
        value: Template::parse(right)?,
    })
}

/// Returns the text of a Python literal (quoted string, `True`, `False`,
/// `None` or integer) as Python's `str()` renders it, the values oslo.policy
/// recognises with `ast.literal_eval`.
fn python_literal(text: &str) -> Option<String> {
    if let Some(inner) = strip_quotes(text) {
        return Some(inner.to_owned());
    }
    if matches!(text, "True" | "False" | "None") {
        return Some(text.to_owned());
    }
    // Only canonical integers: Python 3 rejects leading zeros such as `007`.
    let number = text.parse::<i64>().ok()?.to_string();
    (number == text).then_some(number)
}

fn parse_attribute(text: &str) -> Result<Vec<String>, String> {
    if text.is_empty() || text.split('.').any(str::is_empty) {
        return Err(format!("'{text}' is not a valid attribute name"));
    }
    Ok(text.split('.').map(str::to_owned).collect())
}

#[cfg(test)]
mod tests {
    use super::super::lexer::TokenKind;
    use super::*;

    fn check(text: &str) -> Result<Expr, ParseError> {
        parse_check(&Token {
            kind: TokenKind::Check,
            text,
            column: 7,
        })
    }

    fn attribute(dotted: &str) -> Vec<String> {
        dotted.split('.').map(str::to_owned).collect()
    }

    #[test]
    fn special_checks_parse() {
        assert_eq!(check("@"), Ok(Expr::Always));
        assert_eq!(check("!"), Ok(Expr::Never));
    }

    #[test]
    fn rule_and_role_checks_parse() {
        let rule = RuleRef {
            name: "admin_required".into(),
            slot: None,
        };
        assert_eq!(check("rule:admin_required"), Ok(Expr::Rule(rule)));
        assert_eq!(
            check("role:Admin"),
            Ok(Expr::Role(Template::Literal("Admin".into())))
        );
    }

    #[test]
    fn credential_on_left_is_compared_with_template() {
        let parsed = check("domain_id:'d 1'").unwrap();
        let expected = Generic::CredentialEquals {
            attribute: attribute("domain_id"),
            expected: Template::Literal("d 1".into()),
        };
        assert_eq!(parsed, Expr::Generic(expected));
    }

    #[test]
    fn literal_on_left_is_compared_with_target() {
        let Expr::Generic(parsed) = check("True:%(user.enabled)s").unwrap() else {
            panic!("expected a generic check");
        };
        assert!(matches!(
            parsed,
            Generic::LiteralEqualsTarget { ref literal, value: Template::Target(_) } if literal == "True"
        ));
    }

    #[test]
    fn literal_on_left_with_bare_name_reads_credential() {
        let parsed = check("'p1':project_id").unwrap();
        let expected = Generic::LiteralEqualsCredential {
            literal: "p1".into(),
            attribute: attribute("project_id"),
        };
        assert_eq!(parsed, Expr::Generic(expected));
    }

    #[test]
    fn integer_on_left_is_literal() {
        let parsed = check("-7:'-7'").unwrap();
        let expected = Generic::LiteralEqualsTarget {
            literal: "-7".into(),
            value: Template::Literal("-7".into()),
        };
        assert_eq!(parsed, Expr::Generic(expected));

        let Expr::Generic(padded) = check("007:x").unwrap() else {
            panic!("expected a generic check");
        };
        assert!(matches!(padded, Generic::CredentialEquals { .. }));
    }

    #[test]
    fn malformed_checks_name_token_and_column() {
        for bad in [
            "admin",
            "rule:",
            "role:",
            ":x",
            "a..b:x",
            "http://example.com/check",
            "project_id:%(x",
        ] {
            match check(bad) {
                Err(ParseError::InvalidCheck { token, column, .. }) => {
                    assert_eq!(token, bad);
                    assert_eq!(column, 7);
                }
                other => panic!("{bad}: expected InvalidCheck, got {other:?}"),
            }
        }
    }
}
