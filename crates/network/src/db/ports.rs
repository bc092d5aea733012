//! The `ports` table with its IP allocations (`ip_allocations`) and its
//! security groups (`port_security_groups`).

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use oxstack_store::{Any, Row};
use sqlx::any::AnyRow;
use sqlx::Executor;

use super::{flag, from_json_text, to_json_text};
use crate::model::{
    Binding, FixedIp, NetworkId, Port, PortId, ProjectId, SecurityGroupId, SubnetId,
};

const COLUMNS: &str = "id, project_id, network_id, name, description, mac_address, \
    admin_state_up, status, device_owner, device_id, binding_host_id, binding_vnic_type, \
    binding_vif_type, binding_vif_details, binding_profile, port_security_enabled, \
    allowed_address_pairs, tags, revision_number, created_at, updated_at";

fn decode_error(column: &str, detail: String) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: column.to_owned(),
        source: detail.into(),
    }
}

// Builds a port without its fixed IPs and security groups, which live in
// their own tables and are attached by `attach`.
fn from_row(row: &AnyRow) -> Result<Port, sqlx::Error> {
    let text = |column: &str| row.try_get::<String, _>(column);
    Ok(Port {
        id: PortId::new(text("id")?),
        project_id: ProjectId::new(text("project_id")?),
        network_id: NetworkId::new(text("network_id")?),
        name: text("name")?,
        description: text("description")?,
        mac_address: text("mac_address")?,
        admin_state_up: row.try_get::<i64, _>("admin_state_up")? != 0,
        status: text("status")?,
        device_owner: text("device_owner")?,
        device_id: text("device_id")?,
        fixed_ips: Vec::new(),
        binding: Binding {
            host_id: text("binding_host_id")?,
            vnic_type: text("binding_vnic_type")?,
            vif_type: text("binding_vif_type")?,
            vif_details: from_json_text("binding_vif_details", &text("binding_vif_details")?)?,
            profile: from_json_text("binding_profile", &text("binding_profile")?)?,
        },
        port_security_enabled: row.try_get::<i64, _>("port_security_enabled")? != 0,
        allowed_address_pairs: from_json_text(
            "allowed_address_pairs",
            &text("allowed_address_pairs")?,
        )?,
        security_groups: Vec::new(),
        tags: from_json_text("tags", &text("tags")?)?,
        revision_number: row.try_get("revision_number")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Inserts the port row of `port`, without its addresses and groups. A
/// unique violation means its MAC address is taken on its network.
pub async fn insert<'c>(
    db: impl Executor<'c, Database = Any>,
    port: &Port,
) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "INSERT INTO ports ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, \
         $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)"
    ))
    .bind(port.id.as_str())
    .bind(port.project_id.as_str())
    .bind(port.network_id.as_str())
    .bind(&port.name)
    .bind(&port.description)
    .bind(&port.mac_address)
    .bind(flag(port.admin_state_up))
    .bind(&port.status)
    .bind(&port.device_owner)
    .bind(&port.device_id)
    .bind(&port.binding.host_id)
    .bind(&port.binding.vnic_type)
    .bind(&port.binding.vif_type)
    .bind(to_json_text(&port.binding.vif_details))
    .bind(to_json_text(&port.binding.profile))
    .bind(flag(port.port_security_enabled))
    .bind(to_json_text(&port.allowed_address_pairs))
    .bind(to_json_text(&port.tags))
    .bind(port.revision_number)
    .bind(port.created_at)
    .bind(port.updated_at)
    .execute(db)
    .await?;
    Ok(())
}

/// Writes the mutable attributes of `port` if its stored revision is still
/// `port.revision_number - 1`. Returns false when another writer got there
/// first. A unique violation means the new MAC address is taken.
pub async fn update<'c>(
    db: impl Executor<'c, Database = Any>,
    port: &Port,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "UPDATE ports SET name = $1, description = $2, mac_address = $3, admin_state_up = $4, \
         status = $5, device_owner = $6, device_id = $7, binding_host_id = $8, \
         binding_vnic_type = $9, binding_vif_type = $10, binding_vif_details = $11, \
         binding_profile = $12, port_security_enabled = $13, allowed_address_pairs = $14, \
         tags = $15, revision_number = $16, updated_at = $17 \
         WHERE id = $18 AND revision_number = $19",
    )
    .bind(&port.name)
    .bind(&port.description)
    .bind(&port.mac_address)
    .bind(flag(port.admin_state_up))
    .bind(&port.status)
    .bind(&port.device_owner)
    .bind(&port.device_id)
    .bind(&port.binding.host_id)
    .bind(&port.binding.vnic_type)
    .bind(&port.binding.vif_type)
    .bind(to_json_text(&port.binding.vif_details))
    .bind(to_json_text(&port.binding.profile))
    .bind(flag(port.port_security_enabled))
    .bind(to_json_text(&port.allowed_address_pairs))
    .bind(to_json_text(&port.tags))
    .bind(port.revision_number)
    .bind(port.updated_at)
    .bind(port.id.as_str())
    .bind(port.revision_number - 1)
    .execute(db)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Records `fixed_ips` as the addresses of `port`. A unique violation means
/// one of them was taken by another port meanwhile.
pub async fn insert_addresses(
    db: &mut sqlx::AnyConnection,
    port: &Port,
    fixed_ips: &[FixedIp],
) -> Result<(), sqlx::Error> {
    for (position, fixed_ip) in fixed_ips.iter().enumerate() {
        sqlx::query(
            "INSERT INTO ip_allocations (subnet_id, ip_address, port_id, network_id, position) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(fixed_ip.subnet_id.as_str())
        .bind(fixed_ip.ip_address.to_string())
        .bind(port.id.as_str())
        .bind(port.network_id.as_str())
        .bind(i64::try_from(position).unwrap_or(i64::MAX))
        .execute(&mut *db)
        .await?;
    }
    Ok(())
}

pub async fn delete_addresses<'c>(
    db: impl Executor<'c, Database = Any>,
    port_id: &PortId,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM ip_allocations WHERE port_id = $1")
        .bind(port_id.as_str())
        .execute(db)
        .await?;
    Ok(())
}

/// Records `groups` as the security groups of `port`, replacing any it had.
pub async fn set_security_groups(
    db: &mut sqlx::AnyConnection,
    port_id: &PortId,
    groups: &[SecurityGroupId],
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM port_security_groups WHERE port_id = $1")
        .bind(port_id.as_str())
        .execute(&mut *db)
        .await?;
    for (position, group) in groups.iter().enumerate() {
        sqlx::query(
            "INSERT INTO port_security_groups (port_id, security_group_id, position) \
             VALUES ($1, $2, $3)",
        )
        .bind(port_id.as_str())
        .bind(group.as_str())
        .bind(i64::try_from(position).unwrap_or(i64::MAX))
        .execute(&mut *db)
        .await?;
    }
    Ok(())
}

/// Returns the addresses in use on `subnet_id`.
pub async fn used_addresses<'c>(
    db: impl Executor<'c, Database = Any>,
    subnet_id: &SubnetId,
) -> Result<BTreeSet<IpAddr>, sqlx::Error> {
    let rows = sqlx::query("SELECT ip_address FROM ip_allocations WHERE subnet_id = $1")
        .bind(subnet_id.as_str())
        .fetch_all(db)
        .await?;
    rows.iter()
        .map(|row| {
            let text: String = row.try_get("ip_address")?;
            text.parse()
                .map_err(|_| decode_error("ip_address", format!("invalid address {text}")))
        })
        .collect()
}

/// Returns the device owners of the ports with an address on `subnet_id`,
/// once per address.
pub async fn device_owners_on_subnet<'c>(
    db: impl Executor<'c, Database = Any>,
    subnet_id: &SubnetId,
) -> Result<Vec<String>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT p.device_owner FROM ip_allocations a JOIN ports p ON p.id = a.port_id \
         WHERE a.subnet_id = $1",
    )
    .bind(subnet_id.as_str())
    .fetch_all(db)
    .await?;
    rows.iter().map(|row| row.try_get("device_owner")).collect()
}

/// Frees every address on `subnet_id`; the ports themselves remain.
pub async fn delete_addresses_on_subnet<'c>(
    db: impl Executor<'c, Database = Any>,
    subnet_id: &SubnetId,
) -> Result<u64, sqlx::Error> {
    let result = sqlx::query("DELETE FROM ip_allocations WHERE subnet_id = $1")
        .bind(subnet_id.as_str())
        .execute(db)
        .await?;
    Ok(result.rows_affected())
}

/// Returns how many ports use security group `group_id`.
pub async fn count_with_group<'c>(
    db: impl Executor<'c, Database = Any>,
    group_id: &SecurityGroupId,
) -> Result<i64, sqlx::Error> {
    let row =
        sqlx::query("SELECT COUNT(*) AS n FROM port_security_groups WHERE security_group_id = $1")
            .bind(group_id.as_str())
            .fetch_one(db)
            .await?;
    row.try_get("n")
}

// Fills in the fixed IPs and security groups of `ports` with two queries
// over all ports, so a list costs three queries whatever its length.
async fn attach(db: &sqlx::AnyPool, ports: &mut [Port]) -> Result<(), sqlx::Error> {
    let mut addresses: HashMap<String, Vec<FixedIp>> = HashMap::new();
    let rows = sqlx::query(
        "SELECT port_id, subnet_id, ip_address FROM ip_allocations ORDER BY port_id, position",
    )
    .fetch_all(db)
    .await?;
    for row in &rows {
        let text: String = row.try_get("ip_address")?;
        let ip_address = text
            .parse()
            .map_err(|_| decode_error("ip_address", format!("invalid address {text}")))?;
        addresses
            .entry(row.try_get("port_id")?)
            .or_default()
            .push(FixedIp {
                subnet_id: SubnetId::new(row.try_get::<String, _>("subnet_id")?),
                ip_address,
            });
    }
    let mut groups: HashMap<String, Vec<SecurityGroupId>> = HashMap::new();
    let rows = sqlx::query(
        "SELECT port_id, security_group_id FROM port_security_groups ORDER BY port_id, position",
    )
    .fetch_all(db)
    .await?;
    for row in &rows {
        groups
            .entry(row.try_get("port_id")?)
            .or_default()
            .push(SecurityGroupId::new(
                row.try_get::<String, _>("security_group_id")?,
            ));
    }
    for port in ports {
        port.fixed_ips = addresses.remove(port.id.as_str()).unwrap_or_default();
        port.security_groups = groups.remove(port.id.as_str()).unwrap_or_default();
    }
    Ok(())
}

pub async fn get(db: &sqlx::AnyPool, id: &PortId) -> Result<Option<Port>, sqlx::Error> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM ports WHERE id = $1"))
        .bind(id.as_str())
        .fetch_optional(db)
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let mut ports = [from_row(&row)?];
    attach(db, &mut ports).await?;
    let [port] = ports;
    Ok(Some(port))
}

/// Returns every port, oldest first.
// NOTE: like networks, listing loads all rows and filters in memory.
pub async fn list(db: &sqlx::AnyPool) -> Result<Vec<Port>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM ports ORDER BY created_at, id"
    ))
    .fetch_all(db)
    .await?;
    let mut ports = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
    attach(db, &mut ports).await?;
    Ok(ports)
}

/// True when a port on `network_id` has MAC address `mac`.
pub async fn mac_taken<'c>(
    db: impl Executor<'c, Database = Any>,
    network_id: &NetworkId,
    mac: &str,
) -> Result<bool, sqlx::Error> {
    let row = sqlx::query("SELECT id FROM ports WHERE network_id = $1 AND mac_address = $2")
        .bind(network_id.as_str())
        .bind(mac)
        .fetch_optional(db)
        .await?;
    Ok(row.is_some())
}

/// Returns the device owners of the ports on `network_id`.
pub async fn device_owners_on_network<'c>(
    db: impl Executor<'c, Database = Any>,
    network_id: &NetworkId,
) -> Result<Vec<String>, sqlx::Error> {
    let rows = sqlx::query("SELECT device_owner FROM ports WHERE network_id = $1")
        .bind(network_id.as_str())
        .fetch_all(db)
        .await?;
    rows.iter().map(|row| row.try_get("device_owner")).collect()
}

/// Returns the distinct projects that own ports on `network_id`.
pub async fn projects_on_network<'c>(
    db: impl Executor<'c, Database = Any>,
    network_id: &NetworkId,
) -> Result<Vec<String>, sqlx::Error> {
    let rows = sqlx::query("SELECT DISTINCT project_id FROM ports WHERE network_id = $1")
        .bind(network_id.as_str())
        .fetch_all(db)
        .await?;
    rows.iter().map(|row| row.try_get("project_id")).collect()
}

/// Deletes every port on `network_id` with its addresses and groups.
pub async fn delete_for_network(
    db: &mut sqlx::AnyConnection,
    network_id: &NetworkId,
) -> Result<u64, sqlx::Error> {
    sqlx::query("DELETE FROM ip_allocations WHERE network_id = $1")
        .bind(network_id.as_str())
        .execute(&mut *db)
        .await?;
    sqlx::query(
        "DELETE FROM port_security_groups WHERE port_id IN \
         (SELECT id FROM ports WHERE network_id = $1)",
    )
    .bind(network_id.as_str())
    .execute(&mut *db)
    .await?;
    let result = sqlx::query("DELETE FROM ports WHERE network_id = $1")
        .bind(network_id.as_str())
        .execute(&mut *db)
        .await?;
    Ok(result.rows_affected())
}

/// Deletes a port with its addresses and groups. Returns false when it was
/// already gone.
pub async fn delete(db: &mut sqlx::AnyConnection, id: &PortId) -> Result<bool, sqlx::Error> {
    delete_addresses(&mut *db, id).await?;
    sqlx::query("DELETE FROM port_security_groups WHERE port_id = $1")
        .bind(id.as_str())
        .execute(&mut *db)
        .await?;
    let result = sqlx::query("DELETE FROM ports WHERE id = $1")
        .bind(id.as_str())
        .execute(&mut *db)
        .await?;
    Ok(result.rows_affected() == 1)
}

/// Returns the ids of the ports of `device_id` with `device_owner`.
pub async fn ids_for_device<'c>(
    db: impl Executor<'c, Database = Any>,
    device_id: &str,
    device_owner: &str,
) -> Result<Vec<PortId>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id FROM ports WHERE device_id = $1 AND device_owner = $2 ORDER BY created_at, id",
    )
    .bind(device_id)
    .bind(device_owner)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|row| Ok(PortId::new(row.try_get::<String, _>("id")?)))
        .collect()
}
