//! The set of named rules a service enforces: its registered defaults,
//! overridden by the operator's policy file, parsed and linked once at load
//! time.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde_json::Value;

use super::check::Expr;
use super::credentials::Credentials;
use super::error::{PolicyError, PolicyLoadError, RuleOrigin};
use super::eval::Evaluation;
use super::file::parse_policy_file;
use super::graph::check_rule_graph;
use super::parser::parse;

/// The rule an action without its own rule falls back to, as oslo.policy's
/// `policy_default_rule` option defaults to.
pub const DEFAULT_RULE: &str = "default";

/// Parsed, linked rules, immutable after loading so that one instance can
/// serve all requests concurrently.
#[derive(Debug, Clone)]
pub struct Enforcer {
    /// Rule names, indexed by slot.
    names: Vec<String>,
    /// Parsed rules, indexed by slot. `rule:` references contain slots.
    rules: Vec<Expr>,
    slots: HashMap<String, usize>,
}

impl Enforcer {
    /// Builds an enforcer from a service's defaults, given as
    /// `(rule name, check string)` pairs.
    pub fn from_defaults(defaults: &[(&str, &str)]) -> Result<Self, PolicyLoadError> {
        Self::with_overrides(defaults, &BTreeMap::new())
    }

    /// Builds an enforcer from defaults and operator overrides. An override
    /// replaces the default of the same name. An override with a new name
    /// adds a rule, which other rules may reference.
    pub fn with_overrides(
        defaults: &[(&str, &str)],
        overrides: &BTreeMap<String, String>,
    ) -> Result<Self, PolicyLoadError> {
        let mut enforcer = Self {
            names: Vec::new(),
            rules: Vec::new(),
            slots: HashMap::new(),
        };

        for (name, check) in defaults {
            if enforcer.slots.contains_key(*name) {
                return Err(PolicyLoadError::DuplicateDefault {
                    rule: name.to_string(),
                });
            }
            enforcer.set_rule(name, check, RuleOrigin::ServiceDefault)?;
        }
        for (name, check) in overrides {
            enforcer.set_rule(name, check, RuleOrigin::PolicyFile)?;
        }

        enforcer.link_rule_refs();
        check_rule_graph(&enforcer.names, &enforcer.rules)?;
        Ok(enforcer)
    }

    /// Builds an enforcer from defaults and the text of a policy file in
    /// JSON or YAML.
    pub fn with_policy_text(
        defaults: &[(&str, &str)],
        policy_text: &str,
    ) -> Result<Self, PolicyLoadError> {
        let overrides = parse_policy_file(policy_text)?;
        Self::with_overrides(defaults, &overrides)
    }

    /// Builds an enforcer from defaults and the policy file at `path`.
    pub fn with_policy_file(
        defaults: &[(&str, &str)],
        path: &Path,
    ) -> Result<Self, PolicyLoadError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| PolicyLoadError::ReadPolicyFile {
                path: path.to_owned(),
                source,
            })?;
        Self::with_policy_text(defaults, &text)
    }

    /// Allows or denies `action` for the caller on `target`.
    ///
    /// An action without a rule falls back to the `default` rule, and is
    /// denied when there is none. The error contains the action, and its
    /// message is Nova's 403 text.
    pub fn enforce(
        &self,
        action: &str,
        target: &Value,
        credentials: &Credentials,
    ) -> Result<(), PolicyError> {
        if self.is_allowed(action, target, credentials) {
            Ok(())
        } else {
            Err(PolicyError::Forbidden {
                action: action.to_owned(),
            })
        }
    }

    /// Returns whether `enforce` would allow the request, for callers that
    /// filter results rather than reject the request.
    pub fn is_allowed(&self, action: &str, target: &Value, credentials: &Credentials) -> bool {
        let slot = self
            .slots
            .get(action)
            .or_else(|| self.slots.get(DEFAULT_RULE));
        let Some(&slot) = slot else {
            return false;
        };

        let evaluation = Evaluation {
            rules: &self.rules,
            target,
            credentials,
        };
        evaluation.evaluate(&self.rules[slot])
    }

    /// Returns whether a rule named `name` is defined.
    pub fn has_rule(&self, name: &str) -> bool {
        self.slots.contains_key(name)
    }

    /// Returns `(rule, missing name)` for every `rule:` reference to a rule
    /// that is not defined. Such references fail closed, as in oslo.policy.
    /// Callers should log them at startup, because they usually mean a typo.
    pub fn undefined_references(&self) -> Vec<(&str, &str)> {
        let mut undefined = Vec::new();
        for (name, rule) in self.names.iter().zip(&self.rules) {
            rule.for_each_rule_ref(&mut |reference| {
                if reference.slot.is_none() {
                    undefined.push((name.as_str(), reference.name.as_str()));
                }
            });
        }
        undefined
    }

    fn set_rule(
        &mut self,
        name: &str,
        check: &str,
        origin: RuleOrigin,
    ) -> Result<(), PolicyLoadError> {
        let rule = parse(check).map_err(|error| PolicyLoadError::InvalidRule {
            rule: name.to_owned(),
            origin,
            error,
        })?;

        match self.slots.get(name) {
            Some(&slot) => self.rules[slot] = rule,
            None => {
                self.slots.insert(name.to_owned(), self.rules.len());
                self.names.push(name.to_owned());
                self.rules.push(rule);
            }
        }
        Ok(())
    }

    /// Points every `rule:` reference at the slot of the rule it names.
    fn link_rule_refs(&mut self) {
        let slots = &self.slots;
        for rule in &mut self.rules {
            rule.for_each_rule_ref_mut(&mut |reference| {
                reference.slot = slots.get(&reference.name).copied();
            });
        }
    }
}
