//! Parsing of image PATCH bodies in Glance's two media types:
//! `application/openstack-images-v2.1-json-patch` (RFC 6902 style,
//! `{"op": "add", "path": "/x", "value": …}`) and the older
//! `application/openstack-images-v2.0-json-patch`
//! (`{"add": "/x", "value": …}`), which Tempest's client still sends.

use oxstack_core::ApiError;
use serde_json::Value;

use crate::ops::images::{Change, PatchOp};

pub const MEDIA_TYPE_V2_1: &str = "application/openstack-images-v2.1-json-patch";
pub const MEDIA_TYPE_V2_0: &str = "application/openstack-images-v2.0-json-patch";

/// The value of `Accept-Patch` on a 415.
pub const ACCEPT_PATCH: &str =
    "application/openstack-images-v2.0-json-patch, application/openstack-images-v2.1-json-patch";

/// The PATCH dialect a media type selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    V2_0,
    V2_1,
}

impl Dialect {
    /// Reads the dialect from a `Content-Type` value, ignoring parameters.
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        let media_type = content_type.split(';').next().unwrap_or_default().trim();
        if media_type.eq_ignore_ascii_case(MEDIA_TYPE_V2_1) {
            Some(Dialect::V2_1)
        } else if media_type.eq_ignore_ascii_case(MEDIA_TYPE_V2_0) {
            Some(Dialect::V2_0)
        } else {
            None
        }
    }
}

/// Parses a PATCH body into changes.
pub fn parse(body: &Value, dialect: Dialect) -> Result<Vec<Change>, ApiError> {
    let operations = body.as_array().ok_or_else(|| {
        ApiError::bad_request("Request body must be a JSON array of operation objects.")
    })?;
    operations
        .iter()
        .map(|operation| {
            let object = operation
                .as_object()
                .ok_or_else(|| ApiError::bad_request("Operations must be JSON objects."))?;
            let (op, pointer) = match dialect {
                Dialect::V2_1 => operation_v2_1(object)?,
                Dialect::V2_0 => operation_v2_0(object)?,
            };
            let value = match op {
                PatchOp::Remove => None,
                _ => Some(object.get("value").cloned().ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "Operation \"{}\" requires a member named \"value\".",
                        name_of(op)
                    ))
                })?),
            };
            Ok(Change {
                op,
                path: decode_pointer(pointer)?,
                value,
                strict_add: dialect == Dialect::V2_0,
            })
        })
        .collect()
}

fn name_of(op: PatchOp) -> &'static str {
    match op {
        PatchOp::Add => "add",
        PatchOp::Replace => "replace",
        PatchOp::Remove => "remove",
    }
}

fn parse_op(name: &str) -> Option<PatchOp> {
    match name {
        "add" => Some(PatchOp::Add),
        "replace" => Some(PatchOp::Replace),
        "remove" => Some(PatchOp::Remove),
        _ => None,
    }
}

fn operation_v2_1(object: &serde_json::Map<String, Value>) -> Result<(PatchOp, &str), ApiError> {
    let name = object.get("op").and_then(Value::as_str).ok_or_else(|| {
        ApiError::bad_request("Unable to find `op` in JSON Schema change. It must be one of the following: add, remove, replace.")
    })?;
    let op = parse_op(name).ok_or_else(|| {
        ApiError::bad_request(format!(
            "Invalid operation: `{name}`. It must be one of the following: add, remove, replace."
        ))
    })?;
    let path = object
        .get("path")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("Unable to find 'path' in JSON Schema change"))?;
    Ok((op, path))
}

fn operation_v2_0(object: &serde_json::Map<String, Value>) -> Result<(PatchOp, &str), ApiError> {
    let mut found = None;
    for name in ["add", "remove", "replace"] {
        if let Some(path) = object.get(name) {
            if found.is_some() {
                return Err(ApiError::bad_request(
                    "Operation objects must contain only one member named \"add\", \"remove\", or \"replace\".",
                ));
            }
            let op = parse_op(name).unwrap_or(PatchOp::Add);
            let path = path
                .as_str()
                .ok_or_else(|| ApiError::bad_request("Pointer must be a string."))?;
            found = Some((op, path));
        }
    }
    found.ok_or_else(|| {
        ApiError::bad_request(
            "Operation objects must contain exactly one member named \"add\", \"remove\", or \"replace\".",
        )
    })
}

/// Decodes a JSON pointer as Glance accepts them: it starts with `/`, has
/// no empty segments, and `~` only in `~0` and `~1`.
fn decode_pointer(pointer: &str) -> Result<Vec<String>, ApiError> {
    let invalid = |why: &str| ApiError::bad_request(format!("Pointer `{pointer}` {why}"));
    let rest = pointer
        .strip_prefix('/')
        .ok_or_else(|| invalid("does not start with \"/\"."))?;
    if rest.is_empty() {
        return Err(invalid("does not contains valid token."));
    }
    if pointer.len() > 1 && pointer.ends_with('/') {
        return Err(invalid("end with \"/\"."));
    }
    let segments: Vec<&str> = rest.split('/').collect();
    if segments.iter().any(|s| s.trim().is_empty()) {
        return Err(invalid("contains adjacent \"/\"."));
    }
    let bad_tilde = pointer
        .match_indices('~')
        .any(|(i, _)| !matches!(pointer.as_bytes().get(i + 1), Some(b'0' | b'1')));
    if bad_tilde {
        return Err(invalid(
            "contains \"~\" not part of a recognized escape sequence.",
        ));
    }
    Ok(segments
        .into_iter()
        .map(|s| s.replace("~1", "/").replace("~0", "~").trim().to_owned())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn v2_1_operations_parse() {
        let body = json!([{"op": "add", "path": "/foo", "value": "bar"}, {"op": "remove", "path": "/a~1b"}]);
        let changes = parse(&body, Dialect::V2_1).unwrap();
        assert_eq!(changes[0].op, PatchOp::Add);
        assert_eq!(changes[0].value, Some(json!("bar")));
        assert!(!changes[0].strict_add);
        assert_eq!(changes[1].path, vec!["a/b"]);
        assert_eq!(changes[1].value, None);
    }

    #[test]
    fn v2_0_operations_parse() {
        let changes = parse(&json!([{"replace": "/name", "value": "x"}]), Dialect::V2_0).unwrap();
        assert_eq!(changes[0].op, PatchOp::Replace);
        assert_eq!(changes[0].path, vec!["name"]);
        assert!(changes[0].strict_add);
    }

    #[test]
    fn malformed_operations_are_rejected() {
        for (body, dialect) in [
            (json!({"op": "add"}), Dialect::V2_1),
            (
                json!([{"op": "move", "path": "/a", "value": 1}]),
                Dialect::V2_1,
            ),
            (json!([{"op": "add", "path": "/a"}]), Dialect::V2_1),
            (
                json!([{"op": "add", "path": "a", "value": 1}]),
                Dialect::V2_1,
            ),
            (
                json!([{"op": "add", "path": "/a//b", "value": 1}]),
                Dialect::V2_1,
            ),
            (
                json!([{"op": "add", "path": "/a~2", "value": 1}]),
                Dialect::V2_1,
            ),
            (
                json!([{"add": "/a", "remove": "/b", "value": 1}]),
                Dialect::V2_0,
            ),
            (json!([{"value": 1}]), Dialect::V2_0),
        ] {
            assert!(parse(&body, dialect).is_err(), "{body} was accepted");
        }
    }

    #[test]
    fn media_types_select_dialect() {
        assert_eq!(
            Dialect::from_content_type(MEDIA_TYPE_V2_1),
            Some(Dialect::V2_1)
        );
        assert_eq!(
            Dialect::from_content_type(
                "application/openstack-images-v2.0-json-patch; charset=utf-8"
            ),
            Some(Dialect::V2_0)
        );
        assert_eq!(Dialect::from_content_type("application/json"), None);
    }
}
