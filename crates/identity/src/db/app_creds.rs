//! Application credentials: a user's delegated, project-bound secrets with
//! a subset of the user's roles.

use oxstack_core::ApiError;
use oxstack_store::{Pool, Row};
use sqlx::any::AnyRow;

use super::db_error;

#[derive(Clone, Debug)]
pub struct ApplicationCredential {
    pub id: String,
    pub name: String,
    pub user_id: String,
    pub project_id: String,
    /// bcrypt hash of the secret.
    pub secret_hash: String,
    pub description: String,
    /// Microseconds since the unix epoch, the precision Keystone keeps and
    /// returns; `None` never expires.
    pub expires_at_micros: Option<i64>,
    pub unrestricted: bool,
    pub role_ids: Vec<String>,
}

const COLUMNS: &str =
    "id, name, user_id, project_id, secret_hash, description, expires_at, unrestricted, roles";

fn from_row(row: &AnyRow) -> Result<ApplicationCredential, sqlx::Error> {
    let roles: String = row.try_get("roles")?;
    Ok(ApplicationCredential {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        user_id: row.try_get("user_id")?,
        project_id: row.try_get("project_id")?,
        secret_hash: row.try_get("secret_hash")?,
        description: row.try_get("description")?,
        expires_at_micros: row.try_get("expires_at")?,
        unrestricted: row.try_get::<i64, _>("unrestricted")? != 0,
        role_ids: serde_json::from_str(&roles).unwrap_or_default(),
    })
}

pub async fn get(pool: &Pool, id: &str) -> Result<Option<ApplicationCredential>, ApiError> {
    let sql = format!("SELECT {COLUMNS} FROM application_credentials WHERE id = $1");
    let row = sqlx::query(&sql)
        .bind(id)
        .fetch_optional(pool)
        .await
        .map_err(db_error)?;
    row.as_ref().map(from_row).transpose().map_err(db_error)
}

pub async fn get_by_name(
    pool: &Pool,
    user_id: &str,
    name: &str,
) -> Result<Option<ApplicationCredential>, ApiError> {
    let sql =
        format!("SELECT {COLUMNS} FROM application_credentials WHERE user_id = $1 AND name = $2");
    let row = sqlx::query(&sql)
        .bind(user_id)
        .bind(name)
        .fetch_optional(pool)
        .await
        .map_err(db_error)?;
    row.as_ref().map(from_row).transpose().map_err(db_error)
}

pub async fn list_for_user(
    pool: &Pool,
    user_id: &str,
) -> Result<Vec<ApplicationCredential>, ApiError> {
    let sql =
        format!("SELECT {COLUMNS} FROM application_credentials WHERE user_id = $1 ORDER BY name");
    let rows = sqlx::query(&sql)
        .bind(user_id)
        .fetch_all(pool)
        .await
        .map_err(db_error)?;
    rows.iter()
        .map(from_row)
        .collect::<Result<_, _>>()
        .map_err(db_error)
}

pub async fn insert(pool: &Pool, credential: &ApplicationCredential) -> Result<(), ApiError> {
    let result = sqlx::query(
        "INSERT INTO application_credentials
            (id, name, user_id, project_id, secret_hash, description, expires_at, unrestricted, roles, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&credential.id)
    .bind(&credential.name)
    .bind(&credential.user_id)
    .bind(&credential.project_id)
    .bind(&credential.secret_hash)
    .bind(&credential.description)
    .bind(credential.expires_at_micros)
    .bind(i64::from(credential.unrestricted))
    .bind(serde_json::to_string(&credential.role_ids).unwrap_or_else(|_| "[]".into()))
    .bind(super::now())
    .execute(pool)
    .await;
    match result {
        Ok(_) => Ok(()),
        Err(e) if oxstack_store::is_unique_violation(&e) => Err(ApiError::conflict(format!(
            "Conflict occurred attempting to store application_credential - Duplicate entry found with name {}.",
            credential.name
        ))),
        Err(e) => Err(db_error(e)),
    }
}

pub async fn delete(pool: &Pool, id: &str) -> Result<(), ApiError> {
    sqlx::query("DELETE FROM application_credentials WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await
        .map_err(db_error)?;
    Ok(())
}
