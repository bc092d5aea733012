//! Validation of flavor create and update bodies, after Nova's request
//! schemas: integers may arrive as JSON numbers or decimal strings, and
//! unknown keys are rejected.

use std::collections::BTreeMap;

use oxstack_core::microversion::Microversion;
use oxstack_core::ApiError;
use serde_json::{Map, Value};

use super::flavor_view::Flavor;

/// The largest value of an integer flavor field (the database's signed
/// 32-bit limit in Nova).
const MAX_INT: i64 = 2_147_483_647;
const MAX_DESCRIPTION: usize = 65_535;

fn invalid(field: &str, reason: &str) -> ApiError {
    ApiError::bad_request(format!(
        "Invalid input for field/attribute {field}. {reason}"
    ))
}

fn flavor_object(body: &Value) -> Result<&Map<String, Value>, ApiError> {
    body.get("flavor")
        .and_then(Value::as_object)
        .ok_or_else(|| invalid("flavor", "'flavor' is a required object."))
}

fn integer(object: &Map<String, Value>, field: &str, min: i64) -> Result<Option<i64>, ApiError> {
    let Some(value) = object.get(field) else {
        return Ok(None);
    };
    let number = match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    let number = number.ok_or_else(|| invalid(field, &format!("{value} is not an integer.")))?;
    if number < min || number > MAX_INT {
        return Err(invalid(
            field,
            &format!("Value must be between {min} and {MAX_INT}."),
        ));
    }
    Ok(Some(number))
}

fn required_integer(object: &Map<String, Value>, field: &str, min: i64) -> Result<i64, ApiError> {
    integer(object, field, min)?
        .ok_or_else(|| invalid(field, &format!("'{field}' is a required property.")))
}

fn boolean(value: &Value, field: &str) -> Result<bool, ApiError> {
    match value {
        Value::Bool(b) => Ok(*b),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" | "t" | "y" => Ok(true),
            "false" | "0" | "no" | "off" | "f" | "n" => Ok(false),
            _ => Err(invalid(field, &format!("{value} is not a boolean."))),
        },
        _ => Err(invalid(field, &format!("{value} is not a boolean."))),
    }
}

fn description(value: &Value) -> Result<Option<String>, ApiError> {
    match value {
        Value::Null => Ok(None),
        Value::String(text) if text.chars().count() <= MAX_DESCRIPTION => Ok(Some(text.clone())),
        Value::String(_) => Err(invalid(
            "description",
            "It is longer than 65535 characters.",
        )),
        _ => Err(invalid("description", "It must be a string or null.")),
    }
}

/// Checks a flavor name: 1 to 255 printable characters, without leading or
/// trailing whitespace.
fn name(value: Option<&Value>) -> Result<String, ApiError> {
    let text = value
        .ok_or_else(|| invalid("name", "'name' is a required property."))?
        .as_str()
        .ok_or_else(|| invalid("name", "It must be a string."))?;
    let length = text.chars().count();
    if length == 0 || length > 255 {
        return Err(invalid("name", "It must have 1 to 255 characters."));
    }
    if text.trim() != text || text.chars().any(char::is_control) {
        return Err(invalid(
            "name",
            "It must not start or end with whitespace or contain control characters.",
        ));
    }
    Ok(text.to_owned())
}

/// Checks a flavor id or generates one for `null`, absent and `auto`
/// (the value python-openstackclient sends by default). Numbers are
/// accepted and stored as their text, as Nova's schema allows them.
fn flavor_id(value: Option<&Value>) -> Result<String, ApiError> {
    let text = match value {
        None | Some(Value::Null) => return Ok(uuid::Uuid::new_v4().to_string()),
        Some(Value::String(text)) if text == "auto" => return Ok(uuid::Uuid::new_v4().to_string()),
        Some(Value::String(text)) => text.clone(),
        Some(Value::Number(number)) => number.to_string(),
        Some(_) => return Err(invalid("id", "It must be a string, a number or null.")),
    };
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | ' ' | '_' | '-');
    if text.is_empty()
        || text.len() > 255
        || text.starts_with(' ')
        || text.ends_with(' ')
        || !text.chars().all(allowed)
    {
        return Err(invalid(
            "id",
            "It must have 1 to 255 characters from letters, digits, '.', '_', '-' and inner spaces.",
        ));
    }
    Ok(text)
}

/// Parses `POST /flavors`; `description` is accepted from 2.55.
pub fn parse_create(body: &Value, version: Microversion) -> Result<Flavor, ApiError> {
    let object = flavor_object(body)?;
    let mut known = vec![
        "name",
        "id",
        "ram",
        "vcpus",
        "disk",
        "OS-FLV-EXT-DATA:ephemeral",
        "swap",
        "rxtx_factor",
        "os-flavor-access:is_public",
    ];
    if version.at_least(2, 55) {
        known.push("description");
    }
    if let Some(unknown) = object.keys().find(|key| !known.contains(&key.as_str())) {
        return Err(invalid(
            "flavor",
            &format!("Additional properties are not allowed ('{unknown}' was unexpected)."),
        ));
    }
    let rxtx_factor = match object.get("rxtx_factor") {
        None => 1.0,
        Some(value) => {
            let number = match value {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => s.trim().parse::<f64>().ok(),
                _ => None,
            };
            number
                .filter(|n| *n > 0.0 && *n <= 3.40282e38)
                .ok_or_else(|| invalid("rxtx_factor", "It must be a number above 0."))?
        }
    };
    Ok(Flavor {
        id: flavor_id(object.get("id"))?,
        name: name(object.get("name"))?,
        vcpus: required_integer(object, "vcpus", 1)?,
        ram: required_integer(object, "ram", 1)?,
        disk: required_integer(object, "disk", 0)?,
        ephemeral: integer(object, "OS-FLV-EXT-DATA:ephemeral", 0)?.unwrap_or(0),
        swap: integer(object, "swap", 0)?.unwrap_or(0),
        rxtx_factor,
        is_public: match object.get("os-flavor-access:is_public") {
            None => true,
            Some(value) => boolean(value, "os-flavor-access:is_public")?,
        },
        disabled: false,
        description: match object.get("description") {
            None => None,
            Some(value) => description(value)?,
        },
        created_at: 0,
        extra_specs: BTreeMap::new(),
    })
}

/// Parses `PUT /flavors/{id}` (2.55+), whose only and required field is
/// `description`.
pub fn parse_update(body: &Value) -> Result<Option<String>, ApiError> {
    let object = flavor_object(body)?;
    if let Some(unknown) = object.keys().find(|key| *key != "description") {
        return Err(invalid(
            "flavor",
            &format!("Additional properties are not allowed ('{unknown}' was unexpected)."),
        ));
    }
    let value = object
        .get("description")
        .ok_or_else(|| invalid("description", "'description' is a required property."))?;
    description(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const V255: Microversion = Microversion::new(2, 55);

    #[test]
    fn create_accepts_string_integers() {
        let body = json!({"flavor": {"name": "f", "ram": "512", "vcpus": 1, "disk": "0"}});
        let flavor = parse_create(&body, V255).unwrap();
        assert_eq!(flavor.ram, 512);
        assert!(flavor.is_public);
    }

    #[test]
    fn create_rejects_zero_vcpus() {
        let body = json!({"flavor": {"name": "f", "ram": 512, "vcpus": 0, "disk": 0}});
        assert!(parse_create(&body, V255).is_err());
    }

    #[test]
    fn description_needs_2_55() {
        let body =
            json!({"flavor": {"name": "f", "ram": 1, "vcpus": 1, "disk": 0, "description": "d"}});
        assert!(parse_create(&body, Microversion::new(2, 54)).is_err());
        assert_eq!(
            parse_create(&body, V255).unwrap().description.as_deref(),
            Some("d")
        );
    }

    #[test]
    fn auto_id_becomes_uuid() {
        let body = json!({"flavor": {"name": "f", "ram": 1, "vcpus": 1, "disk": 0, "id": "auto"}});
        let id = parse_create(&body, V255).unwrap().id;
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
    }

    #[test]
    fn numeric_id_becomes_text() {
        let body = json!({"flavor": {"name": "f", "ram": 1, "vcpus": 1, "disk": 0, "id": 12345}});
        assert_eq!(parse_create(&body, V255).unwrap().id, "12345");
    }

    #[test]
    fn bad_id_rejected() {
        let body = json!({"flavor": {"name": "f", "ram": 1, "vcpus": 1, "disk": 0, "id": "a/b"}});
        assert!(parse_create(&body, V255).is_err());
    }
}
