//! Who may do what to an image: Glance's default rules in oslo.policy
//! syntax, the caller's identity as policy sees it, and the image's
//! visibility to a project.
//!
//! The defaults are Glance's (2024.1 and later, "new defaults"): members of
//! the owning project manage its images, readers read them, admins do
//! anything, and only admins publish. Rules name target values as Glance's
//! own policy files do (`%(project_id)s` is the image owner,
//! `%(member_id)s` the caller's project when it is a member of the image),
//! so an operator's Glance `policy.yaml` carries over. The same values are
//! also offered under `target.` (`%(target.owner)s`), the form the other
//! OxStack services use.

use oxstack_core::policy::{Credentials, Enforcer, PolicyLoadError};
use oxstack_core::{ApiError, RequestContext};
use serde_json::{json, Map, Value};

use crate::model::{Image, Visibility};

const ADMIN: &str = "rule:context_is_admin";
/// Glance's default rules.
pub const DEFAULT_RULES: &[(&str, &str)] = &[
    ("context_is_admin", "role:admin"),
    ("default", ADMIN),
    ("admin_or_project_member", "rule:context_is_admin or (role:member and project_id:%(project_id)s)"),
    ("admin_or_project_reader", "rule:context_is_admin or (role:reader and project_id:%(project_id)s)"),
    ("add_image", "rule:context_is_admin or (role:member and project_id:%(project_id)s and project_id:%(owner)s)"),
    ("get_image", "rule:context_is_admin or (role:reader and (project_id:%(project_id)s or project_id:%(member_id)s or 'community':%(visibility)s or 'public':%(visibility)s or 'shared':%(visibility)s))"),
    ("get_images", "rule:admin_or_project_reader"),
    ("modify_image", "rule:admin_or_project_member"),
    ("delete_image", "rule:admin_or_project_member"),
    ("publicize_image", ADMIN),
    ("communitize_image", "rule:admin_or_project_member"),
    ("download_image", "rule:context_is_admin or (role:member and (project_id:%(project_id)s or project_id:%(member_id)s or 'community':%(visibility)s or 'public':%(visibility)s or 'shared':%(visibility)s))"),
    ("upload_image", "rule:admin_or_project_member"),
    ("deactivate", "rule:admin_or_project_member"),
    ("reactivate", "rule:admin_or_project_member"),
    ("add_member", "rule:admin_or_project_member"),
    ("delete_member", "rule:admin_or_project_member"),
    ("get_member", "rule:context_is_admin or (role:reader and (project_id:%(project_id)s or project_id:%(member_id)s))"),
    ("get_members", "rule:context_is_admin or (role:reader and (project_id:%(project_id)s or project_id:%(member_id)s))"),
    ("modify_member", "rule:context_is_admin or (role:member and project_id:%(member_id)s)"),
];

/// Builds the enforcer from the defaults and the operator's policy file.
pub fn load(policy_file: Option<&std::path::Path>) -> Result<Enforcer, PolicyLoadError> {
    match policy_file {
        Some(path) => Enforcer::with_policy_file(DEFAULT_RULES, path),
        None => Enforcer::from_defaults(DEFAULT_RULES),
    }
}

/// The caller of one request, as the image service's rules see it.
#[derive(Clone, Debug)]
pub struct Caller {
    pub request_id: String,
    pub user_id: String,
    /// The project of a project-scoped token.
    pub project_id: Option<String>,
    /// True when `context_is_admin` passes, which lets the caller see and
    /// manage every image, as Glance's `is_admin` context does.
    pub is_admin: bool,
    credentials: Credentials,
}

impl Caller {
    pub fn new(policy: &Enforcer, ctx: &RequestContext) -> Self {
        let credentials = ctx.auth.credentials();
        let is_admin = policy.is_allowed("context_is_admin", &json!({}), &credentials);
        Caller {
            request_id: ctx.request_id.clone(),
            user_id: ctx.auth.user_id.clone(),
            project_id: ctx.auth.project_id.clone(),
            is_admin,
            credentials,
        }
    }

    /// Returns whether the caller's project owns `image`.
    pub fn owns(&self, image: &Image) -> bool {
        self.project_id.is_some() && self.project_id == image.owner
    }
}

/// The attributes of an image that rules compare, for a caller that is
/// (`is_member`) or is not a member of it.
pub fn image_target(image: &Image, caller: &Caller, is_member: bool) -> Value {
    let mut fields = Map::new();
    fields.insert("id".into(), json!(image.id.as_str()));
    fields.insert("project_id".into(), json!(image.owner));
    fields.insert("owner".into(), json!(image.owner));
    fields.insert("visibility".into(), json!(image.visibility.as_str()));
    fields.insert("protected".into(), json!(image.protected));
    if is_member {
        fields.insert("member_id".into(), json!(caller.project_id));
    }
    with_nested_copy(fields)
}

/// A target of only a project, for collection-wide rules (`get_images`,
/// and `add_image` before an image exists).
pub fn project_target(project_id: Option<&str>, owner: Option<&str>) -> Value {
    let mut fields = Map::new();
    fields.insert("project_id".into(), json!(project_id));
    fields.insert("owner".into(), json!(owner));
    with_nested_copy(fields)
}

fn with_nested_copy(fields: Map<String, Value>) -> Value {
    let mut target = fields.clone();
    target.insert("target".into(), Value::Object(fields));
    Value::Object(target)
}

/// Allows the action or returns Glance's 403.
pub fn enforce(
    policy: &Enforcer,
    caller: &Caller,
    action: &str,
    target: &Value,
) -> Result<(), ApiError> {
    if policy.is_allowed(action, target, &caller.credentials) {
        return Ok(());
    }
    Err(ApiError::forbidden(format!(
        "You are not authorized to complete {action} action."
    )))
}

/// Returns whether `policy` allows the action, for callers that pick an
/// error other than the generic 403.
pub fn allows(policy: &Enforcer, caller: &Caller, action: &str, target: &Value) -> bool {
    policy.is_allowed(action, target, &caller.credentials)
}

/// Glance's visibility rule: whether `caller` may know that `image`
/// exists. `is_member` is true when the caller's project has a membership
/// in any status.
pub fn is_visible(image: &Image, caller: &Caller, is_member: bool) -> bool {
    if caller.is_admin || caller.owns(image) {
        return true;
    }
    match image.visibility {
        Visibility::Public | Visibility::Community => true,
        Visibility::Shared => is_member,
        Visibility::Private => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ImageId;

    fn caller(policy: &Enforcer, project: &str, roles: &[&str]) -> Caller {
        let credentials = Credentials {
            roles: roles.iter().map(|r| r.to_string()).collect(),
            user_id: Some("u1".into()),
            project_id: Some(project.into()),
            ..Default::default()
        };
        let is_admin = policy.is_allowed("context_is_admin", &json!({}), &credentials);
        Caller {
            request_id: String::new(),
            user_id: "u1".into(),
            project_id: Some(project.into()),
            is_admin,
            credentials,
        }
    }

    fn image(owner: &str, visibility: Visibility) -> Image {
        let mut image = Image::new(ImageId::generate(), Some(owner.into()), 0);
        image.visibility = visibility;
        image
    }

    #[test]
    fn defaults_load_without_dangling_references() {
        let policy = load(None).unwrap();
        assert!(
            policy.undefined_references().is_empty(),
            "{:?}",
            policy.undefined_references()
        );
    }

    #[test]
    fn owner_member_may_modify_but_other_project_may_not() {
        let policy = load(None).unwrap();
        let image = image("p1", Visibility::Public);
        let owner = caller(&policy, "p1", &["member", "reader"]);
        let other = caller(&policy, "p2", &["member", "reader"]);
        assert!(allows(
            &policy,
            &owner,
            "modify_image",
            &image_target(&image, &owner, false)
        ));
        assert!(!allows(
            &policy,
            &other,
            "modify_image",
            &image_target(&image, &other, false)
        ));
        assert!(allows(
            &policy,
            &other,
            "get_image",
            &image_target(&image, &other, false)
        ));
    }

    #[test]
    fn only_admin_may_publicize() {
        let policy = load(None).unwrap();
        let target = project_target(Some("p1"), Some("p1"));
        let member = caller(&policy, "p1", &["member", "reader"]);
        let admin = caller(&policy, "p1", &["admin", "member", "reader"]);
        assert!(!allows(&policy, &member, "publicize_image", &target));
        assert!(allows(&policy, &admin, "publicize_image", &target));
    }

    #[test]
    fn member_project_may_change_its_membership_only() {
        let policy = load(None).unwrap();
        let image = image("p1", Visibility::Shared);
        let member = caller(&policy, "p2", &["member", "reader"]);
        assert!(allows(
            &policy,
            &member,
            "modify_member",
            &image_target(&image, &member, true)
        ));
        assert!(!allows(
            &policy,
            &member,
            "modify_member",
            &image_target(&image, &member, false)
        ));
        let owner = caller(&policy, "p1", &["member", "reader"]);
        assert!(!allows(
            &policy,
            &owner,
            "modify_member",
            &image_target(&image, &owner, false)
        ));
    }

    #[test]
    fn nested_target_form_is_offered_too() {
        let policy =
            Enforcer::from_defaults(&[("modify_image", "project_id:%(target.owner)s")]).unwrap();
        let image = image("p1", Visibility::Private);
        let owner = caller(&policy, "p1", &["member"]);
        assert!(allows(
            &policy,
            &owner,
            "modify_image",
            &image_target(&image, &owner, false)
        ));
    }

    #[test]
    fn private_image_is_invisible_to_other_projects() {
        let policy = load(None).unwrap();
        let image = image("p1", Visibility::Private);
        let other = caller(&policy, "p2", &["member", "reader"]);
        assert!(!is_visible(&image, &other, true));
        let shared = self::image("p1", Visibility::Shared);
        assert!(is_visible(&shared, &other, true));
        assert!(!is_visible(&shared, &other, false));
    }
}
