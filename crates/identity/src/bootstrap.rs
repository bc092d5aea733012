//! First-start setup, safe to repeat: the `Default` domain, the `admin`,
//! `member` and `reader` roles with their implications, the admin project
//! and user, and the catalog entries of the services this process serves.
//! Every step checks what exists first, so a second start duplicates
//! nothing.

use oxstack_core::ApiError;
use serde_json::json;

use crate::db::assignments::{Assignment, AssignmentType, SYSTEM_TARGET};
use crate::db::{assignments, catalog, domains, projects, roles, users};
use crate::Identity;

pub const DEFAULT_DOMAIN_ID: &str = "default";
pub const ADMIN_NAME: &str = "admin";

/// One service to list in the catalog.
#[derive(Clone, Debug)]
pub struct CatalogEntry {
    pub service_type: &'static str,
    pub name: &'static str,
    /// The URL of all three interfaces.
    pub url: String,
}

/// The result of bootstrap: what it found or created.
#[derive(Clone, Debug)]
pub struct Bootstrapped {
    pub admin_user_id: String,
    pub admin_project_id: String,
    /// True on the first start of this data directory.
    pub created: bool,
}

/// Ensures the base identity data exists. `admin_password` is set on the
/// admin user when the user is created, and replaces the stored password
/// when `reset_password` is true.
pub async fn run(
    identity: &Identity,
    admin_password: &str,
    reset_password: bool,
    services: &[CatalogEntry],
) -> Result<Bootstrapped, ApiError> {
    let pool = identity.pool();
    if domains::get(pool, DEFAULT_DOMAIN_ID).await?.is_none() {
        domains::insert(
            pool,
            &domains::Domain {
                id: DEFAULT_DOMAIN_ID.into(),
                name: "Default".into(),
                description: "The default domain".into(),
                enabled: true,
                tags: json!([]),
                options: json!({}),
            },
        )
        .await?;
    }

    let admin_role = ensure_role(identity, "admin").await?;
    let member_role = ensure_role(identity, "member").await?;
    let reader_role = ensure_role(identity, "reader").await?;
    let manager_role = ensure_role(identity, "manager").await?;
    ensure_role(identity, "service").await?;
    roles::add_implication(pool, &admin_role, &member_role).await?;
    roles::add_implication(pool, &member_role, &reader_role).await?;
    roles::add_implication(pool, &manager_role, &member_role).await?;

    let project_id = match projects::get_by_name(pool, DEFAULT_DOMAIN_ID, ADMIN_NAME).await? {
        Some(project) => project.id,
        None => {
            let project = projects::Project {
                id: crate::db::new_id(),
                name: ADMIN_NAME.into(),
                domain_id: DEFAULT_DOMAIN_ID.into(),
                parent_id: None,
                description: "Bootstrap project for initializing the cloud.".into(),
                enabled: true,
                tags: json!([]),
                options: json!({}),
            };
            projects::insert(pool, &project).await?;
            project.id
        }
    };

    let (user_id, created) = match users::get_by_name(pool, DEFAULT_DOMAIN_ID, ADMIN_NAME).await? {
        Some(mut user) => {
            if reset_password {
                user.password_hash = Some(identity.passwords.hash(admin_password).await?);
                user.password_changed_at = Some(crate::db::now());
                user.enabled = true;
                users::update(pool, &user).await?;
            }
            (user.id, false)
        }
        None => {
            let user = users::User {
                id: crate::db::new_id(),
                name: ADMIN_NAME.into(),
                domain_id: DEFAULT_DOMAIN_ID.into(),
                enabled: true,
                default_project_id: Some(project_id.clone()),
                password_hash: Some(identity.passwords.hash(admin_password).await?),
                description: String::new(),
                email: None,
                options: json!({}),
                extra: json!({}),
                password_changed_at: Some(crate::db::now()),
            };
            users::insert(pool, &user).await?;
            (user.id, true)
        }
    };

    for (kind, target) in [
        (AssignmentType::UserProject, project_id.as_str()),
        (AssignmentType::UserSystem, SYSTEM_TARGET),
    ] {
        let grant = Assignment {
            kind,
            actor_id: user_id.clone(),
            target_id: target.to_owned(),
            role_id: admin_role.clone(),
            inherited: false,
        };
        assignments::grant(pool, &grant).await?;
    }

    for entry in services {
        let interfaces: Vec<(&str, String)> = ["public", "internal", "admin"]
            .iter()
            .map(|i| (*i, entry.url.clone()))
            .collect();
        catalog::ensure_service(
            pool,
            entry.service_type,
            entry.name,
            &identity.config.region,
            &interfaces,
        )
        .await?;
    }

    if created {
        tracing::info!(user_id = %user_id, project_id = %project_id, "bootstrapped identity");
    }
    Ok(Bootstrapped {
        admin_user_id: user_id,
        admin_project_id: project_id,
        created,
    })
}

async fn ensure_role(identity: &Identity, name: &str) -> Result<String, ApiError> {
    let pool = identity.pool();
    if let Some(role) = roles::list(pool, Some(name), None)
        .await?
        .into_iter()
        .next()
    {
        return Ok(role.id);
    }
    let role = roles::Role {
        id: crate::db::new_id(),
        name: name.into(),
        domain_id: None,
        description: String::new(),
        options: json!({}),
    };
    roles::insert(pool, &role).await?;
    Ok(role.id)
}
