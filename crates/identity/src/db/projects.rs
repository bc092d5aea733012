//! Projects, with their place in the hierarchy (`parent_id`).

use oxstack_core::ApiError;
use oxstack_store::{Pool, Row};
use serde_json::Value;
use sqlx::any::AnyRow;

use super::{db_error, json_column};

#[derive(Clone, Debug)]
pub struct Project {
    pub id: String,
    pub name: String,
    pub domain_id: String,
    /// The parent project; `None` for a project directly under its domain.
    pub parent_id: Option<String>,
    pub description: String,
    pub enabled: bool,
    pub tags: Value,
    pub options: Value,
}

/// Filters of `GET /v3/projects`.
#[derive(Clone, Debug, Default)]
pub struct ProjectFilter {
    pub name: Option<String>,
    pub domain_id: Option<String>,
    pub parent_id: Option<String>,
    pub enabled: Option<bool>,
    /// Only these ids (the projects a non-admin may see).
    pub ids: Option<Vec<String>>,
}

const COLUMNS: &str = "id, name, domain_id, parent_id, description, enabled, tags, options";

fn from_row(row: &AnyRow) -> Result<Project, sqlx::Error> {
    Ok(Project {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        domain_id: row.try_get("domain_id")?,
        parent_id: row.try_get("parent_id")?,
        description: row.try_get("description")?,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        tags: json_column(&row.try_get::<String, _>("tags")?, Value::Array(vec![])),
        options: json_column(
            &row.try_get::<String, _>("options")?,
            Value::Object(Default::default()),
        ),
    })
}

pub async fn get(pool: &Pool, id: &str) -> Result<Option<Project>, ApiError> {
    let sql = format!("SELECT {COLUMNS} FROM projects WHERE id = $1");
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
) -> Result<Option<Project>, ApiError> {
    let sql = format!("SELECT {COLUMNS} FROM projects WHERE domain_id = $1 AND name = $2");
    let row = sqlx::query(&sql)
        .bind(domain_id)
        .bind(name)
        .fetch_optional(pool)
        .await
        .map_err(db_error)?;
    row.as_ref().map(from_row).transpose().map_err(db_error)
}

pub async fn list(pool: &Pool, filter: &ProjectFilter) -> Result<Vec<Project>, ApiError> {
    let mut sql = format!("SELECT {COLUMNS} FROM projects WHERE 1 = 1");
    let mut binds: Vec<String> = Vec::new();
    let mut push = |sql: &mut String, column: &str, value: &str| {
        binds.push(value.to_owned());
        sql.push_str(&format!(" AND {column} = ${}", binds.len()));
    };
    if let Some(name) = &filter.name {
        push(&mut sql, "name", name);
    }
    if let Some(domain_id) = &filter.domain_id {
        push(&mut sql, "domain_id", domain_id);
    }
    if let Some(parent_id) = &filter.parent_id {
        // Top-level projects show their domain as parent.
        binds.push(parent_id.clone());
        let n = binds.len();
        sql.push_str(&format!(
            " AND (parent_id = ${n} OR (parent_id IS NULL AND domain_id = ${n}))"
        ));
    }
    if let Some(ids) = &filter.ids {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let first = binds.len() + 1;
        binds.extend(ids.iter().cloned());
        sql.push_str(&format!(
            " AND id IN ({})",
            super::placeholders(first, ids.len())
        ));
    }
    sql.push_str(" ORDER BY name, id");
    let mut query = sqlx::query(&sql);
    for value in &binds {
        query = query.bind(value);
    }
    let rows = query.fetch_all(pool).await.map_err(db_error)?;
    let projects = rows
        .iter()
        .map(from_row)
        .collect::<Result<Vec<_>, _>>()
        .map_err(db_error)?;
    Ok(match filter.enabled {
        Some(enabled) => projects
            .into_iter()
            .filter(|p| p.enabled == enabled)
            .collect(),
        None => projects,
    })
}

pub async fn insert(pool: &Pool, project: &Project) -> Result<(), ApiError> {
    sqlx::query(
        "INSERT INTO projects (id, name, domain_id, parent_id, description, enabled, tags, options, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&project.id)
    .bind(&project.name)
    .bind(&project.domain_id)
    .bind(&project.parent_id)
    .bind(&project.description)
    .bind(i64::from(project.enabled))
    .bind(project.tags.to_string())
    .bind(project.options.to_string())
    .bind(super::now())
    .execute(pool)
    .await
    .map_err(|e| conflict_or_internal(e, &project.name))?;
    Ok(())
}

pub async fn update(pool: &Pool, project: &Project) -> Result<(), ApiError> {
    sqlx::query(
        "UPDATE projects SET name = $2, description = $3, enabled = $4, tags = $5, options = $6
         WHERE id = $1",
    )
    .bind(&project.id)
    .bind(&project.name)
    .bind(&project.description)
    .bind(i64::from(project.enabled))
    .bind(project.tags.to_string())
    .bind(project.options.to_string())
    .execute(pool)
    .await
    .map_err(|e| conflict_or_internal(e, &project.name))?;
    Ok(())
}

/// Deletes a project and the role assignments on it.
pub async fn delete(pool: &Pool, id: &str) -> Result<(), ApiError> {
    let mut tx = pool.begin().await.map_err(db_error)?;
    sqlx::query("DELETE FROM assignments WHERE target_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
    sqlx::query("DELETE FROM project_quotas WHERE project_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
    sqlx::query("DELETE FROM projects WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
    tx.commit().await.map_err(db_error)
}

pub async fn has_children(pool: &Pool, id: &str) -> Result<bool, ApiError> {
    let row = sqlx::query("SELECT id FROM projects WHERE parent_id = $1 LIMIT 1")
        .bind(id)
        .fetch_optional(pool)
        .await
        .map_err(db_error)?;
    Ok(row.is_some())
}

/// Returns the ids of the project's ancestors, nearest first (not including
/// the domain). Bounded, so a corrupt cycle cannot loop forever.
pub async fn ancestors(pool: &Pool, project: &Project) -> Result<Vec<String>, ApiError> {
    let mut chain = Vec::new();
    let mut next = project.parent_id.clone();
    while let Some(id) = next {
        if chain.len() >= MAX_DEPTH || chain.contains(&id) {
            break;
        }
        let parent = get(pool, &id).await?;
        chain.push(id);
        next = parent.and_then(|p| p.parent_id);
    }
    Ok(chain)
}

/// Keystone's default `max_project_tree_depth`.
pub const MAX_DEPTH: usize = 5;

fn conflict_or_internal(error: sqlx::Error, name: &str) -> ApiError {
    if oxstack_store::is_unique_violation(&error) {
        return ApiError::conflict(format!(
            "Conflict occurred attempting to store project - it is not permitted to have two \
             projects with the same name in the same domain : {name}."
        ));
    }
    db_error(error)
}
