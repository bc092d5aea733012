//! Evaluation of parsed rules against one request's target and credentials.
//!
//! Evaluation allocates only for templates that mix text with substitutions
//! and for numeric values. `and` and `or` stop at the first operand that
//! decides the result, as in oslo.policy.

use serde_json::Value;

use super::check::{Expr, Generic};
use super::credentials::Credentials;

/// The inputs of one policy decision.
pub(crate) struct Evaluation<'a> {
    /// All rules of the enforcer, indexed by the slots in `rule:` references.
    pub rules: &'a [Expr],
    pub target: &'a Value,
    pub credentials: &'a Credentials,
}

impl Evaluation<'_> {
    /// Returns whether `expr` allows the request. Recursion through `rule:`
    /// references terminates because the enforcer rejects cycles at load time.
    pub(crate) fn evaluate(&self, expr: &Expr) -> bool {
        match expr {
            Expr::Always => true,
            Expr::Never => false,
            Expr::Rule(reference) => reference
                .slot
                .is_some_and(|slot| self.evaluate(&self.rules[slot])),
            Expr::Role(template) => template
                .render(self.target)
                .is_some_and(|role| self.credentials.has_role(&role)),
            Expr::Generic(generic) => self.evaluate_generic(generic),
            Expr::Not(inner) => !self.evaluate(inner),
            Expr::And(items) => items.iter().all(|item| self.evaluate(item)),
            Expr::Or(items) => items.iter().any(|item| self.evaluate(item)),
        }
    }

    fn evaluate_generic(&self, generic: &Generic) -> bool {
        match generic {
            Generic::CredentialEquals {
                attribute,
                expected,
            } => expected
                .render(self.target)
                .is_some_and(|expected| self.credentials.attribute_matches(attribute, &expected)),
            Generic::LiteralEqualsTarget { literal, value } => value
                .render(self.target)
                .is_some_and(|value| value == literal.as_str()),
            Generic::LiteralEqualsCredential { literal, attribute } => {
                self.credentials.attribute_matches(attribute, literal)
            }
        }
    }
}
