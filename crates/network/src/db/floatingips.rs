//! The `floatingips` table.

use oxstack_store::{Any, Row};
use sqlx::any::AnyRow;
use sqlx::Executor;

use super::{from_json_text, to_json_text};
use crate::model::{FloatingIp, FloatingIpId, NetworkId, PortId, ProjectId, RouterId};

const COLUMNS: &str = "id, project_id, floating_network_id, floating_ip_address, \
    floating_port_id, port_id, fixed_ip_address, router_id, status, description, tags, \
    revision_number, created_at, updated_at";

fn decode_error(column: &str, text: &str) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: column.to_owned(),
        source: format!("invalid address {text}").into(),
    }
}

fn from_row(row: &AnyRow) -> Result<FloatingIp, sqlx::Error> {
    let address: String = row.try_get("floating_ip_address")?;
    let fixed: Option<String> = row.try_get("fixed_ip_address")?;
    Ok(FloatingIp {
        id: FloatingIpId::new(row.try_get::<String, _>("id")?),
        project_id: ProjectId::new(row.try_get::<String, _>("project_id")?),
        floating_network_id: NetworkId::new(row.try_get::<String, _>("floating_network_id")?),
        floating_ip_address: address
            .parse()
            .map_err(|_| decode_error("floating_ip_address", &address))?,
        floating_port_id: PortId::new(row.try_get::<String, _>("floating_port_id")?),
        port_id: row
            .try_get::<Option<String>, _>("port_id")?
            .map(PortId::new),
        fixed_ip_address: fixed
            .map(|text| {
                text.parse()
                    .map_err(|_| decode_error("fixed_ip_address", &text))
            })
            .transpose()?,
        router_id: row
            .try_get::<Option<String>, _>("router_id")?
            .map(RouterId::new),
        status: row.try_get("status")?,
        description: row.try_get("description")?,
        tags: from_json_text("tags", &row.try_get::<String, _>("tags")?)?,
        revision_number: row.try_get("revision_number")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

pub async fn insert<'c>(
    db: impl Executor<'c, Database = Any>,
    fip: &FloatingIp,
) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "INSERT INTO floatingips ({COLUMNS}) VALUES \
         ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
    ))
    .bind(fip.id.as_str())
    .bind(fip.project_id.as_str())
    .bind(fip.floating_network_id.as_str())
    .bind(fip.floating_ip_address.to_string())
    .bind(fip.floating_port_id.as_str())
    .bind(fip.port_id.as_ref().map(|p| p.as_str().to_owned()))
    .bind(fip.fixed_ip_address.map(|a| a.to_string()))
    .bind(fip.router_id.as_ref().map(|r| r.as_str().to_owned()))
    .bind(&fip.status)
    .bind(&fip.description)
    .bind(to_json_text(&fip.tags))
    .bind(fip.revision_number)
    .bind(fip.created_at)
    .bind(fip.updated_at)
    .execute(db)
    .await?;
    Ok(())
}

pub async fn get<'c>(
    db: impl Executor<'c, Database = Any>,
    id: &FloatingIpId,
) -> Result<Option<FloatingIp>, sqlx::Error> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM floatingips WHERE id = $1"))
        .bind(id.as_str())
        .fetch_optional(db)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Returns every floating IP, oldest first.
pub async fn list<'c>(
    db: impl Executor<'c, Database = Any>,
) -> Result<Vec<FloatingIp>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM floatingips ORDER BY created_at, id"
    ))
    .fetch_all(db)
    .await?;
    rows.iter().map(from_row).collect()
}

/// Writes the association and description of `fip` if its stored revision
/// is still `fip.revision_number - 1`. Returns false otherwise.
pub async fn update<'c>(
    db: impl Executor<'c, Database = Any>,
    fip: &FloatingIp,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "UPDATE floatingips SET port_id = $1, fixed_ip_address = $2, router_id = $3, \
         status = $4, description = $5, tags = $6, revision_number = $7, updated_at = $8 \
         WHERE id = $9 AND revision_number = $10",
    )
    .bind(fip.port_id.as_ref().map(|p| p.as_str().to_owned()))
    .bind(fip.fixed_ip_address.map(|a| a.to_string()))
    .bind(fip.router_id.as_ref().map(|r| r.as_str().to_owned()))
    .bind(&fip.status)
    .bind(&fip.description)
    .bind(to_json_text(&fip.tags))
    .bind(fip.revision_number)
    .bind(fip.updated_at)
    .bind(fip.id.as_str())
    .bind(fip.revision_number - 1)
    .execute(db)
    .await?;
    Ok(result.rows_affected() == 1)
}

pub async fn delete<'c>(
    db: impl Executor<'c, Database = Any>,
    id: &FloatingIpId,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query("DELETE FROM floatingips WHERE id = $1")
        .bind(id.as_str())
        .execute(db)
        .await?;
    Ok(result.rows_affected() == 1)
}

/// Clears the association of every floating IP on `port_id`, as Neutron
/// does when the port is deleted.
pub async fn disassociate_port<'c>(
    db: impl Executor<'c, Database = Any>,
    port_id: &PortId,
    now: i64,
) -> Result<u64, sqlx::Error> {
    let result = sqlx::query(
        "UPDATE floatingips SET port_id = NULL, fixed_ip_address = NULL, router_id = NULL, \
         status = 'DOWN', revision_number = revision_number + 1, updated_at = $1 \
         WHERE port_id = $2",
    )
    .bind(now)
    .bind(port_id.as_str())
    .execute(db)
    .await?;
    Ok(result.rows_affected())
}

/// Counts the floating IPs that `router_id` translates for ports on
/// `network_id`: they need the router's interface on that network.
pub async fn count_via_router_on_network<'c>(
    db: impl Executor<'c, Database = Any>,
    router_id: &RouterId,
    network_id: &NetworkId,
) -> Result<i64, sqlx::Error> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS n FROM floatingips f JOIN ports p ON p.id = f.port_id \
         WHERE f.router_id = $1 AND p.network_id = $2",
    )
    .bind(router_id.as_str())
    .bind(network_id.as_str())
    .fetch_one(db)
    .await?;
    row.try_get("n")
}

/// Counts the floating IPs that `router_id` translates.
pub async fn count_via_router<'c>(
    db: impl Executor<'c, Database = Any>,
    router_id: &RouterId,
) -> Result<i64, sqlx::Error> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM floatingips WHERE router_id = $1")
        .bind(router_id.as_str())
        .fetch_one(db)
        .await?;
    row.try_get("n")
}
