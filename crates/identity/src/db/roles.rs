//! Roles and the implication graph between them.

use std::collections::{BTreeSet, HashMap};

use oxstack_core::ApiError;
use oxstack_store::{Pool, Row};
use serde_json::Value;
use sqlx::any::AnyRow;

use super::{db_error, json_column};

/// The stored `domain_id` of a global role, so that the unique constraint
/// on (name, domain_id) also covers global roles (SQL treats NULLs as
/// distinct).
pub const GLOBAL_DOMAIN: &str = "<<null>>";

#[derive(Clone, Debug)]
pub struct Role {
    pub id: String,
    pub name: String,
    /// `None` for a global role.
    pub domain_id: Option<String>,
    pub description: String,
    pub options: Value,
}

const COLUMNS: &str = "id, name, domain_id, description, options";

fn from_row(row: &AnyRow) -> Result<Role, sqlx::Error> {
    let domain_id: String = row.try_get("domain_id")?;
    Ok(Role {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        domain_id: (domain_id != GLOBAL_DOMAIN).then_some(domain_id),
        description: row.try_get("description")?,
        options: json_column(
            &row.try_get::<String, _>("options")?,
            Value::Object(Default::default()),
        ),
    })
}

pub async fn get(pool: &Pool, id: &str) -> Result<Option<Role>, ApiError> {
    let sql = format!("SELECT {COLUMNS} FROM roles WHERE id = $1");
    let row = sqlx::query(&sql)
        .bind(id)
        .fetch_optional(pool)
        .await
        .map_err(db_error)?;
    row.as_ref().map(from_row).transpose().map_err(db_error)
}

/// Lists roles, optionally by name and by domain (`None` lists global roles).
pub async fn list(
    pool: &Pool,
    name: Option<&str>,
    domain_id: Option<&str>,
) -> Result<Vec<Role>, ApiError> {
    let mut sql = format!("SELECT {COLUMNS} FROM roles WHERE domain_id = $1");
    if name.is_some() {
        sql.push_str(" AND name = $2");
    }
    sql.push_str(" ORDER BY name");
    let mut query = sqlx::query(&sql).bind(domain_id.unwrap_or(GLOBAL_DOMAIN));
    if let Some(name) = name {
        query = query.bind(name);
    }
    let rows = query.fetch_all(pool).await.map_err(db_error)?;
    rows.iter()
        .map(from_row)
        .collect::<Result<_, _>>()
        .map_err(db_error)
}

/// Returns every role by id, for rendering names.
pub async fn all_by_id(pool: &Pool) -> Result<HashMap<String, Role>, ApiError> {
    let sql = format!("SELECT {COLUMNS} FROM roles");
    let rows = sqlx::query(&sql).fetch_all(pool).await.map_err(db_error)?;
    let roles = rows
        .iter()
        .map(from_row)
        .collect::<Result<Vec<_>, _>>()
        .map_err(db_error)?;
    Ok(roles.into_iter().map(|r| (r.id.clone(), r)).collect())
}

pub async fn insert(pool: &Pool, role: &Role) -> Result<(), ApiError> {
    sqlx::query(
        "INSERT INTO roles (id, name, domain_id, description, options, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&role.id)
    .bind(&role.name)
    .bind(role.domain_id.as_deref().unwrap_or(GLOBAL_DOMAIN))
    .bind(&role.description)
    .bind(role.options.to_string())
    .bind(super::now())
    .execute(pool)
    .await
    .map_err(|e| conflict_or_internal(e, &role.name))?;
    Ok(())
}

pub async fn update(pool: &Pool, role: &Role) -> Result<(), ApiError> {
    sqlx::query("UPDATE roles SET name = $2, description = $3, options = $4 WHERE id = $1")
        .bind(&role.id)
        .bind(&role.name)
        .bind(&role.description)
        .bind(role.options.to_string())
        .execute(pool)
        .await
        .map_err(|e| conflict_or_internal(e, &role.name))?;
    Ok(())
}

pub async fn delete(pool: &Pool, id: &str) -> Result<(), ApiError> {
    let mut tx = pool.begin().await.map_err(db_error)?;
    for sql in [
        "DELETE FROM assignments WHERE role_id = $1",
        "DELETE FROM implied_roles WHERE prior_role_id = $1 OR implied_role_id = $1",
        "DELETE FROM roles WHERE id = $1",
    ] {
        sqlx::query(sql)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
    }
    tx.commit().await.map_err(db_error)
}

/// Returns all implication edges, prior → implied.
pub async fn implications(pool: &Pool) -> Result<Vec<(String, String)>, ApiError> {
    let rows = sqlx::query("SELECT prior_role_id, implied_role_id FROM implied_roles")
        .fetch_all(pool)
        .await
        .map_err(db_error)?;
    rows.iter()
        .map(|r| Ok((r.try_get("prior_role_id")?, r.try_get("implied_role_id")?)))
        .collect::<Result<_, sqlx::Error>>()
        .map_err(db_error)
}

pub async fn add_implication(pool: &Pool, prior: &str, implied: &str) -> Result<(), ApiError> {
    let result =
        sqlx::query("INSERT INTO implied_roles (prior_role_id, implied_role_id) VALUES ($1, $2)")
            .bind(prior)
            .bind(implied)
            .execute(pool)
            .await;
    match result {
        Ok(_) => Ok(()),
        Err(e) if oxstack_store::is_unique_violation(&e) => Ok(()),
        Err(e) => Err(db_error(e)),
    }
}

pub async fn remove_implication(pool: &Pool, prior: &str, implied: &str) -> Result<bool, ApiError> {
    let result =
        sqlx::query("DELETE FROM implied_roles WHERE prior_role_id = $1 AND implied_role_id = $2")
            .bind(prior)
            .bind(implied)
            .execute(pool)
            .await
            .map_err(db_error)?;
    Ok(result.rows_affected() > 0)
}

/// Expands `role_ids` with every role they imply, transitively.
pub fn expand_implied(role_ids: &BTreeSet<String>, edges: &[(String, String)]) -> BTreeSet<String> {
    let mut all = role_ids.clone();
    let mut frontier: Vec<String> = role_ids.iter().cloned().collect();
    while let Some(role) = frontier.pop() {
        for (prior, implied) in edges {
            if *prior == role && all.insert(implied.clone()) {
                frontier.push(implied.clone());
            }
        }
    }
    all
}

fn conflict_or_internal(error: sqlx::Error, name: &str) -> ApiError {
    if oxstack_store::is_unique_violation(&error) {
        return ApiError::conflict(format!(
            "Conflict occurred attempting to store role - Duplicate entry found with name {name}."
        ));
    }
    db_error(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn implied_roles_expand_transitively_and_stop_on_cycles() {
        let edges = vec![
            ("admin".to_owned(), "member".to_owned()),
            ("member".to_owned(), "reader".to_owned()),
            ("reader".to_owned(), "admin".to_owned()),
        ];
        let start: BTreeSet<String> = ["member".to_owned()].into();
        let all = expand_implied(&start, &edges);
        assert_eq!(all.len(), 3);
    }
}
