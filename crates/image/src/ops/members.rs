//! Image sharing: the owner offers a `shared` image to other projects, each
//! of which accepts or rejects it. Only accepted images appear in a
//! member's default image list; a member in any status can see the image
//! by id.

use oxstack_core::{ApiError, ErrorKind};

use super::{find_visible, Visible};
use crate::db::{self, members};
use crate::model::{ImageId, Member, MemberStatus, Visibility};
use crate::policy::{self, Caller};
use crate::ImageService;

/// Loads a shared image the caller may see; other visibilities are a 403,
/// as in Glance.
async fn find_shared(
    service: &ImageService,
    caller: &Caller,
    id: &ImageId,
) -> Result<Visible, ApiError> {
    let visible = find_visible(service, caller, id).await?;
    if visible.image.visibility != Visibility::Shared {
        return Err(ApiError::forbidden("Only shared images have members."));
    }
    Ok(visible)
}

fn member_not_found(member_id: &str, id: &ImageId) -> ApiError {
    ApiError::not_found(format!(
        "{member_id} not found in the member list of the image {id}."
    ))
}

/// Offers the image to project `member_id` (status `pending`).
pub async fn add(
    service: &ImageService,
    caller: &Caller,
    id: &ImageId,
    member_id: &str,
) -> Result<Member, ApiError> {
    let visible = find_shared(service, caller, id).await?;
    let denied = || ApiError::forbidden(format!("Not allowed to create members for image {id}."));
    if !caller.is_admin && !caller.owns(&visible.image) {
        return Err(denied());
    }
    if !policy::allows(
        &service.policy,
        caller,
        "add_member",
        &visible.target(caller),
    ) {
        return Err(denied());
    }
    if members::count(service.pool(), id).await? >= service.config.image_member_quota {
        return Err(ApiError::new(
            ErrorKind::PayloadTooLarge,
            format!(
                "Image member limit exceeded for image {id}: the limit is {}.",
                service.config.image_member_quota
            ),
        ));
    }
    let now = db::now();
    let member = Member {
        image_id: id.clone(),
        member_id: member_id.to_owned(),
        status: MemberStatus::Pending,
        created_at: now,
        updated_at: now,
    };
    members::insert(service.pool(), &member).await?;
    tracing::info!(image_id = %id, member_id, "added image member");
    Ok(member)
}

/// Lists the memberships the caller may see: all of them for the owner
/// and admins, only its own for a member project.
pub async fn list(
    service: &ImageService,
    caller: &Caller,
    id: &ImageId,
) -> Result<Vec<Member>, ApiError> {
    let visible = find_shared(service, caller, id).await?;
    if !policy::allows(
        &service.policy,
        caller,
        "get_members",
        &visible.target(caller),
    ) {
        return Err(ApiError::forbidden(format!(
            "Not allowed to list members for image {id}."
        )));
    }
    let all = members::list(service.pool(), id).await?;
    if caller.is_admin || caller.owns(&visible.image) {
        return Ok(all);
    }
    Ok(all
        .into_iter()
        .filter(|m| Some(&m.member_id) == caller.project_id.as_ref())
        .collect())
}

/// Shows one membership. Memberships the caller may not see are a 404.
pub async fn show(
    service: &ImageService,
    caller: &Caller,
    id: &ImageId,
    member_id: &str,
) -> Result<Member, ApiError> {
    let visible = find_visible(service, caller, id).await?;
    let may_see = visible.image.visibility == Visibility::Shared
        && (caller.is_admin
            || caller.owns(&visible.image)
            || caller.project_id.as_deref() == Some(member_id))
        && policy::allows(
            &service.policy,
            caller,
            "get_member",
            &visible.target(caller),
        );
    if !may_see {
        return Err(member_not_found(member_id, id));
    }
    members::get(service.pool(), id, member_id)
        .await?
        .ok_or_else(|| member_not_found(member_id, id))
}

/// Sets the status of the caller's own membership.
pub async fn set_status(
    service: &ImageService,
    caller: &Caller,
    id: &ImageId,
    member_id: &str,
    status: MemberStatus,
) -> Result<Member, ApiError> {
    let visible = find_shared(service, caller, id).await?;
    let denied = || ApiError::forbidden(format!("Not allowed to update members for image {id}."));
    if caller.owns(&visible.image) && !caller.is_admin {
        return Err(denied());
    }
    let mut member = members::get(service.pool(), id, member_id)
        .await?
        .ok_or_else(|| member_not_found(member_id, id))?;
    let target = policy::image_target(
        &visible.image,
        caller,
        caller.project_id.as_deref() == Some(member_id),
    );
    if !policy::allows(&service.policy, caller, "modify_member", &target) {
        return Err(denied());
    }
    let now = db::now();
    if !members::set_status(service.pool(), id, member_id, status, now).await? {
        return Err(member_not_found(member_id, id));
    }
    member.status = status;
    member.updated_at = now;
    tracing::info!(image_id = %id, member_id, status = status.as_str(), "changed image member status");
    Ok(member)
}

/// Withdraws the offer of the image to `member_id`.
pub async fn remove(
    service: &ImageService,
    caller: &Caller,
    id: &ImageId,
    member_id: &str,
) -> Result<(), ApiError> {
    let visible = find_shared(service, caller, id).await?;
    let denied = || ApiError::forbidden(format!("Not allowed to delete members for image {id}."));
    if !caller.is_admin && !caller.owns(&visible.image) {
        return Err(denied());
    }
    if !policy::allows(
        &service.policy,
        caller,
        "delete_member",
        &visible.target(caller),
    ) {
        return Err(denied());
    }
    if !members::delete(service.pool(), id, member_id).await? {
        return Err(member_not_found(member_id, id));
    }
    tracing::info!(image_id = %id, member_id, "removed image member");
    Ok(())
}
