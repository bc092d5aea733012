//! The `security_groups`, `security_group_rules` and
//! `default_security_groups` tables.

use oxstack_store::{Any, Row};
use sqlx::any::AnyRow;
use sqlx::Executor;

use super::{flag, from_json_text, to_json_text};
use crate::model::{
    ProjectId, SecurityGroup, SecurityGroupId, SecurityGroupRule, SecurityGroupRuleId,
};

const GROUP_COLUMNS: &str =
    "id, project_id, name, description, stateful, tags, revision_number, created_at, updated_at";
const RULE_COLUMNS: &str = "id, project_id, security_group_id, direction, ethertype, protocol, \
    port_range_min, port_range_max, remote_ip_prefix, remote_group_id, description, \
    revision_number, created_at, updated_at";

fn group_from_row(row: &AnyRow) -> Result<SecurityGroup, sqlx::Error> {
    Ok(SecurityGroup {
        id: SecurityGroupId::new(row.try_get::<String, _>("id")?),
        project_id: ProjectId::new(row.try_get::<String, _>("project_id")?),
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        stateful: row.try_get::<i64, _>("stateful")? != 0,
        tags: from_json_text("tags", &row.try_get::<String, _>("tags")?)?,
        revision_number: row.try_get("revision_number")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn rule_from_row(row: &AnyRow) -> Result<SecurityGroupRule, sqlx::Error> {
    Ok(SecurityGroupRule {
        id: SecurityGroupRuleId::new(row.try_get::<String, _>("id")?),
        project_id: ProjectId::new(row.try_get::<String, _>("project_id")?),
        security_group_id: SecurityGroupId::new(row.try_get::<String, _>("security_group_id")?),
        direction: row.try_get("direction")?,
        ethertype: row.try_get("ethertype")?,
        protocol: row.try_get("protocol")?,
        port_range_min: row.try_get("port_range_min")?,
        port_range_max: row.try_get("port_range_max")?,
        remote_ip_prefix: row.try_get("remote_ip_prefix")?,
        remote_group_id: row
            .try_get::<Option<String>, _>("remote_group_id")?
            .map(SecurityGroupId::new),
        description: row.try_get("description")?,
        revision_number: row.try_get("revision_number")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

pub async fn insert_group<'c>(
    db: impl Executor<'c, Database = Any>,
    group: &SecurityGroup,
) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "INSERT INTO security_groups ({GROUP_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
    ))
    .bind(group.id.as_str())
    .bind(group.project_id.as_str())
    .bind(&group.name)
    .bind(&group.description)
    .bind(flag(group.stateful))
    .bind(to_json_text(&group.tags))
    .bind(group.revision_number)
    .bind(group.created_at)
    .bind(group.updated_at)
    .execute(db)
    .await?;
    Ok(())
}

pub async fn get_group<'c>(
    db: impl Executor<'c, Database = Any>,
    id: &SecurityGroupId,
) -> Result<Option<SecurityGroup>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT {GROUP_COLUMNS} FROM security_groups WHERE id = $1"
    ))
    .bind(id.as_str())
    .fetch_optional(db)
    .await?;
    row.as_ref().map(group_from_row).transpose()
}

/// Returns every security group, oldest first.
pub async fn list_groups<'c>(
    db: impl Executor<'c, Database = Any>,
) -> Result<Vec<SecurityGroup>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {GROUP_COLUMNS} FROM security_groups ORDER BY created_at, id"
    ))
    .fetch_all(db)
    .await?;
    rows.iter().map(group_from_row).collect()
}

/// Writes the name, description, tags and revision of `group` if its stored
/// revision is still `group.revision_number - 1`.
pub async fn update_group<'c>(
    db: impl Executor<'c, Database = Any>,
    group: &SecurityGroup,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "UPDATE security_groups SET name = $1, description = $2, stateful = $3, tags = $4, \
         revision_number = $5, updated_at = $6 WHERE id = $7 AND revision_number = $8",
    )
    .bind(&group.name)
    .bind(&group.description)
    .bind(flag(group.stateful))
    .bind(to_json_text(&group.tags))
    .bind(group.revision_number)
    .bind(group.updated_at)
    .bind(group.id.as_str())
    .bind(group.revision_number - 1)
    .execute(db)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Deletes a group, its default mark and its rules, and the rules of other groups that name
/// it as their remote group, as Neutron's cascade does.
pub async fn delete_group(
    db: &mut sqlx::AnyConnection,
    id: &SecurityGroupId,
) -> Result<bool, sqlx::Error> {
    sqlx::query("DELETE FROM default_security_groups WHERE security_group_id = $1")
        .bind(id.as_str())
        .execute(&mut *db)
        .await?;
    sqlx::query(
        "DELETE FROM security_group_rules WHERE security_group_id = $1 OR remote_group_id = $1",
    )
    .bind(id.as_str())
    .execute(&mut *db)
    .await?;
    let result = sqlx::query("DELETE FROM security_groups WHERE id = $1")
        .bind(id.as_str())
        .execute(&mut *db)
        .await?;
    Ok(result.rows_affected() == 1)
}

/// Returns the id of the `default` group of `project_id`, if it has one.
pub async fn default_group_of<'c>(
    db: impl Executor<'c, Database = Any>,
    project_id: &ProjectId,
) -> Result<Option<SecurityGroupId>, sqlx::Error> {
    let row =
        sqlx::query("SELECT security_group_id FROM default_security_groups WHERE project_id = $1")
            .bind(project_id.as_str())
            .fetch_optional(db)
            .await?;
    row.map(|row| {
        row.try_get::<String, _>("security_group_id")
            .map(SecurityGroupId::new)
    })
    .transpose()
}

/// Returns the ids of every project's default group.
pub async fn default_group_ids<'c>(
    db: impl Executor<'c, Database = Any>,
) -> Result<Vec<SecurityGroupId>, sqlx::Error> {
    let rows = sqlx::query("SELECT security_group_id FROM default_security_groups")
        .fetch_all(db)
        .await?;
    rows.iter()
        .map(|row| {
            row.try_get::<String, _>("security_group_id")
                .map(SecurityGroupId::new)
        })
        .collect()
}

/// Marks `group_id` as the default group of `project_id`. A unique
/// violation means a concurrent request made the project's default first.
pub async fn insert_default<'c>(
    db: impl Executor<'c, Database = Any>,
    project_id: &ProjectId,
    group_id: &SecurityGroupId,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO default_security_groups (project_id, security_group_id) VALUES ($1, $2)",
    )
    .bind(project_id.as_str())
    .bind(group_id.as_str())
    .execute(db)
    .await?;
    Ok(())
}

/// Inserts `rule`, whose duplicate key is `rule_key`. A unique violation
/// means an equal rule exists in its group.
pub async fn insert_rule<'c>(
    db: impl Executor<'c, Database = Any>,
    rule: &SecurityGroupRule,
    rule_key: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "INSERT INTO security_group_rules ({RULE_COLUMNS}, rule_key) VALUES \
         ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
    ))
    .bind(rule.id.as_str())
    .bind(rule.project_id.as_str())
    .bind(rule.security_group_id.as_str())
    .bind(&rule.direction)
    .bind(&rule.ethertype)
    .bind(rule.protocol.clone())
    .bind(rule.port_range_min)
    .bind(rule.port_range_max)
    .bind(rule.remote_ip_prefix.clone())
    .bind(
        rule.remote_group_id
            .as_ref()
            .map(|id| id.as_str().to_owned()),
    )
    .bind(&rule.description)
    .bind(rule.revision_number)
    .bind(rule.created_at)
    .bind(rule.updated_at)
    .bind(rule_key)
    .execute(db)
    .await?;
    Ok(())
}

/// Returns the id of the rule whose duplicate key is `rule_key`.
pub async fn rule_with_key<'c>(
    db: impl Executor<'c, Database = Any>,
    rule_key: &str,
) -> Result<Option<SecurityGroupRuleId>, sqlx::Error> {
    let row = sqlx::query("SELECT id FROM security_group_rules WHERE rule_key = $1")
        .bind(rule_key)
        .fetch_optional(db)
        .await?;
    row.map(|row| row.try_get::<String, _>("id").map(SecurityGroupRuleId::new))
        .transpose()
}

pub async fn get_rule<'c>(
    db: impl Executor<'c, Database = Any>,
    id: &SecurityGroupRuleId,
) -> Result<Option<SecurityGroupRule>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT {RULE_COLUMNS} FROM security_group_rules WHERE id = $1"
    ))
    .bind(id.as_str())
    .fetch_optional(db)
    .await?;
    row.as_ref().map(rule_from_row).transpose()
}

/// Returns every rule, oldest first.
pub async fn list_rules<'c>(
    db: impl Executor<'c, Database = Any>,
) -> Result<Vec<SecurityGroupRule>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {RULE_COLUMNS} FROM security_group_rules ORDER BY created_at, id"
    ))
    .fetch_all(db)
    .await?;
    rows.iter().map(rule_from_row).collect()
}

/// Returns the rules of one group, oldest first.
pub async fn rules_of<'c>(
    db: impl Executor<'c, Database = Any>,
    group_id: &SecurityGroupId,
) -> Result<Vec<SecurityGroupRule>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {RULE_COLUMNS} FROM security_group_rules WHERE security_group_id = $1 \
         ORDER BY created_at, id"
    ))
    .bind(group_id.as_str())
    .fetch_all(db)
    .await?;
    rows.iter().map(rule_from_row).collect()
}

pub async fn delete_rule<'c>(
    db: impl Executor<'c, Database = Any>,
    id: &SecurityGroupRuleId,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query("DELETE FROM security_group_rules WHERE id = $1")
        .bind(id.as_str())
        .execute(db)
        .await?;
    Ok(result.rows_affected() == 1)
}
