//! Behaviour tests of the public policy API: rules in, decisions out.

mod enforcer;
mod evaluation;
mod keystone;
mod overrides;

use serde_json::Value;

use super::{Credentials, Enforcer};

/// Credentials holding `roles` and nothing else.
fn with_roles(roles: &[&str]) -> Credentials {
    Credentials {
        roles: roles.iter().map(|role| role.to_string()).collect(),
        ..Credentials::default()
    }
}

/// Builds an enforcer with one rule named `check` and evaluates it.
fn allows(check_string: &str, target: &Value, credentials: &Credentials) -> bool {
    let enforcer = Enforcer::from_defaults(&[("check", check_string)])
        .unwrap_or_else(|error| panic!("{check_string:?} should load: {error}"));
    enforcer.is_allowed("check", target, credentials)
}
