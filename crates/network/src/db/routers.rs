//! The `routers` table. Interfaces and the gateway's addresses live in
//! `ports`, found by `device_id`.

use oxstack_store::{Any, Row};
use sqlx::any::AnyRow;
use sqlx::Executor;

use super::{flag, from_json_text, to_json_text};
use crate::model::{NetworkId, PortId, ProjectId, Router, RouterId};

const COLUMNS: &str = "id, project_id, name, description, admin_state_up, gateway_network_id, \
    gateway_port_id, enable_snat, tags, revision_number, created_at, updated_at";

fn from_row(row: &AnyRow) -> Result<Router, sqlx::Error> {
    let gateway_network: Option<String> = row.try_get("gateway_network_id")?;
    let gateway_port: Option<String> = row.try_get("gateway_port_id")?;
    let gateway = match (gateway_network, gateway_port) {
        (Some(network), Some(port)) => Some((NetworkId::new(network), PortId::new(port))),
        _ => None,
    };
    Ok(Router {
        id: RouterId::new(row.try_get::<String, _>("id")?),
        project_id: ProjectId::new(row.try_get::<String, _>("project_id")?),
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        admin_state_up: row.try_get::<i64, _>("admin_state_up")? != 0,
        gateway,
        enable_snat: row.try_get::<i64, _>("enable_snat")? != 0,
        tags: from_json_text("tags", &row.try_get::<String, _>("tags")?)?,
        revision_number: row.try_get("revision_number")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

pub async fn insert<'c>(
    db: impl Executor<'c, Database = Any>,
    router: &Router,
) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "INSERT INTO routers ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
    ))
    .bind(router.id.as_str())
    .bind(router.project_id.as_str())
    .bind(&router.name)
    .bind(&router.description)
    .bind(flag(router.admin_state_up))
    .bind(router.gateway.as_ref().map(|(n, _)| n.as_str().to_owned()))
    .bind(router.gateway.as_ref().map(|(_, p)| p.as_str().to_owned()))
    .bind(flag(router.enable_snat))
    .bind(to_json_text(&router.tags))
    .bind(router.revision_number)
    .bind(router.created_at)
    .bind(router.updated_at)
    .execute(db)
    .await?;
    Ok(())
}

pub async fn get<'c>(
    db: impl Executor<'c, Database = Any>,
    id: &RouterId,
) -> Result<Option<Router>, sqlx::Error> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM routers WHERE id = $1"))
        .bind(id.as_str())
        .fetch_optional(db)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Returns every router, oldest first.
pub async fn list<'c>(db: impl Executor<'c, Database = Any>) -> Result<Vec<Router>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM routers ORDER BY created_at, id"
    ))
    .fetch_all(db)
    .await?;
    rows.iter().map(from_row).collect()
}

/// Writes the mutable attributes of `router` if its stored revision is
/// still `router.revision_number - 1`. Returns false when another writer
/// got there first.
pub async fn update<'c>(
    db: impl Executor<'c, Database = Any>,
    router: &Router,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "UPDATE routers SET name = $1, description = $2, admin_state_up = $3, \
         gateway_network_id = $4, gateway_port_id = $5, enable_snat = $6, tags = $7, \
         revision_number = $8, updated_at = $9 WHERE id = $10 AND revision_number = $11",
    )
    .bind(&router.name)
    .bind(&router.description)
    .bind(flag(router.admin_state_up))
    .bind(router.gateway.as_ref().map(|(n, _)| n.as_str().to_owned()))
    .bind(router.gateway.as_ref().map(|(_, p)| p.as_str().to_owned()))
    .bind(flag(router.enable_snat))
    .bind(to_json_text(&router.tags))
    .bind(router.revision_number)
    .bind(router.updated_at)
    .bind(router.id.as_str())
    .bind(router.revision_number - 1)
    .execute(db)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Takes the write lock of a router's row inside a transaction, which
/// orders concurrent interface changes on one router. Returns false when
/// the router is gone.
pub async fn lock<'c>(
    db: impl Executor<'c, Database = Any>,
    id: &RouterId,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query("UPDATE routers SET updated_at = updated_at WHERE id = $1")
        .bind(id.as_str())
        .execute(db)
        .await?;
    Ok(result.rows_affected() == 1)
}

pub async fn delete<'c>(
    db: impl Executor<'c, Database = Any>,
    id: &RouterId,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query("DELETE FROM routers WHERE id = $1")
        .bind(id.as_str())
        .execute(db)
        .await?;
    Ok(result.rows_affected() == 1)
}

/// Counts the routers of `project_id`, for quotas.
pub async fn count_for_project<'c>(
    db: impl Executor<'c, Database = Any>,
    project_id: &ProjectId,
) -> Result<i64, sqlx::Error> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM routers WHERE project_id = $1")
        .bind(project_id.as_str())
        .fetch_one(db)
        .await?;
    row.try_get("n")
}
