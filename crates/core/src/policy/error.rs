//! Errors of the policy engine: check strings that do not parse, rule sets
//! and policy files that cannot be loaded, and requests the policy denies.

use std::fmt;
use std::path::PathBuf;

/// A check string that does not follow the oslo.policy rule language.
///
/// Columns count characters from 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// A token appears where the grammar does not allow it, such as `and` at
    /// the start or two checks without an operator between them.
    #[error("unexpected token '{token}' at column {column}")]
    UnexpectedToken { token: String, column: usize },

    /// The check string ends after an operator or an opening parenthesis.
    #[error("check string ends at column {column} where a check was expected")]
    UnexpectedEnd { column: usize },

    /// An opening parenthesis has no matching closing one.
    #[error("'(' at column {column} is never closed")]
    UnclosedParenthesis { column: usize },

    /// A single check such as `role:admin` is malformed.
    #[error("invalid check '{token}' at column {column}: {reason}")]
    InvalidCheck {
        token: String,
        column: usize,
        reason: String,
    },

    /// Parentheses and `not` nest deeper than the parser accepts.
    #[error("check string nests deeper than {max} levels at column {column}")]
    TooDeep { column: usize, max: usize },
}

impl ParseError {
    /// Returns the 1-based character column the error points at.
    pub fn column(&self) -> usize {
        match self {
            Self::UnexpectedToken { column, .. }
            | Self::UnexpectedEnd { column }
            | Self::UnclosedParenthesis { column }
            | Self::InvalidCheck { column, .. }
            | Self::TooDeep { column, .. } => *column,
        }
    }
}

/// Source of a rule's check string, named in load errors so that the
/// operator knows which one to fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleOrigin {
    /// Registered by the service in code.
    ServiceDefault,
    /// Read from the operator's policy file.
    PolicyFile,
}

impl fmt::Display for RuleOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ServiceDefault => f.write_str("the service defaults"),
            Self::PolicyFile => f.write_str("the policy file"),
        }
    }
}

/// A rule set or policy file that cannot be loaded. Every variant is an
/// operator or programming error, found when the enforcer is built.
#[derive(Debug, thiserror::Error)]
pub enum PolicyLoadError {
    /// The parse error is part of the message rather than a `#[source]`
    /// because it is the whole explanation, not a lower-level cause.
    #[error("policy rule \"{rule}\" from {origin} has an invalid check string: {error}")]
    InvalidRule {
        rule: String,
        origin: RuleOrigin,
        error: ParseError,
    },

    #[error("policy rule \"{rule}\" is registered twice in the service defaults")]
    DuplicateDefault { rule: String },

    /// The names run from the first rule of the cycle back to itself.
    #[error("policy rules reference each other in a cycle: {}", .cycle.join(" -> "))]
    RuleCycle { cycle: Vec<String> },

    #[error(
        "policy rule \"{rule}\" starts a chain of rule: references deeper than {max}; \
         flatten some of the referenced rules"
    )]
    RuleChainTooDeep { rule: String, max: usize },

    #[error("failed to read policy file {}", .path.display())]
    ReadPolicyFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "policy file is not valid JSON (line {}, column {})",
        .source.line(),
        .source.column()
    )]
    PolicyFileJson {
        #[source]
        source: serde_json::Error,
    },

    #[error("policy file is not valid YAML{}", yaml_location(.source))]
    PolicyFileYaml {
        #[source]
        source: serde_yaml::Error,
    },

    #[error("policy file must contain a map from rule name to check string")]
    PolicyFileNotMap,

    #[error(
        "policy rule \"{rule}\" in the policy file must be a check string; \
         quote values such as \"@\" and \"!\" in YAML (the list-of-lists form is not supported)"
    )]
    RuleNotString { rule: String },
}

fn yaml_location(error: &serde_yaml::Error) -> String {
    match error.location() {
        Some(location) => format!(" (line {}, column {})", location.line(), location.column()),
        None => String::new(),
    }
}

/// A request the policy does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The message is Nova's `PolicyNotAuthorized` text. Keystone and Neutron
    /// word their 403 messages differently and can build them from `action`.
    #[error("Policy doesn't allow {action} to be performed.")]
    Forbidden { action: String },
}
