//! Groups of users and their membership.

use oxstack_core::ApiError;
use oxstack_store::{Pool, Row};
use sqlx::any::AnyRow;

use super::db_error;

#[derive(Clone, Debug)]
pub struct Group {
    pub id: String,
    pub name: String,
    pub domain_id: String,
    pub description: String,
}

/// Filters of `GET /v3/groups`.
#[derive(Clone, Debug, Default)]
pub struct GroupFilter {
    pub name: Option<String>,
    pub domain_id: Option<String>,
}

const COLUMNS: &str = "id, name, domain_id, description";

fn from_row(row: &AnyRow) -> Result<Group, sqlx::Error> {
    Ok(Group {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        domain_id: row.try_get("domain_id")?,
        description: row.try_get("description")?,
    })
}

pub async fn get(pool: &Pool, id: &str) -> Result<Option<Group>, ApiError> {
    let sql = format!("SELECT {COLUMNS} FROM identity_groups WHERE id = $1");
    let row = sqlx::query(&sql)
        .bind(id)
        .fetch_optional(pool)
        .await
        .map_err(db_error)?;
    row.as_ref().map(from_row).transpose().map_err(db_error)
}

pub async fn list(pool: &Pool, filter: &GroupFilter) -> Result<Vec<Group>, ApiError> {
    let mut sql = format!("SELECT {COLUMNS} FROM identity_groups WHERE 1 = 1");
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
    rows.iter()
        .map(from_row)
        .collect::<Result<_, _>>()
        .map_err(db_error)
}

pub async fn insert(pool: &Pool, group: &Group) -> Result<(), ApiError> {
    sqlx::query(
        "INSERT INTO identity_groups (id, name, domain_id, description, created_at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&group.id)
    .bind(&group.name)
    .bind(&group.domain_id)
    .bind(&group.description)
    .bind(super::now())
    .execute(pool)
    .await
    .map_err(|e| conflict_or_internal(e, &group.name))?;
    Ok(())
}

pub async fn update(pool: &Pool, group: &Group) -> Result<(), ApiError> {
    sqlx::query("UPDATE identity_groups SET name = $2, description = $3 WHERE id = $1")
        .bind(&group.id)
        .bind(&group.name)
        .bind(&group.description)
        .execute(pool)
        .await
        .map_err(|e| conflict_or_internal(e, &group.name))?;
    Ok(())
}

/// Deletes a group with its memberships and the role assignments it holds.
pub async fn delete(pool: &Pool, id: &str) -> Result<(), ApiError> {
    let mut tx = pool.begin().await.map_err(db_error)?;
    // Users and groups share the actor column, so restrict by type: a user
    // with the same id keeps their assignments.
    for sql in [
        "DELETE FROM assignments WHERE actor_id = $1 AND type IN ('GroupProject', 'GroupDomain', 'GroupSystem')",
        "DELETE FROM group_members WHERE group_id = $1",
        "DELETE FROM identity_groups WHERE id = $1",
    ] {
        sqlx::query(sql).bind(id).execute(&mut *tx).await.map_err(db_error)?;
    }
    tx.commit().await.map_err(db_error)
}

/// Adds a user to a group; adding a member again is not an error.
pub async fn add_member(pool: &Pool, group_id: &str, user_id: &str) -> Result<(), ApiError> {
    let result = sqlx::query("INSERT INTO group_members (group_id, user_id) VALUES ($1, $2)")
        .bind(group_id)
        .bind(user_id)
        .execute(pool)
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(e) if oxstack_store::is_unique_violation(&e) => Ok(()),
        Err(e) => Err(db_error(e)),
    }
}

/// Removes a user from a group; returns false when they were not a member.
pub async fn remove_member(pool: &Pool, group_id: &str, user_id: &str) -> Result<bool, ApiError> {
    let result = sqlx::query("DELETE FROM group_members WHERE group_id = $1 AND user_id = $2")
        .bind(group_id)
        .bind(user_id)
        .execute(pool)
        .await
        .map_err(db_error)?;
    Ok(result.rows_affected() > 0)
}

pub async fn is_member(pool: &Pool, group_id: &str, user_id: &str) -> Result<bool, ApiError> {
    let row = sqlx::query("SELECT user_id FROM group_members WHERE group_id = $1 AND user_id = $2")
        .bind(group_id)
        .bind(user_id)
        .fetch_optional(pool)
        .await
        .map_err(db_error)?;
    Ok(row.is_some())
}

/// Returns the ids of the members of `group_id`.
pub async fn user_ids_in_group(pool: &Pool, group_id: &str) -> Result<Vec<String>, ApiError> {
    let rows =
        sqlx::query("SELECT user_id FROM group_members WHERE group_id = $1 ORDER BY user_id")
            .bind(group_id)
            .fetch_all(pool)
            .await
            .map_err(db_error)?;
    rows.iter()
        .map(|r| r.try_get("user_id"))
        .collect::<Result<_, _>>()
        .map_err(db_error)
}

/// Returns the ids of the groups `user_id` belongs to.
pub async fn group_ids_of_user(pool: &Pool, user_id: &str) -> Result<Vec<String>, ApiError> {
    let rows =
        sqlx::query("SELECT group_id FROM group_members WHERE user_id = $1 ORDER BY group_id")
            .bind(user_id)
            .fetch_all(pool)
            .await
            .map_err(db_error)?;
    rows.iter()
        .map(|r| r.try_get("group_id"))
        .collect::<Result<_, _>>()
        .map_err(db_error)
}

/// Returns the groups `user_id` belongs to, by name.
pub async fn groups_of_user(pool: &Pool, user_id: &str) -> Result<Vec<Group>, ApiError> {
    let sql = "SELECT g.id, g.name, g.domain_id, g.description FROM identity_groups g
               JOIN group_members m ON m.group_id = g.id
               WHERE m.user_id = $1 ORDER BY g.name, g.id";
    let rows = sqlx::query(sql)
        .bind(user_id)
        .fetch_all(pool)
        .await
        .map_err(db_error)?;
    rows.iter()
        .map(from_row)
        .collect::<Result<_, _>>()
        .map_err(db_error)
}

/// Returns every membership as (group id, user id) pairs, for expanding
/// group assignments into user assignments.
pub async fn memberships(pool: &Pool) -> Result<Vec<(String, String)>, ApiError> {
    let rows =
        sqlx::query("SELECT group_id, user_id FROM group_members ORDER BY group_id, user_id")
            .fetch_all(pool)
            .await
            .map_err(db_error)?;
    rows.iter()
        .map(|r| Ok((r.try_get("group_id")?, r.try_get("user_id")?)))
        .collect::<Result<_, sqlx::Error>>()
        .map_err(db_error)
}

fn conflict_or_internal(error: sqlx::Error, name: &str) -> ApiError {
    if oxstack_store::is_unique_violation(&error) {
        return ApiError::conflict(format!(
            "Conflict occurred attempting to store group - Duplicate entry found with name {name}."
        ));
    }
    db_error(error)
}
