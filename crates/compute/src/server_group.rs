//! Server groups: a policy (affinity, anti-affinity and their soft forms)
//! that the scheduler applies to the servers created with the group's
//! `group` hint, and the group's members. Members are servers that are not
//! deleted, so a deleted server leaves its group without a separate step.

use std::collections::BTreeMap;

use oxstack_store::Pool;
use serde_json::Value;
use sqlx::Row;

/// The policies Nova accepts. The soft ones exist from microversion 2.15.
pub const POLICIES: &[&str] = &[
    "affinity",
    "anti-affinity",
    "soft-affinity",
    "soft-anti-affinity",
];

/// A server group.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerGroup {
    pub id: String,
    pub name: String,
    pub project_id: String,
    pub user_id: String,
    pub policy: String,
    /// Only `max_server_per_host` (an integer of at least 1, for
    /// `anti-affinity`) exists.
    pub rules: BTreeMap<String, Value>,
    /// Unix seconds.
    pub created_at: i64,
}

impl ServerGroup {
    /// Returns how many members one host may hold under `anti-affinity`:
    /// the `max_server_per_host` rule, 1 without it.
    pub fn max_server_per_host(&self) -> i64 {
        self.rules
            .get("max_server_per_host")
            .and_then(Value::as_i64)
            .unwrap_or(1)
    }
}

const COLUMNS: &str = "id, name, project_id, user_id, policy, rules, created_at";

fn decode(row: &sqlx::any::AnyRow) -> Result<ServerGroup, sqlx::Error> {
    let rules: String = row.try_get("rules")?;
    Ok(ServerGroup {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        project_id: row.try_get("project_id")?,
        user_id: row.try_get("user_id")?,
        policy: row.try_get("policy")?,
        rules: serde_json::from_str(&rules).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        created_at: row.try_get("created_at")?,
    })
}

/// Stores a new group.
pub async fn insert<'c>(
    db: impl sqlx::Executor<'c, Database = sqlx::Any>,
    group: &ServerGroup,
) -> Result<(), sqlx::Error> {
    let rules = serde_json::to_string(&group.rules).expect("a map of JSON values serialises");
    sqlx::query(&format!(
        "INSERT INTO compute_server_groups ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
    ))
    .bind(&group.id)
    .bind(&group.name)
    .bind(&group.project_id)
    .bind(&group.user_id)
    .bind(&group.policy)
    .bind(rules)
    .bind(group.created_at)
    .execute(db)
    .await?;
    Ok(())
}

/// Returns group `id`.
pub async fn get(db: &Pool, id: &str) -> Result<Option<ServerGroup>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM compute_server_groups WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(db)
    .await?;
    row.as_ref().map(decode).transpose()
}

/// Returns the groups of `project_id`, or of every project with `None`,
/// oldest first.
pub async fn list(db: &Pool, project_id: Option<&str>) -> Result<Vec<ServerGroup>, sqlx::Error> {
    let rows = match project_id {
        Some(project) => {
            sqlx::query(&format!(
                "SELECT {COLUMNS} FROM compute_server_groups WHERE project_id = $1 ORDER BY created_at, id"
            ))
            .bind(project)
            .fetch_all(db)
            .await?
        }
        None => {
            sqlx::query(&format!(
                "SELECT {COLUMNS} FROM compute_server_groups ORDER BY created_at, id"
            ))
            .fetch_all(db)
            .await?
        }
    };
    rows.iter().map(decode).collect()
}

/// Deletes group `id` and its member rows; returns whether it existed.
pub async fn delete(db: &Pool, id: &str) -> Result<bool, sqlx::Error> {
    let mut transaction = db.begin().await?;
    sqlx::query("DELETE FROM compute_server_group_members WHERE group_id = $1")
        .bind(id)
        .execute(&mut *transaction)
        .await?;
    let deleted = sqlx::query("DELETE FROM compute_server_groups WHERE id = $1")
        .bind(id)
        .execute(&mut *transaction)
        .await?
        .rows_affected()
        > 0;
    transaction.commit().await?;
    Ok(deleted)
}

/// Counts the groups of `project_id` (of `user_id` within it, when given),
/// for the `server_groups` quota.
pub async fn count<'c>(
    db: impl sqlx::Executor<'c, Database = sqlx::Any>,
    project_id: &str,
    user_id: Option<&str>,
) -> Result<i64, sqlx::Error> {
    let (count,): (i64,) =
        match user_id {
            Some(user) => sqlx::query_as(
                "SELECT COUNT(*) FROM compute_server_groups WHERE project_id = $1 AND user_id = $2",
            )
            .bind(project_id)
            .bind(user)
            .fetch_one(db)
            .await?,
            None => {
                sqlx::query_as("SELECT COUNT(*) FROM compute_server_groups WHERE project_id = $1")
                    .bind(project_id)
                    .fetch_one(db)
                    .await?
            }
        };
    Ok(count)
}

/// Returns the ids of the servers in group `id` that are not deleted,
/// oldest first.
pub async fn members<'c>(
    db: impl sqlx::Executor<'c, Database = sqlx::Any>,
    id: &str,
) -> Result<Vec<String>, sqlx::Error> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT m.server_id FROM compute_server_group_members m \
         JOIN compute_servers s ON s.id = m.server_id \
         WHERE m.group_id = $1 AND s.deleted = 0 ORDER BY s.created_at, s.id",
    )
    .bind(id)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|(server,)| server).collect())
}

/// Adds server `server_id` to group `group_id`.
pub async fn add_member<'c>(
    db: impl sqlx::Executor<'c, Database = sqlx::Any>,
    group_id: &str,
    server_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO compute_server_group_members (server_id, group_id) VALUES ($1, $2)")
        .bind(server_id)
        .bind(group_id)
        .execute(db)
        .await?;
    Ok(())
}

/// Returns the hosts of the members of group `id` other than `except`,
/// one entry per member that has a host: the scheduler's group filters
/// count them.
pub async fn member_hosts(db: &Pool, id: &str, except: &str) -> Result<Vec<String>, sqlx::Error> {
    let rows: Vec<(Option<String>,)> = sqlx::query_as(
        "SELECT s.host FROM compute_server_group_members m \
         JOIN compute_servers s ON s.id = m.server_id \
         WHERE m.group_id = $1 AND s.deleted = 0 AND s.id <> $2",
    )
    .bind(id)
    .bind(except)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().filter_map(|(host,)| host).collect())
}
