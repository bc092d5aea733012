//! Image attribute names: which a client may set, which are read-only or
//! reserved, and how a JSON value sets a core attribute. Create and PATCH
//! share these rules, as in Glance.

use oxstack_core::ApiError;
use serde_json::Value;

use crate::model::{Image, Visibility};
use crate::schema;

/// Attributes the service computes; setting one is a 403.
const READ_ONLY: &[&str] = &[
    "created_at",
    "updated_at",
    "status",
    "checksum",
    "size",
    "virtual_size",
    "direct_url",
    "self",
    "file",
    "schema",
    "id",
    "os_hash_algo",
    "os_hash_value",
    "stores",
];

/// Names Glance keeps for itself; using one is a 403.
const RESERVED: &[&str] = &["location", "locations", "deleted", "deleted_at"];

/// Prefix of properties Glance sets internally (`os_glance_import_task`).
const RESERVED_NAMESPACE: &str = "os_glance";

/// Core attributes a client may set.
pub const SETTABLE: &[&str] = &[
    "name",
    "visibility",
    "protected",
    "os_hidden",
    "disk_format",
    "container_format",
    "min_disk",
    "min_ram",
    "owner",
    "tags",
];

/// Maximum length of an extra property name, in characters (Glance's limit).
const MAX_PROPERTY_NAME: usize = 255;

/// Rejects names a client may not set. `id` may be given at create only.
pub fn check_name(name: &str, creating: bool) -> Result<(), ApiError> {
    if READ_ONLY.contains(&name) && !(creating && name == "id") {
        return Err(ApiError::forbidden(format!(
            "Attribute '{name}' is read-only."
        )));
    }
    if RESERVED.contains(&name) || name.starts_with(RESERVED_NAMESPACE) {
        return Err(ApiError::forbidden(format!(
            "Attribute '{name}' is reserved."
        )));
    }
    if name.chars().count() > MAX_PROPERTY_NAME {
        return Err(ApiError::bad_request(
            "Custom property should not be greater than 255 characters.",
        ));
    }
    Ok(())
}

/// Returns whether `name` is a core attribute rather than an extra property.
pub fn is_core(name: &str) -> bool {
    SETTABLE.contains(&name)
}

/// Validates `{name: value}` against the image schema, as Glance checks
/// each PATCH value and each create body.
pub fn validate(name: &str, value: &Value) -> Result<(), ApiError> {
    let mut partial = serde_json::Map::new();
    partial.insert(name.to_owned(), value.clone());
    schema::image_validator().check(&Value::Object(partial))
}

/// Sets core attribute `name` of `image` from a value that passed
/// `validate`. Changing a format after data is stored is a 403, because
/// the stored data was inspected against the old format.
pub fn set_core(image: &mut Image, name: &str, value: &Value) -> Result<(), ApiError> {
    let invalid =
        || ApiError::bad_request(format!("Invalid value for attribute '{name}': {value}"));
    match name {
        "name" => image.name = value.as_str().map(str::to_owned),
        "visibility" => {
            let text = value.as_str().ok_or_else(invalid)?;
            image.visibility = text.parse::<Visibility>().map_err(ApiError::bad_request)?;
        }
        "protected" => image.protected = value.as_bool().ok_or_else(invalid)?,
        "os_hidden" => image.os_hidden = value.as_bool().ok_or_else(invalid)?,
        "disk_format" | "container_format" => {
            if !matches!(
                image.status,
                crate::model::Status::Queued | crate::model::Status::Importing
            ) {
                return Err(ApiError::forbidden(format!(
                    "Attribute {name} can be only replaced for a queued image."
                )));
            }
            let text = value.as_str().map(str::to_owned);
            if name == "disk_format" {
                image.disk_format = text;
            } else {
                image.container_format = text;
            }
        }
        "min_disk" | "min_ram" => {
            let number = value.as_i64().ok_or_else(invalid)?;
            if number < 0 {
                return Err(ApiError::bad_request(format!(
                    "Invalid value '{number}' for parameter '{name}': Cannot be a negative value."
                )));
            }
            if name == "min_disk" {
                image.min_disk = number;
            } else {
                image.min_ram = number;
            }
        }
        "owner" => image.owner = value.as_str().map(str::to_owned),
        "tags" => {
            let tags = value.as_array().ok_or_else(invalid)?;
            image.tags.clear();
            for tag in tags {
                image.add_tag(tag.as_str().ok_or_else(invalid)?);
            }
        }
        _ => {
            return Err(ApiError::internal(format!(
                "set_core called with non-core attribute {name}"
            )))
        }
    }
    Ok(())
}

/// Returns the text of an extra property value. Glance's schema allows null
/// for a few well-known properties (`kernel_id`); Glance shows such values
/// as empty strings, and so they are stored.
pub fn property_text(name: &str, value: &Value) -> Result<String, ApiError> {
    match value {
        Value::String(text) => Ok(text.clone()),
        Value::Null => Ok(String::new()),
        _ => Err(ApiError::bad_request(format!(
            "Invalid value for property '{name}': extra properties must be strings."
        ))),
    }
}

/// Rejects more extra properties or tags than the configured quotas allow,
/// with Glance's 413.
pub fn check_quotas(image: &Image, max_properties: usize, max_tags: usize) -> Result<(), ApiError> {
    if image.properties.len() > max_properties {
        return Err(ApiError::new(
            oxstack_core::ErrorKind::PayloadTooLarge,
            format!(
                "Maximum number of image properties exceeded: {} of {max_properties}.",
                image.properties.len()
            ),
        ));
    }
    if image.tags.len() > max_tags {
        return Err(ApiError::new(
            oxstack_core::ErrorKind::PayloadTooLarge,
            format!(
                "Maximum number of image tags exceeded: {} of {max_tags}.",
                image.tags.len()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ImageId, Status};
    use oxstack_core::ErrorKind;
    use serde_json::json;

    #[test]
    fn read_only_and_reserved_names_are_forbidden() {
        assert_eq!(
            check_name("status", true).unwrap_err().kind,
            ErrorKind::Forbidden
        );
        assert_eq!(
            check_name("id", false).unwrap_err().kind,
            ErrorKind::Forbidden
        );
        assert!(check_name("id", true).is_ok());
        assert_eq!(
            check_name("os_glance_foo", true).unwrap_err().kind,
            ErrorKind::Forbidden
        );
        assert_eq!(
            check_name("deleted", false).unwrap_err().kind,
            ErrorKind::Forbidden
        );
        assert!(check_name("hw_disk_bus", false).is_ok());
    }

    #[test]
    fn negative_min_ram_is_rejected() {
        let mut image = Image::new(ImageId::generate(), None, 0);
        let error = set_core(&mut image, "min_ram", &json!(-1)).unwrap_err();
        assert_eq!(error.kind, ErrorKind::BadRequest);
    }

    #[test]
    fn format_change_after_upload_is_forbidden() {
        let mut image = Image::new(ImageId::generate(), None, 0);
        set_core(&mut image, "disk_format", &json!("qcow2")).unwrap();
        image.status = Status::Active;
        let error = set_core(&mut image, "disk_format", &json!("raw")).unwrap_err();
        assert_eq!(error.kind, ErrorKind::Forbidden);
        assert_eq!(image.disk_format.as_deref(), Some("qcow2"));
    }

    #[test]
    fn tags_are_deduplicated() {
        let mut image = Image::new(ImageId::generate(), None, 0);
        set_core(&mut image, "tags", &json!(["a", "b", "a"])).unwrap();
        assert_eq!(image.tags, vec!["a", "b"]);
    }
}
