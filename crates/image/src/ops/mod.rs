//! The image service's operations, one module per concern. Handlers in
//! `crate::api` parse requests and render responses; the rules (visibility,
//! policy, state transitions, quotas) live here.

pub mod attributes;
pub mod data;
pub mod images;
pub mod import;
pub mod list;
pub mod members;

use oxstack_core::ApiError;
use serde_json::Value;

use crate::db;
use crate::model::{Image, ImageId, Visibility};
use crate::policy::{self, Caller};
use crate::ImageService;

/// An image the caller may see.
#[derive(Clone, Debug)]
pub struct Visible {
    pub image: Image,
    /// True when the caller's project has a membership of the image, in any
    /// status.
    pub is_member: bool,
}

impl Visible {
    /// Returns the policy target of the image for `caller`.
    pub fn target(&self, caller: &Caller) -> Value {
        policy::image_target(&self.image, caller, self.is_member)
    }
}

/// Returns Glance's 404 for an image id.
pub fn not_found(id: &ImageId) -> ApiError {
    ApiError::not_found(format!("No image found with ID {id}"))
}

/// Loads an image the caller may see. An image the caller may not see is a
/// 404, as if it did not exist, so that ids of private images do not leak.
pub async fn find_visible(
    service: &ImageService,
    caller: &Caller,
    id: &ImageId,
) -> Result<Visible, ApiError> {
    let image = db::images::get(service.pool(), id)
        .await?
        .ok_or_else(|| not_found(id))?;
    let is_member = match &caller.project_id {
        Some(project) if !caller.owns(&image) => db::members::get(service.pool(), id, project)
            .await?
            .is_some(),
        _ => false,
    };
    let visible = Visible { image, is_member };
    if !policy::is_visible(&visible.image, caller, is_member) {
        return Err(not_found(id));
    }
    if !policy::allows(
        &service.policy,
        caller,
        "get_image",
        &visible.target(caller),
    ) {
        return Err(not_found(id));
    }
    Ok(visible)
}

/// Checks the rule that guards publishing or sharing with everyone, when
/// `visibility` needs one.
pub fn enforce_visibility_change(
    service: &ImageService,
    caller: &Caller,
    target: &Value,
    visibility: Visibility,
) -> Result<(), ApiError> {
    match visibility {
        Visibility::Public => policy::enforce(&service.policy, caller, "publicize_image", target),
        Visibility::Community => {
            policy::enforce(&service.policy, caller, "communitize_image", target)
        }
        Visibility::Private | Visibility::Shared => Ok(()),
    }
}
