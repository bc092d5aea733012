//! The `networks` table.

use oxstack_store::{Any, Row};
use sqlx::any::AnyRow;
use sqlx::Executor;

use super::{flag, from_json_text, to_json_text};
use crate::model::{Network, NetworkId, NetworkType, ProjectId, Segment};

const COLUMNS: &str = "id, project_id, name, description, admin_state_up, shared, external, mtu, \
    network_type, physical_network, segmentation_id, port_security_enabled, is_default, \
    availability_zone_hints, tags, revision_number, created_at, updated_at";

fn from_row(row: &AnyRow) -> Result<Network, sqlx::Error> {
    let network_type: String = row.try_get("network_type")?;
    let network_type =
        NetworkType::parse(&network_type).ok_or_else(|| sqlx::Error::ColumnDecode {
            index: "network_type".into(),
            source: format!("unknown network type {network_type}").into(),
        })?;
    let hints: String = row.try_get("availability_zone_hints")?;
    let tags: String = row.try_get("tags")?;
    Ok(Network {
        id: NetworkId::new(row.try_get::<String, _>("id")?),
        project_id: ProjectId::new(row.try_get::<String, _>("project_id")?),
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        admin_state_up: row.try_get::<i64, _>("admin_state_up")? != 0,
        shared: row.try_get::<i64, _>("shared")? != 0,
        external: row.try_get::<i64, _>("external")? != 0,
        mtu: row.try_get("mtu")?,
        segment: Segment {
            network_type,
            physical_network: row.try_get("physical_network")?,
            segmentation_id: row.try_get("segmentation_id")?,
        },
        port_security_enabled: row.try_get::<i64, _>("port_security_enabled")? != 0,
        is_default: row.try_get::<i64, _>("is_default")? != 0,
        availability_zone_hints: from_json_text("availability_zone_hints", &hints)?,
        tags: from_json_text("tags", &tags)?,
        revision_number: row.try_get("revision_number")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Inserts `network`. A unique violation means its segment is taken.
pub async fn insert<'c>(
    db: impl Executor<'c, Database = Any>,
    network: &Network,
) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "INSERT INTO networks ({COLUMNS}, segment_key) VALUES \
         ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)"
    ))
    .bind(network.id.as_str())
    .bind(network.project_id.as_str())
    .bind(&network.name)
    .bind(&network.description)
    .bind(flag(network.admin_state_up))
    .bind(flag(network.shared))
    .bind(flag(network.external))
    .bind(network.mtu)
    .bind(network.segment.network_type.as_str())
    .bind(network.segment.physical_network.clone())
    .bind(network.segment.segmentation_id)
    .bind(flag(network.port_security_enabled))
    .bind(flag(network.is_default))
    .bind(to_json_text(&network.availability_zone_hints))
    .bind(to_json_text(&network.tags))
    .bind(network.revision_number)
    .bind(network.created_at)
    .bind(network.updated_at)
    .bind(network.segment.unique_key())
    .execute(db)
    .await?;
    Ok(())
}

pub async fn get<'c>(
    db: impl Executor<'c, Database = Any>,
    id: &NetworkId,
) -> Result<Option<Network>, sqlx::Error> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM networks WHERE id = $1"))
        .bind(id.as_str())
        .fetch_optional(db)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Returns every network, oldest first.
// NOTE: listing loads all rows and filters in memory; fine for thousands of
// networks, not for millions.
pub async fn list<'c>(db: impl Executor<'c, Database = Any>) -> Result<Vec<Network>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM networks ORDER BY created_at, id"
    ))
    .fetch_all(db)
    .await?;
    rows.iter().map(from_row).collect()
}

/// Returns the segmentation ids of networks of `network_type`.
pub async fn segmentation_ids<'c>(
    db: impl Executor<'c, Database = Any>,
    network_type: NetworkType,
) -> Result<Vec<i64>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT segmentation_id FROM networks WHERE network_type = $1 AND segmentation_id IS NOT NULL",
    )
    .bind(network_type.as_str())
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|row| row.try_get("segmentation_id"))
        .collect()
}

/// Writes the mutable attributes of `network` if its stored revision is
/// still `network.revision_number - 1`. Returns false when another writer
/// got there first.
pub async fn update<'c>(
    db: impl Executor<'c, Database = Any>,
    network: &Network,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "UPDATE networks SET name = $1, description = $2, admin_state_up = $3, shared = $4, external = $5, \
         mtu = $6, port_security_enabled = $7, is_default = $8, tags = $9, revision_number = $10, \
         updated_at = $11 WHERE id = $12 AND revision_number = $13",
    )
    .bind(&network.name)
    .bind(&network.description)
    .bind(flag(network.admin_state_up))
    .bind(flag(network.shared))
    .bind(flag(network.external))
    .bind(network.mtu)
    .bind(flag(network.port_security_enabled))
    .bind(flag(network.is_default))
    .bind(to_json_text(&network.tags))
    .bind(network.revision_number)
    .bind(network.updated_at)
    .bind(network.id.as_str())
    .bind(network.revision_number - 1)
    .execute(db)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Bumps the revision of a network whose subnets changed, as Neutron does.
/// Inside a transaction this also takes the row's write lock, which orders
/// concurrent subnet changes on one network. Returns false when the network
/// is gone.
pub async fn touch<'c>(
    db: impl Executor<'c, Database = Any>,
    id: &NetworkId,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "UPDATE networks SET revision_number = revision_number + 1, updated_at = $1 WHERE id = $2",
    )
    .bind(now)
    .bind(id.as_str())
    .execute(db)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Takes the write lock of a network's row without changing it, inside a
/// transaction, which orders concurrent address allocations on one network.
/// Returns false when the network is gone.
pub async fn lock<'c>(
    db: impl Executor<'c, Database = Any>,
    id: &NetworkId,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query("UPDATE networks SET updated_at = updated_at WHERE id = $1")
        .bind(id.as_str())
        .execute(db)
        .await?;
    Ok(result.rows_affected() == 1)
}

pub async fn delete<'c>(
    db: impl Executor<'c, Database = Any>,
    id: &NetworkId,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query("DELETE FROM networks WHERE id = $1")
        .bind(id.as_str())
        .execute(db)
        .await?;
    Ok(result.rows_affected() == 1)
}
