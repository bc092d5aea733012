//! Allocations: what each consumer holds on each provider. Writing a
//! consumer's allocations replaces them whole, checks capacity and unit
//! limits on every provider involved, and commits all of it or nothing.

use std::collections::{BTreeMap, BTreeSet};

use oxstack_store::Row;
use sqlx::AnyConnection;

use crate::catalog::class_exists;
use crate::error::{PlacementError, CODE_CONCURRENT_UPDATE};
use crate::model::{now, ConsumerId, ProviderId, Resources};
use crate::providers::{bump_generation, missing};
use crate::PlacementService;

/// The allocations one consumer should hold after a write.
#[derive(Clone, Debug)]
pub struct ConsumerAllocations {
    pub consumer: ConsumerId,
    pub project_id: String,
    pub user_id: String,
    /// The consumer generation the caller last read: `Some(None)` when it
    /// expects a new consumer, `None` to skip the check (microversions
    /// before 1.28 and the Rust API).
    pub consumer_generation: Option<Option<i64>>,
    /// Resources by provider; empty removes every allocation.
    pub allocations: BTreeMap<ProviderId, Resources>,
}

/// A consumer's stored allocations.
#[derive(Clone, Debug, Default)]
pub struct ConsumerView {
    pub project_id: String,
    pub user_id: String,
    pub generation: i64,
    /// Each provider's current generation and the resources held on it.
    pub allocations: BTreeMap<ProviderId, (i64, Resources)>,
}

impl PlacementService {
    /// Replaces the allocations of every consumer in `requests`, in one
    /// transaction: when any provider lacks room, nothing changes.
    pub async fn allocations_replace(
        &self,
        requests: &[ConsumerAllocations],
    ) -> Result<(), PlacementError> {
        let mut tx = self.begin_write().await?;
        lock_providers(&mut tx, requests).await?;
        for request in requests {
            check_consumer_generation(&mut tx, request).await?;
            sqlx::query("DELETE FROM placement_allocations WHERE consumer_uuid = $1")
                .bind(&request.consumer.0)
                .execute(&mut *tx)
                .await?;
        }
        // Capacity is checked after every consumer's old allocations are
        // gone, so moving resources between consumers in one request works.
        for request in requests {
            for (provider, resources) in &request.allocations {
                check_and_insert(&mut tx, &request.consumer, provider, resources).await?;
            }
            save_consumer(&mut tx, request).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Claims `allocations` for `consumer`, replacing what it held. Fails
    /// with [`PlacementError::CapacityExceeded`] when a provider lacks room.
    pub async fn claim(
        &self,
        consumer: &ConsumerId,
        project: &str,
        user: &str,
        allocations: &BTreeMap<ProviderId, Resources>,
    ) -> Result<(), crate::ClaimError> {
        self.allocations_replace(&[ConsumerAllocations {
            consumer: consumer.clone(),
            project_id: project.to_owned(),
            user_id: user.to_owned(),
            consumer_generation: None,
            allocations: allocations.clone(),
        }])
        .await
    }

    /// Removes every allocation of `consumer`; returns false when it held
    /// none.
    pub async fn release(&self, consumer: &ConsumerId) -> Result<bool, PlacementError> {
        let mut tx = self.begin_write().await?;
        let previous = consumer_providers(&mut tx, consumer).await?;
        for provider in &previous {
            bump_generation(&mut tx, provider, None).await?;
        }
        sqlx::query("DELETE FROM placement_allocations WHERE consumer_uuid = $1")
            .bind(&consumer.0)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM placement_consumers WHERE uuid = $1")
            .bind(&consumer.0)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(!previous.is_empty())
    }

    /// Returns a consumer's allocations, or `None` when it has none.
    pub async fn consumer_allocations(
        &self,
        consumer: &ConsumerId,
    ) -> Result<Option<ConsumerView>, PlacementError> {
        let mut conn = self.pool().acquire().await?;
        let Some(row) = sqlx::query(
            "SELECT project_id, user_id, generation FROM placement_consumers WHERE uuid = $1",
        )
        .bind(&consumer.0)
        .fetch_optional(&mut *conn)
        .await?
        else {
            return Ok(None);
        };

        let mut view = ConsumerView {
            project_id: row.try_get(0)?,
            user_id: row.try_get(1)?,
            generation: row.try_get(2)?,
            allocations: BTreeMap::new(),
        };
        let rows = sqlx::query(
            "SELECT a.provider_uuid, p.generation, a.resource_class, a.used
             FROM placement_allocations a
             JOIN placement_providers p ON p.uuid = a.provider_uuid
             WHERE a.consumer_uuid = $1",
        )
        .bind(&consumer.0)
        .fetch_all(&mut *conn)
        .await?;
        for row in rows {
            let entry = view
                .allocations
                .entry(ProviderId(row.try_get(0)?))
                .or_insert_with(|| (0, Resources::new()));
            entry.0 = row.try_get(1)?;
            entry.1.insert(row.try_get(2)?, row.try_get(3)?);
        }
        Ok(Some(view))
    }

    /// Returns a provider's generation and, by consumer, the consumer's
    /// generation and its allocations on the provider.
    pub async fn provider_allocations(
        &self,
        provider: &ProviderId,
    ) -> Result<(i64, BTreeMap<ConsumerId, (i64, Resources)>), PlacementError> {
        let found = self.provider_get(provider).await?;
        let rows = sqlx::query(
            "SELECT a.consumer_uuid, c.generation, a.resource_class, a.used
             FROM placement_allocations a
             JOIN placement_consumers c ON c.uuid = a.consumer_uuid
             WHERE a.provider_uuid = $1",
        )
        .bind(&provider.0)
        .fetch_all(self.pool())
        .await?;
        let mut by_consumer: BTreeMap<ConsumerId, (i64, Resources)> = BTreeMap::new();
        for row in rows {
            let entry = by_consumer
                .entry(ConsumerId(row.try_get(0)?))
                .or_insert_with(|| (0, Resources::new()));
            entry.0 = row.try_get(1)?;
            entry.1.insert(row.try_get(2)?, row.try_get(3)?);
        }
        Ok((found.generation, by_consumer))
    }

    /// Returns a provider's generation and its usage of every class it has
    /// inventory of (zero when unallocated).
    pub async fn provider_usages(
        &self,
        provider: &ProviderId,
    ) -> Result<(i64, Resources), PlacementError> {
        let (generation, inventories) = self.inventories_get(provider).await?;
        let mut usages: Resources = inventories.keys().map(|class| (class.clone(), 0)).collect();
        let rows = sqlx::query(
            "SELECT resource_class, CAST(SUM(used) AS BIGINT) FROM placement_allocations
             WHERE provider_uuid = $1 GROUP BY resource_class",
        )
        .bind(&provider.0)
        .fetch_all(self.pool())
        .await?;
        for row in rows {
            usages.insert(row.try_get(0)?, row.try_get(1)?);
        }
        Ok((generation, usages))
    }

    /// Returns the total usage of a project's consumers, and of one user's
    /// when `user` is given.
    pub async fn usages(
        &self,
        project: &str,
        user: Option<&str>,
    ) -> Result<Resources, PlacementError> {
        let rows = sqlx::query(
            "SELECT a.resource_class, CAST(SUM(a.used) AS BIGINT)
             FROM placement_allocations a
             JOIN placement_consumers c ON c.uuid = a.consumer_uuid
             WHERE c.project_id = $1 AND ($2 = '' OR c.user_id = $2)
             GROUP BY a.resource_class",
        )
        .bind(project)
        .bind(user.unwrap_or(""))
        .fetch_all(self.pool())
        .await?;
        let mut usages = Resources::new();
        for row in rows {
            usages.insert(row.try_get(0)?, row.try_get(1)?);
        }
        Ok(usages)
    }
}

/// Bumps the generation of every provider the write touches: those the
/// consumers hold allocations on now and those they will. Providers are
/// locked in UUID order so that two writers never wait for each other's
/// provider locks in a cycle on PostgreSQL.
async fn lock_providers(
    conn: &mut AnyConnection,
    requests: &[ConsumerAllocations],
) -> Result<(), PlacementError> {
    let mut requested = BTreeSet::new();
    for request in requests {
        requested.extend(request.allocations.keys().cloned());
    }
    let absent = missing(conn, &requested).await?;
    if let Some(provider) = absent.first() {
        return Err(PlacementError::BadRequest(format!(
            "Allocation for resource provider '{provider}' that does not exist."
        )));
    }
    let mut touched = requested;
    for request in requests {
        touched.extend(consumer_providers(conn, &request.consumer).await?);
    }
    for provider in &touched {
        bump_generation(conn, provider, None).await?;
    }
    Ok(())
}

async fn consumer_providers(
    conn: &mut AnyConnection,
    consumer: &ConsumerId,
) -> Result<BTreeSet<ProviderId>, PlacementError> {
    let rows = sqlx::query(
        "SELECT DISTINCT provider_uuid FROM placement_allocations WHERE consumer_uuid = $1",
    )
    .bind(&consumer.0)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .iter()
        .map(|row| row.try_get(0).map(ProviderId))
        .collect::<Result<_, _>>()?)
}

async fn check_consumer_generation(
    conn: &mut AnyConnection,
    request: &ConsumerAllocations,
) -> Result<(), PlacementError> {
    let Some(expected) = request.consumer_generation else {
        return Ok(());
    };
    let row = sqlx::query("SELECT generation FROM placement_consumers WHERE uuid = $1")
        .bind(&request.consumer.0)
        .fetch_optional(&mut *conn)
        .await?;
    let stored: Option<i64> = row.map(|row| row.try_get(0)).transpose()?;
    if stored == expected {
        return Ok(());
    }
    let show = |g: Option<i64>| g.map_or_else(|| "None".to_owned(), |g| g.to_string());
    Err(PlacementError::conflict(
        format!(
            "consumer generation conflict - expected {} but got {} for consumer {}; read its allocations again and retry.",
            show(expected),
            show(stored),
            request.consumer
        ),
        CODE_CONCURRENT_UPDATE,
    ))
}

/// Checks that `resources` fit on `provider` beside everything else
/// allocated there, then inserts them.
async fn check_and_insert(
    conn: &mut AnyConnection,
    consumer: &ConsumerId,
    provider: &ProviderId,
    resources: &Resources,
) -> Result<(), PlacementError> {
    let inventories = crate::inventories::load(conn, provider).await?;
    for (class, &requested) in resources {
        let Some(inventory) = inventories.get(class) else {
            if !class_exists(conn, class).await? {
                return Err(PlacementError::BadRequest(format!(
                    "Unable to allocate inventory: resource class {class} does not exist."
                )));
            }
            return Err(PlacementError::conflict(
                format!("Unable to allocate inventory: Inventory for '{class}' on resource provider '{provider}' invalid: the provider has no inventory of {class}."),
                crate::error::CODE_DEFAULT,
            ));
        };
        if let Err(violation) = inventory.check_units(requested) {
            return Err(PlacementError::conflict(
                format!("Unable to allocate inventory: allocation of {class} on resource provider {provider} violates min_unit, max_unit or step_size: {violation}."),
                crate::error::CODE_DEFAULT,
            ));
        }
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(used), 0) AS BIGINT) FROM placement_allocations
             WHERE provider_uuid = $1 AND resource_class = $2",
        )
        .bind(&provider.0)
        .bind(class)
        .fetch_one(&mut *conn)
        .await?;
        let used: i64 = row.try_get(0)?;
        let capacity = inventory.capacity();
        if used + requested > capacity {
            return Err(PlacementError::CapacityExceeded {
                provider: provider.clone(),
                class: class.clone(),
                requested,
                capacity,
                used,
            });
        }
        sqlx::query(
            "INSERT INTO placement_allocations (consumer_uuid, provider_uuid, resource_class, used)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(&consumer.0)
        .bind(&provider.0)
        .bind(class)
        .bind(requested)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Records the consumer's project, user and a new generation, or deletes
/// the consumer when it has no allocations left.
async fn save_consumer(
    conn: &mut AnyConnection,
    request: &ConsumerAllocations,
) -> Result<(), PlacementError> {
    let at = now();
    if request.allocations.is_empty() {
        sqlx::query("DELETE FROM placement_consumers WHERE uuid = $1")
            .bind(&request.consumer.0)
            .execute(&mut *conn)
            .await?;
        return Ok(());
    }
    let updated = sqlx::query(
        "UPDATE placement_consumers
         SET project_id = $1, user_id = $2, generation = generation + 1, updated_at = $3
         WHERE uuid = $4",
    )
    .bind(&request.project_id)
    .bind(&request.user_id)
    .bind(at)
    .bind(&request.consumer.0)
    .execute(&mut *conn)
    .await?;
    if updated.rows_affected() == 0 {
        sqlx::query(
            "INSERT INTO placement_consumers (uuid, project_id, user_id, generation, created_at, updated_at)
             VALUES ($1, $2, $3, 1, $4, $4)",
        )
        .bind(&request.consumer.0)
        .bind(&request.project_id)
        .bind(&request.user_id)
        .bind(at)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}
