//! Authorisation with oslo.policy's rule language, the language OpenStack
//! operators already write their `policy.yaml` files in.
//!
//! A service registers default rules (name → check string), the operator may
//! override or add rules in a JSON or YAML policy file, and the `Enforcer`
//! parses and links them once at startup. Each request then calls
//! `Enforcer::enforce(action, target, credentials)`.
//!
//! Check strings support:
//! - `@` and the empty string (always pass), `!` (never passes);
//! - `rule:NAME`, the result of another rule (an undefined name fails);
//! - `role:NAME`, true when the caller has the role, ignoring case;
//! - `ATTRIBUTE:VALUE`, true when a credential attribute such as
//!   `project_id` equals VALUE. VALUE is a literal (`'quoted'`, `True`, a
//!   bare word) or contains `%(dotted.path)s` substitutions from the target;
//! - `LITERAL:%(dotted.path)s` and `LITERAL:ATTRIBUTE`, comparing a quoted
//!   string, `True`, `False`, `None` or an integer with a target value or a
//!   credential attribute;
//! - `not`, `and`, `or` (tightest first) and parentheses.
//!
//! As in oslo.policy, the check string is split into words at whitespace
//! first, so a quoted value cannot contain a space.
//!
//! Values compare as text, rendered as Python's `str()` renders them
//! (`true` is `True`). A missing target key, null and arrays or objects in
//! the target never match. Load-time errors reject malformed check strings,
//! rule cycles and chains deeper than 32 `rule:` references. Remote `http:`
//! checks and the legacy list-of-lists policy form are not supported.

mod check;
mod credentials;
mod enforcer;
mod error;
mod eval;
mod file;
mod graph;
mod lexer;
mod parser;
mod template;

#[cfg(test)]
mod tests;

pub use credentials::Credentials;
pub use enforcer::{Enforcer, DEFAULT_RULE};
pub use error::{ParseError, PolicyError, PolicyLoadError, RuleOrigin};
pub use file::parse_policy_file;

/// Checks that `check_string` parses, for services that validate their
/// default rules in unit tests or accept check strings from elsewhere.
pub fn validate_check_string(check_string: &str) -> Result<(), ParseError> {
    parser::parse(check_string).map(|_| ())
}
