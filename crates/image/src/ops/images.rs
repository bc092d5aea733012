//! Creating, changing and deleting images, their tags, and deactivation.

use oxstack_core::ApiError;
use serde_json::{Map, Value};

use super::attributes::{self, check_name, check_quotas, is_core, property_text, set_core};
use super::{enforce_visibility_change, find_visible, not_found, Visible};
use crate::db::{self, images};
use crate::model::{Image, ImageId, Status, Visibility};
use crate::policy::{self, Caller};
use crate::ImageService;

/// Creates a `queued` image from a create body (a JSON object of core
/// attributes and extra string properties).
pub async fn create(
    service: &ImageService,
    caller: &Caller,
    body: Map<String, Value>,
) -> Result<Image, ApiError> {
    for name in body.keys() {
        check_name(name, true)?;
    }
    crate::schema::image_validator().check(&Value::Object(body.clone()))?;

    let id = match body.get("id").and_then(Value::as_str) {
        Some(id) => ImageId::new(id),
        None => ImageId::generate(),
    };
    let mut image = Image::new(id, caller.project_id.clone(), db::now());
    for (name, value) in &body {
        if name == "id" {
            continue;
        }
        if is_core(name) {
            set_core(&mut image, name, value)?;
        } else {
            image
                .properties
                .insert(name.clone(), property_text(name, value)?);
        }
    }
    check_quotas(
        &image,
        service.config.image_property_quota,
        service.config.image_tag_quota,
    )?;

    let target = policy::project_target(caller.project_id.as_deref(), image.owner.as_deref());
    policy::enforce(&service.policy, caller, "add_image", &target)?;
    enforce_visibility_change(service, caller, &target, image.visibility)?;

    images::insert(service.pool(), &image).await?;
    tracing::info!(image_id = %image.id, owner = ?image.owner, "created image");
    Ok(image)
}

/// A JSON-patch operation on an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchOp {
    Add,
    Replace,
    Remove,
}

/// One change of a PATCH request.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    pub op: PatchOp,
    /// The decoded JSON pointer; only single-segment paths are valid.
    pub path: Vec<String>,
    /// The new value (absent for `remove`).
    pub value: Option<Value>,
    /// True for the older `openstack-images-v2.0-json-patch` media type,
    /// where `add` of an existing attribute is a 409 instead of a replace.
    pub strict_add: bool,
}

/// Applies PATCH `changes` in order, all or nothing, and saves the image.
pub async fn update(
    service: &ImageService,
    caller: &Caller,
    id: &ImageId,
    changes: &[Change],
) -> Result<Image, ApiError> {
    let visible = find_visible(service, caller, id).await?;
    let target = visible.target(caller);
    let mut image = visible.image;
    for change in changes {
        let name = validate_change(change)?;
        policy::enforce(&service.policy, caller, "modify_image", &target)?;
        apply_change(service, caller, &target, &mut image, name, change)?;
    }
    check_quotas(
        &image,
        service.config.image_property_quota,
        service.config.image_tag_quota,
    )?;
    if changes.is_empty() {
        return Ok(image);
    }

    let now = db::now();
    if !images::save(service.pool(), &image, now).await? {
        return Err(ApiError::conflict(format!(
            "Image {id} was changed by another request while this one was applied; retry."
        )));
    }
    image.updated_at = now;
    image.generation += 1;
    Ok(image)
}

/// Checks a change's path and value before any rule runs, returning the
/// attribute it changes.
fn validate_change(change: &Change) -> Result<&str, ApiError> {
    let name = change.path.first().map(String::as_str).unwrap_or_default();
    check_name(name, false)?;
    if change.path.len() != 1 || name.is_empty() {
        return Err(ApiError::bad_request(format!(
            "Invalid JSON pointer for this resource: '/{}'",
            change.path.join("/")
        )));
    }
    if let Some(value) = &change.value {
        attributes::validate(name, value)?;
    }
    Ok(name)
}

fn apply_change(
    service: &ImageService,
    caller: &Caller,
    target: &Value,
    image: &mut Image,
    name: &str,
    change: &Change,
) -> Result<(), ApiError> {
    let exists = is_core(name) || image.properties.contains_key(name);
    match change.op {
        PatchOp::Remove => {
            if is_core(name) {
                return Err(ApiError::forbidden(format!(
                    "Property {name} may not be removed."
                )));
            }
            if image.properties.remove(name).is_none() {
                return Err(ApiError::conflict(format!(
                    "Property {name} does not exist."
                )));
            }
            return Ok(());
        }
        PatchOp::Replace if !exists => {
            return Err(ApiError::conflict(format!(
                "Property {name} does not exist."
            )));
        }
        PatchOp::Add if exists && change.strict_add => {
            return Err(ApiError::conflict(format!(
                "Property {name} already present."
            )));
        }
        PatchOp::Add | PatchOp::Replace => {}
    }

    let value = change.value.as_ref().ok_or_else(|| {
        ApiError::bad_request(format!(
            "Operation on '{name}' requires a member named \"value\"."
        ))
    })?;
    if name == "owner" && !caller.is_admin {
        return Err(ApiError::forbidden("Owner can't be updated by non admin."));
    }
    if name == "visibility" {
        if let Some(visibility) = value.as_str().and_then(|v| v.parse::<Visibility>().ok()) {
            enforce_visibility_change(service, caller, target, visibility)?;
        }
    }
    if is_core(name) {
        set_core(image, name, value)
    } else {
        image
            .properties
            .insert(name.to_owned(), property_text(name, value)?);
        Ok(())
    }
}

/// Deletes an image and its data. Protected images are a 403.
pub async fn delete(service: &ImageService, caller: &Caller, id: &ImageId) -> Result<(), ApiError> {
    let visible = find_visible(service, caller, id).await?;
    policy::enforce(
        &service.policy,
        caller,
        "delete_image",
        &visible.target(caller),
    )?;
    if visible.image.protected {
        return Err(ApiError::forbidden(format!(
            "Image {id} is protected and cannot be deleted."
        )));
    }

    // The row goes first: an upload or import finishing later finds no row
    // to activate and deletes what it stored, and a crash between the two
    // steps leaves orphan data that start-up reconciliation deletes.
    if !images::delete(service.pool(), id).await? {
        return Err(not_found(id));
    }
    if let Err(error) = service.data.delete(id).await {
        tracing::error!(image_id = %id, error = %error, "deleting image data failed; it is deleted at next start");
    }
    let staged = service.staged_path(id);
    if let Err(error) = tokio::fs::remove_file(&staged).await {
        if error.kind() != std::io::ErrorKind::NotFound {
            tracing::error!(image_id = %id, error = %error, "deleting staged data failed");
        }
    }
    tracing::info!(image_id = %id, "deleted image");
    Ok(())
}

/// Deactivates an active image (downloads by non-admins are then refused),
/// or reactivates a deactivated one. Repeating either is allowed.
pub async fn set_active(
    service: &ImageService,
    caller: &Caller,
    id: &ImageId,
    active: bool,
) -> Result<(), ApiError> {
    let visible = find_visible(service, caller, id).await?;
    let (action, from, to) = if active {
        ("reactivate", Status::Deactivated, Status::Active)
    } else {
        ("deactivate", Status::Active, Status::Deactivated)
    };
    policy::enforce(&service.policy, caller, action, &visible.target(caller))?;
    if visible.image.status == to {
        return Ok(());
    }
    if visible.image.status != from
        || !images::set_status(service.pool(), id, from, to, db::now()).await?
    {
        return Err(ApiError::forbidden(format!(
            "Not allowed to {action} image in status '{}'",
            visible.image.status
        )));
    }
    tracing::info!(image_id = %id, status = %to, "changed image activation");
    Ok(())
}

/// Adds `tag` to the image (adding a present tag succeeds).
pub async fn add_tag(
    service: &ImageService,
    caller: &Caller,
    id: &ImageId,
    tag: &str,
) -> Result<(), ApiError> {
    if tag.chars().count() > 255 {
        return Err(ApiError::bad_request(
            "Invalid tag: tags are at most 255 characters.",
        ));
    }
    change_tags(service, caller, id, |image| {
        image.add_tag(tag);
        Ok(())
    })
    .await
}

/// Removes `tag` from the image; an absent tag is a 404.
pub async fn remove_tag(
    service: &ImageService,
    caller: &Caller,
    id: &ImageId,
    tag: &str,
) -> Result<(), ApiError> {
    change_tags(service, caller, id, |image| {
        let before = image.tags.len();
        image.tags.retain(|t| t != tag);
        if image.tags.len() == before {
            return Err(ApiError::not_found(format!(
                "Tag {tag} not found on image {id}."
            )));
        }
        Ok(())
    })
    .await
}

async fn change_tags(
    service: &ImageService,
    caller: &Caller,
    id: &ImageId,
    change: impl FnOnce(&mut Image) -> Result<(), ApiError>,
) -> Result<(), ApiError> {
    let Visible {
        mut image,
        is_member,
    } = find_visible(service, caller, id).await?;
    policy::enforce(
        &service.policy,
        caller,
        "modify_image",
        &policy::image_target(&image, caller, is_member),
    )?;
    change(&mut image)?;
    check_quotas(
        &image,
        service.config.image_property_quota,
        service.config.image_tag_quota,
    )?;
    if !images::save(service.pool(), &image, db::now()).await? {
        return Err(ApiError::conflict(format!(
            "Image {id} was changed by another request while this one was applied; retry."
        )));
    }
    Ok(())
}
