//! The stored records of compute hosts: the services each host runs, with
//! their heartbeats and the operator's enable/disable flags, and the compute
//! node of each `nova-compute` service.

use oxstack_store::{Pool, Row};

/// The binary name of the service that runs servers on a host.
pub const COMPUTE_BINARY: &str = "nova-compute";
/// The scheduler and conductor run in the same process as the API and
/// compute agent, and report under Nova's binary names.
pub const SCHEDULER_BINARY: &str = "nova-scheduler";
pub const CONDUCTOR_BINARY: &str = "nova-conductor";
/// The zone Nova shows for services that run no servers.
pub const INTERNAL_ZONE: &str = "internal";

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// One service of one host (`os-services`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRecord {
    /// The integer id shown before microversion 2.53.
    pub id: i64,
    pub uuid: String,
    pub host: String,
    pub binary: String,
    pub disabled: bool,
    pub disabled_reason: Option<String>,
    pub forced_down: bool,
    /// Unix seconds of the last heartbeat; `None` before the first.
    pub last_seen_up: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl ServiceRecord {
    /// Returns whether the service counts as up at `now`: not forced down, and its
    /// last heartbeat at most `down_time` seconds old.
    pub fn is_up(&self, now: i64, down_time: u64) -> bool {
        let down_time = i64::try_from(down_time).unwrap_or(i64::MAX);
        !self.forced_down
            && self
                .last_seen_up
                .is_some_and(|seen| now.saturating_sub(seen) <= down_time)
    }
}

/// The hypervisor of one compute host (`os-hypervisors`). Sizes are the
/// totals the driver reported; `reserved_*` are kept back for the host.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeRecord {
    /// The integer id shown before microversion 2.53.
    pub id: i64,
    /// Also the uuid of the host's placement resource provider.
    pub uuid: String,
    pub host: String,
    pub hypervisor_hostname: String,
    pub hypervisor_type: String,
    pub hypervisor_version: i64,
    pub virt_type: String,
    /// The guest architecture the host runs (`x86_64`).
    pub cpu_arch: String,
    pub availability_zone: String,
    pub host_ip: String,
    pub vcpus: i64,
    pub memory_mb: i64,
    pub local_gb: i64,
    pub reserved_vcpus: i64,
    pub reserved_memory_mb: i64,
    pub reserved_disk_gb: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

const SERVICE_COLUMNS: &str =
    "id, uuid, host, binary_name, disabled, disabled_reason, forced_down, \
     last_seen_up, created_at, updated_at";

fn service_from_row(row: &sqlx::any::AnyRow) -> Result<ServiceRecord, sqlx::Error> {
    Ok(ServiceRecord {
        id: row.try_get(0)?,
        uuid: row.try_get(1)?,
        host: row.try_get(2)?,
        binary: row.try_get(3)?,
        disabled: row.try_get::<i64, _>(4)? != 0,
        disabled_reason: row.try_get(5)?,
        forced_down: row.try_get::<i64, _>(6)? != 0,
        last_seen_up: row.try_get(7)?,
        created_at: row.try_get(8)?,
        updated_at: row.try_get(9)?,
    })
}

/// Returns every service, in id order.
pub async fn list_services(db: &Pool) -> Result<Vec<ServiceRecord>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {SERVICE_COLUMNS} FROM compute_services ORDER BY id"
    ))
    .fetch_all(db)
    .await?;
    rows.iter().map(service_from_row).collect()
}

/// Returns the service `binary` of `host`.
pub async fn find_service(
    db: &Pool,
    host: &str,
    binary: &str,
) -> Result<Option<ServiceRecord>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT {SERVICE_COLUMNS} FROM compute_services WHERE host = $1 AND binary_name = $2"
    ))
    .bind(host)
    .bind(binary)
    .fetch_optional(db)
    .await?;
    row.as_ref().map(service_from_row).transpose()
}

/// Returns the service whose uuid, or integer id in decimal, is `id`.
pub async fn service_by_id(db: &Pool, id: &str) -> Result<Option<ServiceRecord>, sqlx::Error> {
    let row = match id.parse::<i64>() {
        Ok(number) => {
            sqlx::query(&format!(
                "SELECT {SERVICE_COLUMNS} FROM compute_services WHERE id = $1"
            ))
            .bind(number)
            .fetch_optional(db)
            .await?
        }
        Err(_) => {
            sqlx::query(&format!(
                "SELECT {SERVICE_COLUMNS} FROM compute_services WHERE uuid = $1"
            ))
            .bind(id)
            .fetch_optional(db)
            .await?
        }
    };
    row.as_ref().map(service_from_row).transpose()
}

/// Returns the service `binary` of `host`, creating it (enabled, never
/// seen up) when it does not exist. Flags an operator set survive restarts.
pub async fn ensure_service(
    db: &Pool,
    host: &str,
    binary: &str,
) -> Result<ServiceRecord, sqlx::Error> {
    // Two processes registering at once may pick the same next id; the
    // loser reads again and retries with the next one.
    for _ in 0..5 {
        if let Some(existing) = find_service(db, host, binary).await? {
            return Ok(existing);
        }
        let at = now();
        let inserted = sqlx::query(
            "INSERT INTO compute_services (id, uuid, host, binary_name, disabled, disabled_reason, \
             forced_down, last_seen_up, created_at, updated_at) \
             SELECT COALESCE(MAX(id), 0) + 1, $1, $2, $3, 0, NULL, 0, NULL, $4, $4 FROM compute_services",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(host)
        .bind(binary)
        .bind(at)
        .execute(db)
        .await;
        match inserted {
            Ok(_) => {
                tracing::info!(host, binary, "compute service registered");
            }
            Err(error) if oxstack_store::is_unique_violation(&error) => continue,
            Err(error) => return Err(error),
        }
    }
    find_service(db, host, binary).await?.ok_or_else(|| {
        sqlx::Error::Protocol(format!(
            "service {binary} of host {host} could not be registered"
        ))
    })
}

/// Records a heartbeat of every service of `host`; returns how many
/// services it touched (0 when an operator deleted them).
pub async fn heartbeat(db: &Pool, host: &str) -> Result<u64, sqlx::Error> {
    Ok(
        sqlx::query("UPDATE compute_services SET last_seen_up = $1 WHERE host = $2")
            .bind(now())
            .bind(host)
            .execute(db)
            .await?
            .rows_affected(),
    )
}

/// Sets the last heartbeat of every service of `host` to `at` (unix
/// seconds); lets tests make a host look down.
pub async fn set_last_seen(db: &Pool, host: &str, at: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE compute_services SET last_seen_up = $1 WHERE host = $2")
        .bind(at)
        .bind(host)
        .execute(db)
        .await?;
    Ok(())
}

/// Writes the operator's flags of service `id`.
pub async fn update_service(
    db: &Pool,
    id: i64,
    disabled: bool,
    disabled_reason: Option<&str>,
    forced_down: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE compute_services SET disabled = $1, disabled_reason = $2, forced_down = $3, updated_at = $4 \
         WHERE id = $5",
    )
    .bind(i64::from(disabled))
    .bind(disabled_reason)
    .bind(i64::from(forced_down))
    .bind(now())
    .bind(id)
    .execute(db)
    .await?;
    Ok(())
}

/// Deletes service `id`, and the compute node of its host when it is the
/// host's `nova-compute` service.
pub async fn delete_service(db: &Pool, service: &ServiceRecord) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    sqlx::query("DELETE FROM compute_services WHERE id = $1")
        .bind(service.id)
        .execute(&mut *tx)
        .await?;
    if service.binary == COMPUTE_BINARY {
        sqlx::query("DELETE FROM compute_nodes WHERE host = $1")
            .bind(&service.host)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await
}

const NODE_COLUMNS: &str = "id, uuid, host, hypervisor_hostname, hypervisor_type, hypervisor_version, virt_type, \
     cpu_arch, availability_zone, host_ip, vcpus, memory_mb, local_gb, reserved_vcpus, reserved_memory_mb, \
     reserved_disk_gb, created_at, updated_at";

fn node_from_row(row: &sqlx::any::AnyRow) -> Result<NodeRecord, sqlx::Error> {
    Ok(NodeRecord {
        id: row.try_get(0)?,
        uuid: row.try_get(1)?,
        host: row.try_get(2)?,
        hypervisor_hostname: row.try_get(3)?,
        hypervisor_type: row.try_get(4)?,
        hypervisor_version: row.try_get(5)?,
        virt_type: row.try_get(6)?,
        cpu_arch: row.try_get(7)?,
        availability_zone: row.try_get(8)?,
        host_ip: row.try_get(9)?,
        vcpus: row.try_get(10)?,
        memory_mb: row.try_get(11)?,
        local_gb: row.try_get(12)?,
        reserved_vcpus: row.try_get(13)?,
        reserved_memory_mb: row.try_get(14)?,
        reserved_disk_gb: row.try_get(15)?,
        created_at: row.try_get(16)?,
        updated_at: row.try_get(17)?,
    })
}

/// Returns every compute node, in id order.
pub async fn list_nodes(db: &Pool) -> Result<Vec<NodeRecord>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {NODE_COLUMNS} FROM compute_nodes ORDER BY id"
    ))
    .fetch_all(db)
    .await?;
    rows.iter().map(node_from_row).collect()
}

/// Returns the compute node of `host`.
pub async fn node_by_host(db: &Pool, host: &str) -> Result<Option<NodeRecord>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT {NODE_COLUMNS} FROM compute_nodes WHERE host = $1"
    ))
    .bind(host)
    .fetch_optional(db)
    .await?;
    row.as_ref().map(node_from_row).transpose()
}

/// Stores the node of `node.host`: a new one gets the next integer id and a
/// new uuid, an existing one keeps both and takes the other fields. Returns
/// the node as stored.
pub async fn upsert_node(db: &Pool, node: &NodeRecord) -> Result<NodeRecord, sqlx::Error> {
    for _ in 0..5 {
        let at = now();
        if node_by_host(db, &node.host).await?.is_some() {
            sqlx::query(
                "UPDATE compute_nodes SET hypervisor_hostname = $1, hypervisor_type = $2, hypervisor_version = $3, \
                 virt_type = $4, cpu_arch = $5, availability_zone = $6, host_ip = $7, vcpus = $8, memory_mb = $9, \
                 local_gb = $10, reserved_vcpus = $11, reserved_memory_mb = $12, reserved_disk_gb = $13, \
                 updated_at = $14 WHERE host = $15",
            )
            .bind(&node.hypervisor_hostname)
            .bind(&node.hypervisor_type)
            .bind(node.hypervisor_version)
            .bind(&node.virt_type)
            .bind(&node.cpu_arch)
            .bind(&node.availability_zone)
            .bind(&node.host_ip)
            .bind(node.vcpus)
            .bind(node.memory_mb)
            .bind(node.local_gb)
            .bind(node.reserved_vcpus)
            .bind(node.reserved_memory_mb)
            .bind(node.reserved_disk_gb)
            .bind(at)
            .bind(&node.host)
            .execute(db)
            .await?;
        } else {
            let inserted = sqlx::query(
                "INSERT INTO compute_nodes (id, uuid, host, hypervisor_hostname, hypervisor_type, \
                 hypervisor_version, virt_type, cpu_arch, availability_zone, host_ip, vcpus, memory_mb, local_gb, \
                 reserved_vcpus, reserved_memory_mb, reserved_disk_gb, created_at, updated_at) \
                 SELECT COALESCE(MAX(id), 0) + 1, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
                 $15, $16, $16 FROM compute_nodes",
            )
            .bind(uuid::Uuid::new_v4().to_string())
            .bind(&node.host)
            .bind(&node.hypervisor_hostname)
            .bind(&node.hypervisor_type)
            .bind(node.hypervisor_version)
            .bind(&node.virt_type)
            .bind(&node.cpu_arch)
            .bind(&node.availability_zone)
            .bind(&node.host_ip)
            .bind(node.vcpus)
            .bind(node.memory_mb)
            .bind(node.local_gb)
            .bind(node.reserved_vcpus)
            .bind(node.reserved_memory_mb)
            .bind(node.reserved_disk_gb)
            .bind(at)
            .execute(db)
            .await;
            match inserted {
                Ok(_) => tracing::info!(host = %node.host, "compute node registered"),
                Err(error) if oxstack_store::is_unique_violation(&error) => continue,
                Err(error) => return Err(error),
            }
        }
        if let Some(stored) = node_by_host(db, &node.host).await? {
            return Ok(stored);
        }
    }
    Err(sqlx::Error::Protocol(format!(
        "compute node of host {} could not be stored",
        node.host
    )))
}
