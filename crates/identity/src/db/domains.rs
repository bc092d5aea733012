//! Domains: the top-level containers of projects, users and groups.

use oxstack_core::ApiError;
use oxstack_store::{Pool, Row};
use serde_json::Value;
use sqlx::any::AnyRow;

use super::{db_error, json_column};

#[derive(Clone, Debug)]
pub struct Domain {
    pub id: String,
    pub name: String,
    pub description: String,
    pub enabled: bool,
    pub tags: Value,
    pub options: Value,
}

const COLUMNS: &str = "id, name, description, enabled, tags, options";

fn from_row(row: &AnyRow) -> Result<Domain, sqlx::Error> {
    Ok(Domain {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        tags: json_column(&row.try_get::<String, _>("tags")?, Value::Array(vec![])),
        options: json_column(
            &row.try_get::<String, _>("options")?,
            Value::Object(Default::default()),
        ),
    })
}

pub async fn get(pool: &Pool, id: &str) -> Result<Option<Domain>, ApiError> {
    let sql = format!("SELECT {COLUMNS} FROM domains WHERE id = $1");
    let row = sqlx::query(&sql)
        .bind(id)
        .fetch_optional(pool)
        .await
        .map_err(db_error)?;
    row.as_ref().map(from_row).transpose().map_err(db_error)
}

pub async fn get_by_name(pool: &Pool, name: &str) -> Result<Option<Domain>, ApiError> {
    let sql = format!("SELECT {COLUMNS} FROM domains WHERE name = $1");
    let row = sqlx::query(&sql)
        .bind(name)
        .fetch_optional(pool)
        .await
        .map_err(db_error)?;
    row.as_ref().map(from_row).transpose().map_err(db_error)
}

pub async fn list(pool: &Pool) -> Result<Vec<Domain>, ApiError> {
    let sql = format!("SELECT {COLUMNS} FROM domains ORDER BY name");
    let rows = sqlx::query(&sql).fetch_all(pool).await.map_err(db_error)?;
    rows.iter()
        .map(from_row)
        .collect::<Result<_, _>>()
        .map_err(db_error)
}

pub async fn insert(pool: &Pool, domain: &Domain) -> Result<(), ApiError> {
    sqlx::query(
        "INSERT INTO domains (id, name, description, enabled, tags, options, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&domain.id)
    .bind(&domain.name)
    .bind(&domain.description)
    .bind(i64::from(domain.enabled))
    .bind(domain.tags.to_string())
    .bind(domain.options.to_string())
    .bind(super::now())
    .execute(pool)
    .await
    .map_err(|e| conflict_or_internal(e, &domain.name))?;
    Ok(())
}

pub async fn update(pool: &Pool, domain: &Domain) -> Result<(), ApiError> {
    sqlx::query(
        "UPDATE domains SET name = $2, description = $3, enabled = $4, tags = $5, options = $6
         WHERE id = $1",
    )
    .bind(&domain.id)
    .bind(&domain.name)
    .bind(&domain.description)
    .bind(i64::from(domain.enabled))
    .bind(domain.tags.to_string())
    .bind(domain.options.to_string())
    .execute(pool)
    .await
    .map_err(|e| conflict_or_internal(e, &domain.name))?;
    Ok(())
}

/// Deletes a domain with everything it owns, in one transaction: its
/// projects, users, groups and domain-specific roles, every role
/// assignment on or by them, and the quotas of its projects. Keystone
/// deletes a disabled domain's content the same way.
pub async fn delete(pool: &Pool, id: &str) -> Result<(), ApiError> {
    let mut tx = pool.begin().await.map_err(db_error)?;
    for sql in [
        "DELETE FROM assignments WHERE target_id IN (SELECT id FROM projects WHERE domain_id = $1)",
        "DELETE FROM project_quotas WHERE project_id IN (SELECT id FROM projects WHERE domain_id = $1)",
        "DELETE FROM assignments WHERE actor_id IN (SELECT id FROM users WHERE domain_id = $1)",
        "DELETE FROM assignments WHERE actor_id IN (SELECT id FROM identity_groups WHERE domain_id = $1)",
        "DELETE FROM assignments WHERE role_id IN (SELECT id FROM roles WHERE domain_id = $1)",
        "DELETE FROM assignments WHERE target_id = $1",
        "DELETE FROM implied_roles WHERE prior_role_id IN (SELECT id FROM roles WHERE domain_id = $1) \
         OR implied_role_id IN (SELECT id FROM roles WHERE domain_id = $1)",
        "DELETE FROM roles WHERE domain_id = $1",
        "DELETE FROM group_members WHERE group_id IN (SELECT id FROM identity_groups WHERE domain_id = $1)",
        "DELETE FROM identity_groups WHERE domain_id = $1",
        "DELETE FROM application_credentials WHERE user_id IN (SELECT id FROM users WHERE domain_id = $1)",
        "DELETE FROM group_members WHERE user_id IN (SELECT id FROM users WHERE domain_id = $1)",
        "DELETE FROM users WHERE domain_id = $1",
        // Children before parents keeps the parent_id reference valid.
        "UPDATE projects SET parent_id = NULL WHERE domain_id = $1",
        "DELETE FROM projects WHERE domain_id = $1",
        "DELETE FROM domains WHERE id = $1",
    ] {
        sqlx::query(sql).bind(id).execute(&mut *tx).await.map_err(db_error)?;
    }
    tx.commit().await.map_err(db_error)
}

fn conflict_or_internal(error: sqlx::Error, name: &str) -> ApiError {
    if oxstack_store::is_unique_violation(&error) {
        return ApiError::conflict(format!(
            "Conflict occurred attempting to store domain - Duplicate entry found with name {name}."
        ));
    }
    db_error(error)
}
