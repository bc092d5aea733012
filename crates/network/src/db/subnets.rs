//! The `subnets` table.

use oxstack_store::{Any, Row};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Executor;

use super::{flag, from_json_text, to_json_text};
use crate::ipam::IpRange;
use crate::model::{NetworkId, ProjectId, Subnet, SubnetId};

const COLUMNS: &str =
    "id, project_id, network_id, name, description, ip_version, cidr, gateway_ip, \
    allocation_pools, enable_dhcp, dns_nameservers, host_routes, ipv6_ra_mode, ipv6_address_mode, \
    tags, revision_number, created_at, updated_at";

/// An allocation pool as stored and as the API writes it.
#[derive(Serialize, Deserialize)]
struct StoredPool {
    start: String,
    end: String,
}

fn decode_error(column: &str, detail: String) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: column.to_owned(),
        source: detail.into(),
    }
}

fn from_row(row: &AnyRow) -> Result<Subnet, sqlx::Error> {
    let cidr: String = row.try_get("cidr")?;
    let gateway: Option<String> = row.try_get("gateway_ip")?;
    let pools: Vec<StoredPool> = from_json_text(
        "allocation_pools",
        &row.try_get::<String, _>("allocation_pools")?,
    )?;
    let allocation_pools = pools
        .iter()
        .map(|pool| IpRange::parse(&pool.start, &pool.end))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| decode_error("allocation_pools", error.to_string()))?;
    Ok(Subnet {
        id: SubnetId::new(row.try_get::<String, _>("id")?),
        project_id: ProjectId::new(row.try_get::<String, _>("project_id")?),
        network_id: NetworkId::new(row.try_get::<String, _>("network_id")?),
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        ip_version: u8::try_from(row.try_get::<i64, _>("ip_version")?)
            .map_err(|error| decode_error("ip_version", error.to_string()))?,
        cidr: cidr
            .parse()
            .map_err(|_| decode_error("cidr", format!("invalid CIDR {cidr}")))?,
        gateway_ip: gateway
            .map(|g| {
                g.parse()
                    .map_err(|_| decode_error("gateway_ip", format!("invalid address {g}")))
            })
            .transpose()?,
        allocation_pools,
        enable_dhcp: row.try_get::<i64, _>("enable_dhcp")? != 0,
        dns_nameservers: from_json_text(
            "dns_nameservers",
            &row.try_get::<String, _>("dns_nameservers")?,
        )?,
        host_routes: from_json_text("host_routes", &row.try_get::<String, _>("host_routes")?)?,
        ipv6_ra_mode: row.try_get("ipv6_ra_mode")?,
        ipv6_address_mode: row.try_get("ipv6_address_mode")?,
        tags: from_json_text("tags", &row.try_get::<String, _>("tags")?)?,
        revision_number: row.try_get("revision_number")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn pools_text(pools: &[IpRange]) -> String {
    let stored: Vec<StoredPool> = pools
        .iter()
        .map(|p| StoredPool {
            start: p.start.to_string(),
            end: p.end.to_string(),
        })
        .collect();
    to_json_text(&stored)
}

pub async fn insert<'c>(
    db: impl Executor<'c, Database = Any>,
    subnet: &Subnet,
) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "INSERT INTO subnets ({COLUMNS}) VALUES \
         ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"
    ))
    .bind(subnet.id.as_str())
    .bind(subnet.project_id.as_str())
    .bind(subnet.network_id.as_str())
    .bind(&subnet.name)
    .bind(&subnet.description)
    .bind(i64::from(subnet.ip_version))
    .bind(subnet.cidr.to_string())
    .bind(subnet.gateway_ip.map(|g| g.to_string()))
    .bind(pools_text(&subnet.allocation_pools))
    .bind(flag(subnet.enable_dhcp))
    .bind(to_json_text(&subnet.dns_nameservers))
    .bind(to_json_text(&subnet.host_routes))
    .bind(subnet.ipv6_ra_mode.clone())
    .bind(subnet.ipv6_address_mode.clone())
    .bind(to_json_text(&subnet.tags))
    .bind(subnet.revision_number)
    .bind(subnet.created_at)
    .bind(subnet.updated_at)
    .execute(db)
    .await?;
    Ok(())
}

pub async fn get<'c>(
    db: impl Executor<'c, Database = Any>,
    id: &SubnetId,
) -> Result<Option<Subnet>, sqlx::Error> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM subnets WHERE id = $1"))
        .bind(id.as_str())
        .fetch_optional(db)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Returns every subnet, oldest first.
pub async fn list<'c>(db: impl Executor<'c, Database = Any>) -> Result<Vec<Subnet>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM subnets ORDER BY created_at, id"
    ))
    .fetch_all(db)
    .await?;
    rows.iter().map(from_row).collect()
}

/// Returns the subnets of one network, oldest first.
pub async fn list_for_network<'c>(
    db: impl Executor<'c, Database = Any>,
    network_id: &NetworkId,
) -> Result<Vec<Subnet>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM subnets WHERE network_id = $1 ORDER BY created_at, id"
    ))
    .bind(network_id.as_str())
    .fetch_all(db)
    .await?;
    rows.iter().map(from_row).collect()
}

/// Writes the mutable attributes of `subnet` if its stored revision is
/// still `subnet.revision_number - 1`. Returns false otherwise.
pub async fn update<'c>(
    db: impl Executor<'c, Database = Any>,
    subnet: &Subnet,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "UPDATE subnets SET name = $1, description = $2, gateway_ip = $3, allocation_pools = $4, \
         enable_dhcp = $5, dns_nameservers = $6, host_routes = $7, tags = $8, revision_number = $9, \
         updated_at = $10 WHERE id = $11 AND revision_number = $12",
    )
    .bind(&subnet.name)
    .bind(&subnet.description)
    .bind(subnet.gateway_ip.map(|g| g.to_string()))
    .bind(pools_text(&subnet.allocation_pools))
    .bind(flag(subnet.enable_dhcp))
    .bind(to_json_text(&subnet.dns_nameservers))
    .bind(to_json_text(&subnet.host_routes))
    .bind(to_json_text(&subnet.tags))
    .bind(subnet.revision_number)
    .bind(subnet.updated_at)
    .bind(subnet.id.as_str())
    .bind(subnet.revision_number - 1)
    .execute(db)
    .await?;
    Ok(result.rows_affected() == 1)
}

pub async fn delete<'c>(
    db: impl Executor<'c, Database = Any>,
    id: &SubnetId,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query("DELETE FROM subnets WHERE id = $1")
        .bind(id.as_str())
        .execute(db)
        .await?;
    Ok(result.rows_affected() == 1)
}

pub async fn delete_for_network<'c>(
    db: impl Executor<'c, Database = Any>,
    network_id: &NetworkId,
) -> Result<u64, sqlx::Error> {
    let result = sqlx::query("DELETE FROM subnets WHERE network_id = $1")
        .bind(network_id.as_str())
        .execute(db)
        .await?;
    Ok(result.rows_affected())
}
