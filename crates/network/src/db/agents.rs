//! The `network_agents` table: one row per host's network agent, updated
//! by its heartbeats.

use oxstack_store::{Any, Row};
use sqlx::any::AnyRow;
use sqlx::Executor;

use super::{flag, from_json_text, to_json_text};
use crate::agents::{Agent, AgentConfig};

const COLUMNS: &str = "id, host, agent_type, binary_name, topic, admin_state_up, configurations, \
    started_at, heartbeat_at, created_at";

fn from_row(row: &AnyRow) -> Result<Agent, sqlx::Error> {
    let configurations: AgentConfig = from_json_text(
        "configurations",
        &row.try_get::<String, _>("configurations")?,
    )?;
    Ok(Agent {
        id: row.try_get("id")?,
        host: row.try_get("host")?,
        agent_type: row.try_get("agent_type")?,
        binary: row.try_get("binary_name")?,
        topic: row.try_get("topic")?,
        admin_state_up: row.try_get::<i64, _>("admin_state_up")? != 0,
        configurations,
        started_at: row.try_get("started_at")?,
        heartbeat_at: row.try_get("heartbeat_at")?,
        created_at: row.try_get("created_at")?,
    })
}

/// Inserts `agent`, or when its host already has a row, replaces that
/// row's configuration, start time and heartbeat. The host's row keeps its
/// id and `created_at`.
pub async fn upsert<'c>(
    db: impl Executor<'c, Database = Any>,
    agent: &Agent,
) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "INSERT INTO network_agents ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         ON CONFLICT (host) DO UPDATE SET configurations = excluded.configurations, \
         started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at"
    ))
    .bind(&agent.id)
    .bind(&agent.host)
    .bind(&agent.agent_type)
    .bind(&agent.binary)
    .bind(&agent.topic)
    .bind(flag(agent.admin_state_up))
    .bind(to_json_text(&agent.configurations))
    .bind(agent.started_at)
    .bind(agent.heartbeat_at)
    .bind(agent.created_at)
    .execute(db)
    .await?;
    Ok(())
}

pub async fn get<'c>(
    db: impl Executor<'c, Database = Any>,
    id: &str,
) -> Result<Option<Agent>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM network_agents WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(db)
    .await?;
    row.as_ref().map(from_row).transpose()
}

pub async fn get_by_host<'c>(
    db: impl Executor<'c, Database = Any>,
    host: &str,
) -> Result<Option<Agent>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM network_agents WHERE host = $1"
    ))
    .bind(host)
    .fetch_optional(db)
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// Returns every agent, by host.
pub async fn list<'c>(db: impl Executor<'c, Database = Any>) -> Result<Vec<Agent>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM network_agents ORDER BY host"
    ))
    .fetch_all(db)
    .await?;
    rows.iter().map(from_row).collect()
}

/// Sets `admin_state_up` of agent `id`. Returns false when it is gone.
pub async fn set_admin_state<'c>(
    db: impl Executor<'c, Database = Any>,
    id: &str,
    admin_state_up: bool,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query("UPDATE network_agents SET admin_state_up = $1 WHERE id = $2")
        .bind(flag(admin_state_up))
        .bind(id)
        .execute(db)
        .await?;
    Ok(result.rows_affected() == 1)
}

/// Deletes agent `id`; a running agent registers again at its next report.
pub async fn delete<'c>(
    db: impl Executor<'c, Database = Any>,
    id: &str,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query("DELETE FROM network_agents WHERE id = $1")
        .bind(id)
        .execute(db)
        .await?;
    Ok(result.rows_affected() == 1)
}
