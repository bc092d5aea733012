//! Users and their password hashes.

use oxstack_core::ApiError;
use oxstack_store::{Pool, Row};
use serde_json::Value;
use sqlx::any::AnyRow;

use super::{db_error, json_column};

#[derive(Clone, Debug)]
pub struct User {
    pub id: String,
    pub name: String,
    pub domain_id: String,
    pub enabled: bool,
    pub default_project_id: Option<String>,
    /// bcrypt hash; `None` for a user who cannot log in with a password.
    pub password_hash: Option<String>,
    pub description: String,
    pub email: Option<String>,
    pub options: Value,
    /// Unknown attributes given at creation, returned as Keystone does.
    pub extra: Value,
    pub password_changed_at: Option<i64>,
}

#[derive(Clone, Debug, Default)]
pub struct UserFilter {
    pub name: Option<String>,
    pub domain_id: Option<String>,
    pub enabled: Option<bool>,
}

const COLUMNS: &str = "id, name, domain_id, enabled, default_project_id, password_hash, \
                       description, email, options, extra, password_changed_at";

fn from_row(row: &AnyRow) -> Result<User, sqlx::Error> {
    Ok(User {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        domain_id: row.try_get("domain_id")?,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        default_project_id: row.try_get("default_project_id")?,
        password_hash: row.try_get("password_hash")?,
        description: row.try_get("description")?,
        email: row.try_get("email")?,
        options: json_column(
            &row.try_get::<String, _>("options")?,
            Value::Object(Default::default()),
        ),
        extra: json_column(
            &row.try_get::<String, _>("extra")?,
            Value::Object(Default::default()),
        ),
        password_changed_at: row.try_get("password_changed_at")?,
    })
}

pub async fn get(pool: &Pool, id: &str) -> Result<Option<User>, ApiError> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE id = $1");
    let row = sqlx::query(&sql)
        .bind(id)
        .fetch_optional(pool)
        .await
        .map_err(db_error)?;
    row.as_ref().map(from_row).transpose().map_err(db_error)
}

pub async fn get_by_name(
    pool: &Pool,
    domain_id: &str,
    name: &str,
) -> Result<Option<User>, ApiError> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE domain_id = $1 AND name = $2");
    let row = sqlx::query(&sql)
        .bind(domain_id)
        .bind(name)
        .fetch_optional(pool)
        .await
        .map_err(db_error)?;
    row.as_ref().map(from_row).transpose().map_err(db_error)
}

pub async fn list(pool: &Pool, filter: &UserFilter) -> Result<Vec<User>, ApiError> {
    let mut sql = format!("SELECT {COLUMNS} FROM users WHERE 1 = 1");
    let mut binds = Vec::new();
    if let Some(name) = &filter.name {
        binds.push(name.clone());
        sql.push_str(&format!(" AND name = ${}", binds.len()));
    }
    if let Some(domain_id) = &filter.domain_id {
        binds.push(domain_id.clone());
        sql.push_str(&format!(" AND domain_id = ${}", binds.len()));
    }
    sql.push_str(" ORDER BY name, id");
    let mut query = sqlx::query(&sql);
    for value in &binds {
        query = query.bind(value);
    }
    let rows = query.fetch_all(pool).await.map_err(db_error)?;
    let users = rows
        .iter()
        .map(from_row)
        .collect::<Result<Vec<_>, _>>()
        .map_err(db_error)?;
    Ok(match filter.enabled {
        Some(enabled) => users.into_iter().filter(|u| u.enabled == enabled).collect(),
        None => users,
    })
}

pub async fn insert(pool: &Pool, user: &User) -> Result<(), ApiError> {
    sqlx::query(
        "INSERT INTO users (id, name, domain_id, enabled, default_project_id, password_hash,
                            description, email, options, extra, created_at, password_changed_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(&user.id)
    .bind(&user.name)
    .bind(&user.domain_id)
    .bind(i64::from(user.enabled))
    .bind(&user.default_project_id)
    .bind(&user.password_hash)
    .bind(&user.description)
    .bind(&user.email)
    .bind(user.options.to_string())
    .bind(user.extra.to_string())
    .bind(super::now())
    .bind(user.password_changed_at)
    .execute(pool)
    .await
    .map_err(|e| conflict_or_internal(e, &user.name, &user.domain_id))?;
    Ok(())
}

pub async fn update(pool: &Pool, user: &User) -> Result<(), ApiError> {
    sqlx::query(
        "UPDATE users SET name = $2, enabled = $3, default_project_id = $4, password_hash = $5,
                description = $6, email = $7, options = $8, extra = $9, password_changed_at = $10
         WHERE id = $1",
    )
    .bind(&user.id)
    .bind(&user.name)
    .bind(i64::from(user.enabled))
    .bind(&user.default_project_id)
    .bind(&user.password_hash)
    .bind(&user.description)
    .bind(&user.email)
    .bind(user.options.to_string())
    .bind(user.extra.to_string())
    .bind(user.password_changed_at)
    .execute(pool)
    .await
    .map_err(|e| conflict_or_internal(e, &user.name, &user.domain_id))?;
    Ok(())
}

/// Deletes a user with their assignments, memberships and credentials.
pub async fn delete(pool: &Pool, id: &str) -> Result<(), ApiError> {
    let mut tx = pool.begin().await.map_err(db_error)?;
    for sql in [
        "DELETE FROM assignments WHERE actor_id = $1",
        "DELETE FROM group_members WHERE user_id = $1",
        "DELETE FROM application_credentials WHERE user_id = $1",
        "DELETE FROM users WHERE id = $1",
    ] {
        sqlx::query(sql)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
    }
    tx.commit().await.map_err(db_error)
}

fn conflict_or_internal(error: sqlx::Error, name: &str, domain_id: &str) -> ApiError {
    if oxstack_store::is_unique_violation(&error) {
        return ApiError::conflict(format!(
            "Conflict occurred attempting to store user - Duplicate entry found with name {name} \
             at domain ID {domain_id}; choose another name."
        ));
    }
    db_error(error)
}
