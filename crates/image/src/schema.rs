//! The JSON schemas of images and members, as Glance publishes them under
//! `/v2/schemas/`. The image schema also validates create bodies and
//! PATCH values, so what clients read and what the service enforces are
//! the same document.

use std::sync::OnceLock;

use oxstack_core::validate::Schema;
use serde_json::{json, Value};

use crate::model::{CONTAINER_FORMATS, DISK_FORMATS};

const UUID_PATTERN: &str =
    "^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$";

fn nullable_enum(values: &[&str]) -> Value {
    let mut items = vec![Value::Null];
    items.extend(values.iter().map(|v| json!(v)));
    Value::Array(items)
}

fn image_properties() -> Value {
    json!({
        "id": {"type": "string", "description": "An identifier for the image", "pattern": UUID_PATTERN},
        "name": {"type": ["null", "string"], "description": "Descriptive name for the image", "maxLength": 255},
        "status": {"type": "string", "readOnly": true, "description": "Status of the image",
                   "enum": ["queued", "saving", "active", "killed", "deleted", "uploading", "importing",
                            "pending_delete", "deactivated"]},
        "visibility": {"type": "string", "description": "Scope of image accessibility",
                       "enum": ["community", "public", "private", "shared"]},
        "protected": {"type": "boolean", "description": "If true, image will not be deletable."},
        "os_hidden": {"type": "boolean",
                      "description": "If true, image will not appear in default image list response."},
        "checksum": {"type": ["null", "string"], "readOnly": true,
                     "description": "md5 hash of image contents.", "maxLength": 32},
        "os_hash_algo": {"type": ["null", "string"], "readOnly": true,
                         "description": "Algorithm to calculate the os_hash_value", "maxLength": 64},
        "os_hash_value": {"type": ["null", "string"], "readOnly": true,
                          "description": "Hexdigest of the image contents using the algorithm specified by the os_hash_algo",
                          "maxLength": 128},
        "owner": {"type": ["null", "string"], "description": "Owner of the image", "maxLength": 255},
        "size": {"type": ["null", "integer"], "readOnly": true, "description": "Size of image file in bytes"},
        "virtual_size": {"type": ["null", "integer"], "readOnly": true,
                         "description": "Virtual size of image in bytes"},
        "container_format": {"type": ["null", "string"], "description": "Format of the container",
                             "enum": nullable_enum(CONTAINER_FORMATS)},
        "disk_format": {"type": ["null", "string"], "description": "Format of the disk",
                        "enum": nullable_enum(DISK_FORMATS)},
        "created_at": {"type": "string", "readOnly": true, "description": "Date and time of image registration"},
        "updated_at": {"type": "string", "readOnly": true,
                       "description": "Date and time of the last image modification"},
        "tags": {"type": "array", "description": "List of strings related to the image",
                 "items": {"type": "string", "maxLength": 255}},
        "direct_url": {"type": "string", "readOnly": true,
                       "description": "URL to access the image file kept in external store"},
        "min_ram": {"type": "integer", "description": "Amount of ram (in MB) required to boot image."},
        "min_disk": {"type": "integer", "description": "Amount of disk space (in GB) required to boot image."},
        "self": {"type": "string", "readOnly": true, "description": "An image self url"},
        "file": {"type": "string", "readOnly": true, "description": "An image file url"},
        "stores": {"type": "string", "readOnly": true,
                   "description": "Store in which image data resides.  Only present when the operator has enabled multiple stores.  May be a comma-separated list of store identifiers."},
        "schema": {"type": "string", "readOnly": true, "description": "An image schema url"},
        "locations": {"type": "array", "description": "A set of URLs to access the image file kept in external store",
                      "items": {"type": "object", "required": ["url", "metadata"], "properties": {
                          "url": {"type": "string", "maxLength": 255},
                          "metadata": {"type": "object"}}}},
        // Glance's etc/schema-image.json, which deployments install by default.
        "kernel_id": {"type": ["null", "string"], "pattern": UUID_PATTERN, "is_base": false,
                      "description": "ID of image stored in Glance that should be used as the kernel when booting an AMI-style image."},
        "ramdisk_id": {"type": ["null", "string"], "pattern": UUID_PATTERN, "is_base": false,
                       "description": "ID of image stored in Glance that should be used as the ramdisk when booting an AMI-style image."},
        "instance_uuid": {"type": "string", "is_base": false,
                          "description": "Metadata which can be used to record which instance this image is associated with. (Informational only, does not create an instance snapshot.)"},
        "architecture": {"type": "string", "is_base": false,
                         "description": "Operating system architecture as specified in https://docs.openstack.org/python-glanceclient/latest/cli/property-keys.html"},
        "os_distro": {"type": "string", "is_base": false,
                      "description": "Common name of operating system distribution as specified in https://docs.openstack.org/python-glanceclient/latest/cli/property-keys.html"},
        "os_version": {"type": "string", "is_base": false,
                       "description": "Operating system version as specified by the distributor."},
        "description": {"type": "string", "is_base": false,
                        "description": "A human-readable string describing this image."},
        "cinder_encryption_key_id": {"type": "string", "is_base": false,
                                     "description": "Identifier in the OpenStack Key Management Service for the encryption key for the Block Storage Service to use when mounting a volume created from this image"},
        "cinder_encryption_key_deletion_policy": {"type": "string", "is_base": false,
                                                  "enum": ["on_image_deletion", "do_not_delete"],
                                                  "description": "States the condition under which the Image Service will delete the object associated with the 'cinder_encryption_key_id' image property.  If this property is missing, the Image Service will take no action"}
    })
}

/// `GET /v2/schemas/image`: extra properties must be strings.
pub fn image() -> Value {
    json!({
        "name": "image",
        "properties": image_properties(),
        "additionalProperties": {"type": "string"},
        "links": [
            {"rel": "self", "href": "{self}"},
            {"rel": "enclosure", "href": "{file}"},
            {"rel": "describedby", "href": "{schema}"}
        ]
    })
}

/// `GET /v2/schemas/images`.
pub fn images() -> Value {
    collection("images", image())
}

/// `GET /v2/schemas/member`. Glance's member schema is strict.
pub fn member() -> Value {
    json!({
        "name": "member",
        "properties": {
            "member_id": {"type": "string", "description": "An identifier for the image member (tenantId)"},
            "image_id": {"type": "string", "description": "An identifier for the image", "pattern": UUID_PATTERN},
            "created_at": {"type": "string", "description": "Date and time of image member creation"},
            "updated_at": {"type": "string", "description": "Date and time of last modification of image member"},
            "status": {"type": "string", "description": "The status of this image member",
                       "enum": ["pending", "accepted", "rejected"]},
            "schema": {"readOnly": true, "type": "string"}
        },
        "additionalProperties": false
    })
}

/// `GET /v2/schemas/members`.
pub fn members() -> Value {
    collection("members", member())
}

fn collection(name: &str, item: Value) -> Value {
    json!({
        "name": name,
        "properties": {
            name: {"type": "array", "items": item},
            "first": {"type": "string"},
            "next": {"type": "string"},
            "schema": {"type": "string"}
        },
        "links": [
            {"rel": "first", "href": "{first}"},
            {"rel": "next", "href": "{next}"},
            {"rel": "describedby", "href": "{schema}"}
        ]
    })
}

/// Returns the image schema, compiled once, for validating create bodies
/// and PATCH values.
pub fn image_validator() -> &'static Schema {
    static VALIDATOR: OnceLock<Schema> = OnceLock::new();
    VALIDATOR.get_or_init(|| Schema::compile(&image()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_properties_must_be_strings() {
        assert!(image_validator()
            .check(&json!({"hw_disk_bus": "scsi"}))
            .is_ok());
        assert!(image_validator().check(&json!({"hw_disk_bus": 3})).is_err());
    }

    #[test]
    fn unknown_disk_format_is_invalid() {
        assert!(image_validator()
            .check(&json!({"disk_format": "qcow2"}))
            .is_ok());
        assert!(image_validator()
            .check(&json!({"disk_format": "qcow3"}))
            .is_err());
        assert!(image_validator()
            .check(&json!({"container_format": null}))
            .is_ok());
    }

    #[test]
    fn collection_schema_names_items() {
        assert_eq!(images()["properties"]["images"]["items"]["name"], "image");
        assert_eq!(members()["name"], "members");
    }
}
