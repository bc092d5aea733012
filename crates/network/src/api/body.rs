//! Request bodies in Neutron's shape (`{"network": {…}}`) and the checks on
//! single attributes, with Neutron's messages: its API layer reports a bad
//! attribute as `HTTPBadRequest` "Invalid input for ATTR. Reason: …".

use axum::extract::{FromRequest, Request};
use oxstack_core::ApiError;
use serde_json::{Map, Value};

use crate::model::ProjectId;
use crate::policy::Caller;

/// A JSON request body, read after checking its media type and size.
pub struct NeutronBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for NeutronBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        oxstack_core::validate::read_json(request, state)
            .await
            .map(NeutronBody)
            .map_err(|error| error.with_type("HTTPBadRequest"))
    }
}

pub fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(message).with_type("HTTPBadRequest")
}

/// Returns the 400 for an attribute whose value is invalid.
pub fn invalid_attribute(attribute: &str, reason: impl std::fmt::Display) -> ApiError {
    bad_request(format!("Invalid input for {attribute}. Reason: {reason}."))
}

/// Returns the object under `resource` in `body`, after checking that it
/// names only `allowed` attributes.
pub fn resource_object(
    body: Value,
    resource: &str,
    allowed: &[&str],
) -> Result<Map<String, Value>, ApiError> {
    let Value::Object(mut outer) = body else {
        return Err(bad_request(format!(
            "Unable to find '{resource}' in request body"
        )));
    };
    let Some(Value::Object(object)) = outer.remove(resource) else {
        return Err(bad_request(format!(
            "Unable to find '{resource}' in request body"
        )));
    };
    let unknown: Vec<&str> = object
        .keys()
        .map(String::as_str)
        .filter(|key| !allowed.contains(key))
        .collect();
    if !unknown.is_empty() {
        return Err(bad_request(format!(
            "Unrecognized attribute(s) '{}'",
            unknown.join(", ")
        )));
    }
    Ok(object)
}

/// Rejects attributes that cannot change after creation.
pub fn reject_read_only(object: &Map<String, Value>, read_only: &[&str]) -> Result<(), ApiError> {
    match read_only.iter().find(|key| object.contains_key(**key)) {
        Some(key) => Err(bad_request(format!(
            "Cannot update read-only attribute {key}"
        ))),
        None => Ok(()),
    }
}

pub fn string(
    object: &Map<String, Value>,
    key: &str,
    max_len: usize,
) -> Result<Option<String>, ApiError> {
    match object.get(key) {
        None => Ok(None),
        Some(Value::String(text)) if text.chars().count() <= max_len => Ok(Some(text.clone())),
        Some(Value::String(text)) => Err(invalid_attribute(
            key,
            format!("'{text}' exceeds maximum length of {max_len}"),
        )),
        Some(other) => Err(invalid_attribute(
            key,
            format!("'{other}' is not a valid string"),
        )),
    }
}

/// Reads a string attribute that must be a UUID (a reference to another
/// resource): a malformed one is a 400 naming the attribute, as in Neutron,
/// rather than a 404 for a resource that could never exist.
pub fn uuid(object: &Map<String, Value>, key: &str) -> Result<Option<String>, ApiError> {
    let Some(text) = string(object, key, 255)? else {
        return Ok(None);
    };
    if uuid::Uuid::parse_str(&text).is_err() {
        return Err(invalid_attribute(
            key,
            format!("'{text}' is not a valid UUID"),
        ));
    }
    Ok(Some(text))
}

/// Reads a string that may also be JSON null (`gateway_ip`, modes).
pub fn nullable_string(
    object: &Map<String, Value>,
    key: &str,
) -> Result<Option<Option<String>>, ApiError> {
    match object.get(key) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(text)) => Ok(Some(Some(text.clone()))),
        Some(other) => Err(invalid_attribute(
            key,
            format!("'{other}' is not a valid string"),
        )),
    }
}

/// Reads a boolean. Neutron also takes the strings `true`/`false`, any case.
pub fn boolean(object: &Map<String, Value>, key: &str) -> Result<Option<bool>, ApiError> {
    match object.get(key) {
        None => Ok(None),
        Some(Value::Bool(flag)) => Ok(Some(*flag)),
        Some(Value::String(text)) if text.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(Value::String(text)) if text.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(other) => Err(invalid_attribute(
            key,
            format!("'{other}' cannot be converted to boolean"),
        )),
    }
}

/// Reads an integer, also from a decimal string as Neutron converts it.
pub fn integer(object: &Map<String, Value>, key: &str) -> Result<Option<i64>, ApiError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(number)) if number.is_i64() => Ok(number.as_i64()),
        Some(Value::String(text)) if text.parse::<i64>().is_ok() => Ok(text.parse().ok()),
        Some(other) => Err(invalid_attribute(
            key,
            format!("'{other}' is not an integer"),
        )),
    }
}

/// Reads a list of strings.
pub fn string_list(
    object: &Map<String, Value>,
    key: &str,
) -> Result<Option<Vec<String>>, ApiError> {
    match object.get(key) {
        None => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(text) => Ok(text.clone()),
                other => Err(invalid_attribute(
                    key,
                    format!("'{other}' is not a valid string"),
                )),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(other) => Err(invalid_attribute(key, format!("'{other}' is not a list"))),
    }
}

/// Returns the project a new resource belongs to: the caller's, or for an
/// admin the `project_id` (or `tenant_id`) of the body.
pub fn owner_project(caller: &Caller, object: &Map<String, Value>) -> Result<ProjectId, ApiError> {
    let project = string(object, "project_id", 255)?;
    let tenant = string(object, "tenant_id", 255)?;
    if let (Some(project), Some(tenant)) = (&project, &tenant) {
        if project != tenant {
            return Err(bad_request("Both tenant_id and project_id passed as filters or attributes with different values."));
        }
    }
    let requested = project.or(tenant);
    match requested {
        Some(requested) if requested != caller.project_id && !caller.is_admin => Err(bad_request(
            "Specifying 'project_id' or 'tenant_id' other than the authenticated project in request requires admin privileges",
        )),
        Some(requested) => Ok(ProjectId::new(requested)),
        None if caller.project_id.is_empty() => {
            Err(bad_request("Running without a project-scoped token requires 'project_id' in the request"))
        }
        None => Ok(ProjectId::new(caller.project_id.clone())),
    }
}
