//! Host aggregates: named sets of compute hosts with metadata. The
//! `availability_zone` key of an aggregate's metadata puts its hosts in
//! that zone, as in Nova. A host in no such aggregate is in the default
//! zone (`[DEFAULT] default_availability_zone`, by default `nova`).

use std::collections::BTreeMap;

use oxstack_store::Pool;
use sqlx::Row;

/// The metadata key that sets the zone of an aggregate's hosts.
pub const ZONE_KEY: &str = "availability_zone";

/// An aggregate with its hosts.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    /// The integer id of the URL (`/os-aggregates/{id}`).
    pub id: i64,
    /// The UUID, shown from microversion 2.41.
    pub uuid: String,
    pub name: String,
    pub metadata: BTreeMap<String, String>,
    /// Host names, sorted.
    pub hosts: Vec<String>,
    /// Unix seconds.
    pub created_at: i64,
    pub updated_at: Option<i64>,
}

impl Aggregate {
    /// Returns the zone the aggregate puts its hosts in, if any.
    pub fn zone(&self) -> Option<&str> {
        self.metadata.get(ZONE_KEY).map(String::as_str)
    }
}

const COLUMNS: &str = "id, uuid, name, metadata, created_at, updated_at";

fn decode(row: &sqlx::any::AnyRow) -> Result<Aggregate, sqlx::Error> {
    let metadata: String = row.try_get("metadata")?;
    Ok(Aggregate {
        id: row.try_get("id")?,
        uuid: row.try_get("uuid")?,
        name: row.try_get("name")?,
        metadata: serde_json::from_str(&metadata).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        hosts: Vec::new(),
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

async fn load_hosts(db: &Pool, aggregates: &mut [Aggregate]) -> Result<(), sqlx::Error> {
    let rows: Vec<(i64, String)> =
        sqlx::query_as("SELECT aggregate_id, host FROM compute_aggregate_hosts ORDER BY host")
            .fetch_all(db)
            .await?;
    for aggregate in aggregates.iter_mut() {
        aggregate.hosts = rows
            .iter()
            .filter(|(id, _)| *id == aggregate.id)
            .map(|(_, host)| host.clone())
            .collect();
    }
    Ok(())
}

/// Returns every aggregate with its hosts, by id.
pub async fn list(db: &Pool) -> Result<Vec<Aggregate>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM compute_aggregates ORDER BY id"
    ))
    .fetch_all(db)
    .await?;
    let mut aggregates = rows.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
    load_hosts(db, &mut aggregates).await?;
    Ok(aggregates)
}

/// Returns aggregate `id` with its hosts.
pub async fn get(db: &Pool, id: i64) -> Result<Option<Aggregate>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM compute_aggregates WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(db)
    .await?;
    let Some(mut aggregate) = row.as_ref().map(decode).transpose()? else {
        return Ok(None);
    };
    let hosts: Vec<(String,)> = sqlx::query_as(
        "SELECT host FROM compute_aggregate_hosts WHERE aggregate_id = $1 ORDER BY host",
    )
    .bind(id)
    .fetch_all(db)
    .await?;
    aggregate.hosts = hosts.into_iter().map(|(host,)| host).collect();
    Ok(Some(aggregate))
}

/// Stores a new aggregate named `name` with the next integer id, because Nova's
/// ids are integers, and returns it. Returns `None` when the name is taken.
/// Two concurrent creates may pick the same id, so the loser retries, up to
/// five attempts in all.
pub async fn insert(
    db: &Pool,
    name: &str,
    metadata: &BTreeMap<String, String>,
    now: i64,
) -> Result<Option<Aggregate>, sqlx::Error> {
    let metadata_text = serde_json::to_string(metadata).expect("a string map serialises");
    let mut last_error = None;
    for _ in 0..5 {
        if name_taken(db, name, None).await? {
            return Ok(None);
        }
        let (id,): (i64,) =
            sqlx::query_as("SELECT COALESCE(MAX(id), 0) + 1 FROM compute_aggregates")
                .fetch_one(db)
                .await?;
        let uuid = uuid::Uuid::new_v4().to_string();
        let inserted = sqlx::query(&format!(
            "INSERT INTO compute_aggregates ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, NULL)"
        ))
        .bind(id)
        .bind(&uuid)
        .bind(name)
        .bind(&metadata_text)
        .bind(now)
        .execute(db)
        .await;
        match inserted {
            Ok(_) => {
                return Ok(Some(Aggregate {
                    id,
                    uuid,
                    name: name.to_owned(),
                    metadata: metadata.clone(),
                    hosts: Vec::new(),
                    created_at: now,
                    updated_at: None,
                }))
            }
            Err(error) if oxstack_store::is_unique_violation(&error) => last_error = Some(error),
            Err(error) => return Err(error),
        }
    }
    match last_error {
        Some(error) => Err(error),
        None => Ok(None),
    }
}

async fn name_taken(db: &Pool, name: &str, except: Option<i64>) -> Result<bool, sqlx::Error> {
    let taken: Option<(i64,)> =
        sqlx::query_as("SELECT id FROM compute_aggregates WHERE name = $1 AND id <> $2")
            .bind(name)
            .bind(except.unwrap_or(-1))
            .fetch_optional(db)
            .await?;
    Ok(taken.is_some())
}

/// Writes the name and metadata of `aggregate`. Returns false when the
/// name belongs to another aggregate.
pub async fn update(db: &Pool, aggregate: &Aggregate) -> Result<bool, sqlx::Error> {
    if name_taken(db, &aggregate.name, Some(aggregate.id)).await? {
        return Ok(false);
    }
    let updated = sqlx::query(
        "UPDATE compute_aggregates SET name = $2, metadata = $3, updated_at = $4 WHERE id = $1",
    )
    .bind(aggregate.id)
    .bind(&aggregate.name)
    .bind(serde_json::to_string(&aggregate.metadata).expect("a string map serialises"))
    .bind(aggregate.updated_at)
    .execute(db)
    .await;
    match updated {
        Ok(_) => Ok(true),
        // Another update took the name between the check and this write.
        Err(error) if oxstack_store::is_unique_violation(&error) => Ok(false),
        Err(error) => Err(error),
    }
}

/// Deletes aggregate `id`.
pub async fn delete(db: &Pool, id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM compute_aggregate_hosts WHERE aggregate_id = $1")
        .bind(id)
        .execute(db)
        .await?;
    sqlx::query("DELETE FROM compute_aggregates WHERE id = $1")
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}

/// Adds `host` to aggregate `id`. Returns false when the host is already in it.
pub async fn add_host(db: &Pool, id: i64, host: &str, now: i64) -> Result<bool, sqlx::Error> {
    let present: Option<(String,)> = sqlx::query_as(
        "SELECT host FROM compute_aggregate_hosts WHERE aggregate_id = $1 AND host = $2",
    )
    .bind(id)
    .bind(host)
    .fetch_optional(db)
    .await?;
    if present.is_some() {
        return Ok(false);
    }
    let inserted =
        sqlx::query("INSERT INTO compute_aggregate_hosts (aggregate_id, host) VALUES ($1, $2)")
            .bind(id)
            .bind(host)
            .execute(db)
            .await;
    match inserted {
        Ok(_) => {}
        // A concurrent request added the host first.
        Err(error) if oxstack_store::is_unique_violation(&error) => return Ok(false),
        Err(error) => return Err(error),
    }
    touch(db, id, now).await?;
    Ok(true)
}

/// Removes `host` from aggregate `id`. Returns false when the host was not in it.
pub async fn remove_host(db: &Pool, id: i64, host: &str, now: i64) -> Result<bool, sqlx::Error> {
    let removed =
        sqlx::query("DELETE FROM compute_aggregate_hosts WHERE aggregate_id = $1 AND host = $2")
            .bind(id)
            .bind(host)
            .execute(db)
            .await?
            .rows_affected()
            > 0;
    if removed {
        touch(db, id, now).await?;
    }
    Ok(removed)
}

async fn touch(db: &Pool, id: i64, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE compute_aggregates SET updated_at = $2 WHERE id = $1")
        .bind(id)
        .bind(now)
        .execute(db)
        .await?;
    Ok(())
}

/// Returns the zone of each host that an aggregate puts in one. Hosts
/// missing from the map are in the default zone.
pub async fn host_zones(db: &Pool) -> Result<BTreeMap<String, String>, sqlx::Error> {
    let mut zones = BTreeMap::new();
    for aggregate in list(db).await? {
        if let Some(zone) = aggregate.zone() {
            for host in &aggregate.hosts {
                zones.entry(host.clone()).or_insert_with(|| zone.to_owned());
            }
        }
    }
    Ok(zones)
}

/// Returns the zone of `host`: its aggregates' zone, else `default_zone`.
pub async fn zone_of_host(
    db: &Pool,
    host: &str,
    default_zone: &str,
) -> Result<String, sqlx::Error> {
    Ok(host_zones(db)
        .await?
        .remove(host)
        .unwrap_or_else(|| default_zone.to_owned()))
}
