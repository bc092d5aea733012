//! Request bodies: parsed as JSON, checked against the endpoint's JSON
//! schema, then deserialised. Every rejection is a 400 that names the field
//! and states what is wrong with it.

use std::sync::OnceLock;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{ApiError, ErrorKind};

/// JSON bodies larger than this are refused with 413; no API body of the
/// identity, compute or network services comes near it.
pub const MAX_JSON_BODY: usize = 1 << 20;

/// A compiled JSON schema.
pub struct Schema(jsonschema::Validator);

impl Schema {
    /// Compiles `schema`. Schemas are written in the code, so a bad one is a
    /// bug and panics at first use, in tests.
    pub fn compile(schema: &Value) -> Self {
        Schema(jsonschema::validator_for(schema).expect("request schema must compile"))
    }

    /// Checks `instance`, returning a message naming the first bad field.
    pub fn check(&self, instance: &Value) -> Result<(), ApiError> {
        let Some(error) = self.0.iter_errors(instance).next() else {
            return Ok(());
        };
        let path = error.instance_path.to_string();
        let field = path.trim_start_matches('/').replace('/', ".");
        let detail = shorten(&error.to_string(), 200);
        let message = if field.is_empty() {
            format!("Invalid input for the request body: {detail}")
        } else {
            format!("Invalid input for field '{field}': {detail}")
        };
        Err(ApiError::bad_request(message))
    }
}

fn shorten(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max_chars).collect();
    cut.push('…');
    cut
}

/// A request body type with a schema. Implement it with `body_schema!`.
pub trait BodySchema {
    fn schema() -> &'static Schema;
}

/// Implements `BodySchema` for a type from a `serde_json::json!` schema,
/// compiled once on first use.
#[macro_export]
macro_rules! body_schema {
    ($ty:ty, $schema:expr) => {
        impl $crate::validate::BodySchema for $ty {
            fn schema() -> &'static $crate::validate::Schema {
                static SCHEMA: std::sync::OnceLock<$crate::validate::Schema> =
                    std::sync::OnceLock::new();
                SCHEMA.get_or_init(|| $crate::validate::Schema::compile(&$schema))
            }
        }
    };
}

/// Extractor for a validated JSON body.
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned + BodySchema,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let value = read_json(request, state).await?;
        T::schema().check(&value)?;
        decode(value).map(JsonBody)
    }
}

/// Reads a body as JSON after checking its media type and size.
pub async fn read_json<S: Send + Sync>(request: Request, state: &S) -> Result<Value, ApiError> {
    if let Some(content_type) = request.headers().get(header::CONTENT_TYPE) {
        let content_type = content_type.to_str().unwrap_or_default();
        if !content_type.is_empty() && !content_type.contains("json") {
            return Err(ApiError::new(
                ErrorKind::UnsupportedMediaType,
                format!("Content type '{content_type}' is not supported; send application/json."),
            ));
        }
    }
    let bytes = Bytes::from_request(request, state)
        .await
        .map_err(|rejection| {
            ApiError::bad_request(format!("Could not read the request body: {rejection}"))
        })?;
    if bytes.len() > MAX_JSON_BODY {
        return Err(ApiError::new(
            ErrorKind::PayloadTooLarge,
            format!(
                "Request body is {} bytes; the limit is {MAX_JSON_BODY}.",
                bytes.len()
            ),
        ));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "The request body is empty; send a JSON object.",
        ));
    }
    serde_json::from_slice(&bytes).map_err(|error| {
        ApiError::bad_request(format!("Malformed JSON in the request body: {error}"))
    })
}

/// Deserialises a validated value. The schema should have caught every
/// mismatch; this maps what it did not to a 400 naming the field.
pub fn decode<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    serde_json::from_value(value)
        .map_err(|error| ApiError::bad_request(format!("Invalid request body: {error}")))
}

/// Returns the schema shared by many bodies: a name of 1 to 255 characters.
pub fn name_schema() -> &'static Value {
    static NAME: OnceLock<Value> = OnceLock::new();
    NAME.get_or_init(|| serde_json::json!({"type": "string", "minLength": 1, "maxLength": 255}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Deserialize)]
    struct Wrapper {
        #[allow(dead_code)]
        user: Value,
    }

    body_schema!(
        Wrapper,
        json!({
            "type": "object",
            "properties": {
                "user": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string", "minLength": 1, "maxLength": 8},
                        "enabled": {"type": "boolean"}
                    },
                    "required": ["name"]
                }
            },
            "required": ["user"]
        })
    );

    #[test]
    fn too_long_value_names_field() {
        let error = Wrapper::schema()
            .check(&json!({"user": {"name": "abcdefghijk"}}))
            .unwrap_err();
        assert_eq!(error.kind, ErrorKind::BadRequest);
        assert!(error.message.contains("'user.name'"), "{}", error.message);
    }

    #[test]
    fn wrong_type_names_field() {
        let body = json!({"user": {"name": "a", "enabled": "yes"}});
        let error = Wrapper::schema().check(&body).unwrap_err();
        assert!(
            error.message.contains("'user.enabled'"),
            "{}",
            error.message
        );
    }

    #[test]
    fn missing_field_is_reported() {
        let error = Wrapper::schema().check(&json!({"user": {}})).unwrap_err();
        assert!(error.message.contains("name"), "{}", error.message);
    }

    #[test]
    fn valid_body_passes() {
        assert!(Wrapper::schema()
            .check(&json!({"user": {"name": "dan"}}))
            .is_ok());
    }
}
