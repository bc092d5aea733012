//! The JSON shapes of images and members, as Glance renders them.

use oxstack_core::time::{from_unix, iso8601};
use serde_json::{json, Map, Value};

use crate::model::{Image, Member};

/// Renders an image: extra properties at the top level beside the core
/// attributes. `locations` stays hidden, as with Glance's default
/// `show_multiple_locations = False`.
pub fn image(image: &Image) -> Value {
    let mut body: Map<String, Value> = image
        .properties
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let id = image.id.as_str();
    let core = json!({
        "id": id,
        "name": image.name,
        "status": image.status.as_str(),
        "visibility": image.visibility.as_str(),
        "protected": image.protected,
        "os_hidden": image.os_hidden,
        "disk_format": image.disk_format,
        "container_format": image.container_format,
        "size": image.size,
        "virtual_size": image.virtual_size,
        "checksum": image.checksum,
        "os_hash_algo": image.os_hash_algo,
        "os_hash_value": image.os_hash_value,
        "min_disk": image.min_disk,
        "min_ram": image.min_ram,
        "owner": image.owner,
        "created_at": iso8601(from_unix(image.created_at)),
        "updated_at": iso8601(from_unix(image.updated_at)),
        "tags": image.tags,
        "self": format!("/v2/images/{id}"),
        "file": format!("/v2/images/{id}/file"),
        "schema": "/v2/schemas/image",
    });
    if let Value::Object(core) = core {
        body.extend(core);
    }
    Value::Object(body)
}

/// Renders a membership.
pub fn member(member: &Member) -> Value {
    json!({
        "image_id": member.image_id.as_str(),
        "member_id": member.member_id,
        "status": member.status.as_str(),
        "created_at": iso8601(from_unix(member.created_at)),
        "updated_at": iso8601(from_unix(member.updated_at)),
        "schema": "/v2/schemas/member",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ImageId;

    #[test]
    fn image_has_glance_links_and_properties() {
        let mut img = Image::new(ImageId::new("abc"), Some("p1".into()), 0);
        img.properties.insert("hw_disk_bus".into(), "scsi".into());
        let body = image(&img);
        assert_eq!(body["self"], "/v2/images/abc");
        assert_eq!(body["file"], "/v2/images/abc/file");
        assert_eq!(body["hw_disk_bus"], "scsi");
        assert_eq!(body["created_at"], "1970-01-01T00:00:00Z");
        assert!(body["checksum"].is_null());
        assert!(body.get("locations").is_none());
    }
}
