//! Validation of keypair create bodies, after Nova's request schemas for
//! each microversion.

use oxstack_core::microversion::Microversion;
use oxstack_core::ApiError;
use serde_json::Value;

/// A checked `POST /os-keypairs` body.
#[derive(Debug)]
pub struct KeypairRequest {
    pub name: String,
    /// `ssh` or `x509`.
    pub key_type: String,
    /// `None` requests a generated key (before 2.92 only).
    pub public_key: Option<String>,
    /// The owner to create the keypair for (2.10+, admins by default).
    pub user_id: Option<String>,
}

fn invalid(field: &str, reason: &str) -> ApiError {
    ApiError::bad_request(format!(
        "Invalid input for field/attribute {field}. {reason}"
    ))
}

/// Checks a keypair name: 1 to 255 of letters, digits, spaces, `_` and
/// `-`, and from 2.92 also `@` and `.`.
fn check_name(name: &str, version: Microversion) -> Result<(), ApiError> {
    let wide = version.at_least(2, 92);
    let allowed = |c: char| {
        c.is_ascii_alphanumeric()
            || matches!(c, ' ' | '_' | '-')
            || (wide && matches!(c, '@' | '.'))
    };
    let length = name.chars().count();
    if length == 0 || length > 255 || !name.chars().all(allowed) {
        let characters = if wide {
            "letters, digits, spaces, '_', '-', '@' and '.'"
        } else {
            "letters, digits, spaces, '_' and '-'"
        };
        return Err(invalid(
            "name",
            &format!("Keypair name '{name}' must have 1 to 255 characters from {characters}."),
        ));
    }
    Ok(())
}

/// Parses `POST /os-keypairs` as Nova's schema for `version` does.
pub fn parse(body: &Value, version: Microversion) -> Result<KeypairRequest, ApiError> {
    let object = body
        .get("keypair")
        .and_then(Value::as_object)
        .ok_or_else(|| invalid("keypair", "'keypair' is a required object."))?;
    let mut known = vec!["name", "public_key"];
    if version.at_least(2, 2) {
        known.push("type");
    }
    if version.at_least(2, 10) {
        known.push("user_id");
    }
    if let Some(unknown) = object.keys().find(|key| !known.contains(&key.as_str())) {
        return Err(invalid(
            "keypair",
            &format!("Additional properties are not allowed ('{unknown}' was unexpected)."),
        ));
    }

    let name = object
        .get("name")
        .ok_or_else(|| invalid("name", "'name' is a required property."))?
        .as_str()
        .ok_or_else(|| invalid("name", "It must be a string."))?;
    check_name(name, version)?;
    let key_type = match object.get("type").map(|t| t.as_str()) {
        None => "ssh",
        Some(Some(key_type @ ("ssh" | "x509"))) => key_type,
        Some(_) => return Err(invalid("type", "It must be 'ssh' or 'x509'.")),
    };

    let public_key = match object.get("public_key") {
        None => None,
        Some(Value::String(key)) => Some(key.clone()),
        Some(_) => return Err(invalid("public_key", "It must be a string.")),
    };
    // From 2.92 Nova no longer generates keys.
    if public_key.is_none() && version.at_least(2, 92) {
        return Err(invalid(
            "public_key",
            "'public_key' is a required property.",
        ));
    }
    let user_id = match object.get("user_id") {
        None => None,
        Some(Value::String(user)) if !user.is_empty() && user.len() <= 255 => Some(user.clone()),
        Some(_) => return Err(invalid("user_id", "It must be a non-empty string.")),
    };
    Ok(KeypairRequest {
        name: name.to_owned(),
        key_type: key_type.to_owned(),
        public_key,
        user_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn name_characters_widen_at_2_92() {
        let body = json!({"keypair": {"name": "me@host.example", "public_key": "x"}});
        assert!(parse(&body, Microversion::new(2, 91)).is_err());
        assert!(parse(&body, Microversion::new(2, 92)).is_ok());
    }

    #[test]
    fn type_needs_2_2() {
        let body = json!({"keypair": {"name": "k", "type": "ssh"}});
        assert!(parse(&body, Microversion::new(2, 1)).is_err());
        assert!(parse(&body, Microversion::new(2, 2)).is_ok());
    }

    #[test]
    fn public_key_required_from_2_92() {
        let body = json!({"keypair": {"name": "k"}});
        assert!(parse(&body, Microversion::new(2, 91))
            .unwrap()
            .public_key
            .is_none());
        assert!(parse(&body, Microversion::new(2, 92)).is_err());
    }

    #[test]
    fn long_name_rejected() {
        let body = json!({"keypair": {"name": "a".repeat(256)}});
        assert!(parse(&body, Microversion::new(2, 10)).is_err());
    }
}
