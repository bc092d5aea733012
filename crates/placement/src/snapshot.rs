//! A read of every provider's inventories, usages, traits and aggregates,
//! for the queries that filter many providers at once (provider lists with
//! `resources`, allocation candidates). Three queries in all, whatever the
//! number of providers.

use std::collections::{BTreeSet, HashMap};

use oxstack_store::{Pool, Row};

use crate::error::PlacementError;
use crate::model::{Inventories, Inventory, ProviderId, Resources};

/// Inventories, usages, traits and aggregates by provider.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub inventories: HashMap<ProviderId, Inventories>,
    pub usages: HashMap<ProviderId, Resources>,
    pub traits: HashMap<ProviderId, BTreeSet<String>>,
    pub aggregates: HashMap<ProviderId, BTreeSet<String>>,
}

impl Snapshot {
    pub async fn load(pool: &Pool) -> Result<Self, PlacementError> {
        let mut conn = pool.acquire().await?;
        let mut snapshot = Snapshot::default();

        let rows = sqlx::query(
            "SELECT provider_uuid, resource_class, total, reserved, min_unit, max_unit,
                    step_size, allocation_ratio
             FROM placement_inventories",
        )
        .fetch_all(&mut *conn)
        .await?;
        for row in rows {
            let (provider, class, inventory) = inventory_from_row(&row)?;
            snapshot
                .inventories
                .entry(provider)
                .or_default()
                .insert(class, inventory);
        }

        let rows = sqlx::query(
            "SELECT provider_uuid, resource_class, CAST(SUM(used) AS BIGINT) AS used
             FROM placement_allocations GROUP BY provider_uuid, resource_class",
        )
        .fetch_all(&mut *conn)
        .await?;
        for row in rows {
            let provider = ProviderId(row.try_get("provider_uuid")?);
            let used: i64 = row.try_get("used")?;
            snapshot
                .usages
                .entry(provider)
                .or_default()
                .insert(row.try_get("resource_class")?, used);
        }

        for (table, column) in [
            ("placement_provider_traits", "trait"),
            ("placement_provider_aggregates", "aggregate_uuid"),
        ] {
            let rows = sqlx::query(&format!("SELECT provider_uuid, {column} FROM {table}"))
                .fetch_all(&mut *conn)
                .await?;
            let map = if column == "trait" {
                &mut snapshot.traits
            } else {
                &mut snapshot.aggregates
            };
            for row in rows {
                let provider = ProviderId(row.try_get(0)?);
                map.entry(provider).or_default().insert(row.try_get(1)?);
            }
        }
        Ok(snapshot)
    }

    pub fn used(&self, provider: &ProviderId, class: &str) -> i64 {
        self.usages
            .get(provider)
            .and_then(|u| u.get(class))
            .copied()
            .unwrap_or(0)
    }

    /// True when `provider` has inventory of every class in `resources`,
    /// each amount passes the class's unit limits and fits in what is left.
    pub fn fits(&self, provider: &ProviderId, resources: &Resources) -> bool {
        let empty = Inventories::new();
        let inventories = self.inventories.get(provider).unwrap_or(&empty);
        resources.iter().all(|(class, &amount)| {
            inventories.get(class).is_some_and(|inventory| {
                inventory.check_units(amount).is_ok()
                    && self.used(provider, class) + amount <= inventory.capacity()
            })
        })
    }

    /// True when the provider has every `required` trait and no
    /// `forbidden` one.
    pub fn has_traits(
        &self,
        provider: &ProviderId,
        required: &[String],
        forbidden: &[String],
    ) -> bool {
        let empty = BTreeSet::new();
        let traits = self.traits.get(provider).unwrap_or(&empty);
        required.iter().all(|t| traits.contains(t)) && !forbidden.iter().any(|t| traits.contains(t))
    }

    /// True when each group in `member_of` names one of the provider's
    /// aggregates.
    pub fn in_aggregates(&self, provider: &ProviderId, member_of: &[Vec<String>]) -> bool {
        let empty = BTreeSet::new();
        let aggregates = self.aggregates.get(provider).unwrap_or(&empty);
        member_of
            .iter()
            .all(|group| group.iter().any(|a| aggregates.contains(a)))
    }
}

pub(crate) fn inventory_from_row(
    row: &sqlx::any::AnyRow,
) -> Result<(ProviderId, String, Inventory), sqlx::Error> {
    let inventory = Inventory {
        total: row.try_get("total")?,
        reserved: row.try_get("reserved")?,
        min_unit: row.try_get("min_unit")?,
        max_unit: row.try_get("max_unit")?,
        step_size: row.try_get("step_size")?,
        allocation_ratio: row.try_get("allocation_ratio")?,
    };
    Ok((
        ProviderId(row.try_get("provider_uuid")?),
        row.try_get("resource_class")?,
        inventory,
    ))
}
