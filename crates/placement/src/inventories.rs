//! Inventories: what each provider has of each resource class. Every change
//! bumps the provider's generation, checked against the caller's when the
//! caller sends one.

use std::collections::BTreeSet;

use oxstack_store::Row;
use sqlx::AnyConnection;

use crate::catalog::class_exists;
use crate::error::{PlacementError, CODE_INVENTORY_IN_USE};
use crate::model::{Inventories, Inventory, ProviderId, MAX_INT};
use crate::providers::{self, bump_generation};
use crate::snapshot::inventory_from_row;
use crate::PlacementService;

/// The part of a provider's inventory that a write replaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scope {
    /// The given classes become the whole inventory; others are removed.
    All,
    /// Only the given classes change.
    Listed,
}

impl PlacementService {
    /// Returns the provider's generation and inventories.
    pub async fn inventories_get(
        &self,
        provider: &ProviderId,
    ) -> Result<(i64, Inventories), PlacementError> {
        let mut conn = self.pool().acquire().await?;
        let found = providers::find(&mut conn, provider)
            .await?
            .ok_or_else(|| PlacementError::provider_not_found(provider))?;
        Ok((found.generation, load(&mut conn, provider).await?))
    }

    /// Replaces all inventories of `provider` and returns its new
    /// generation. Removing a class that has allocations is a 409.
    pub async fn inventories_replace(
        &self,
        provider: &ProviderId,
        generation: Option<i64>,
        inventories: &Inventories,
        reserved_may_equal_total: bool,
    ) -> Result<i64, PlacementError> {
        self.write(
            provider,
            generation,
            inventories,
            Scope::All,
            reserved_may_equal_total,
        )
        .await
    }

    /// Sets the inventories of the Rust API's caller (the compute host's
    /// resource tracker), replacing all others without a generation check.
    pub async fn set_inventory(
        &self,
        provider: &ProviderId,
        inventories: &Inventories,
    ) -> Result<i64, PlacementError> {
        self.write(provider, None, inventories, Scope::All, true)
            .await
    }

    /// Creates (`create`) or updates the inventory of one class.
    pub async fn inventory_put(
        &self,
        provider: &ProviderId,
        generation: Option<i64>,
        class: &str,
        inventory: Inventory,
        create: bool,
        reserved_may_equal_total: bool,
    ) -> Result<i64, PlacementError> {
        let mut tx = self.begin_write().await?;
        let new_generation = bump_generation(&mut tx, provider, generation).await?;
        let existing = load(&mut tx, provider).await?;
        match (create, existing.contains_key(class)) {
            (true, true) => {
                return Err(PlacementError::conflict(
                    format!("Conflicting inventory: inventory for {class} on resource provider {provider} already exists; update it with PUT."),
                    crate::error::CODE_DEFAULT,
                ))
            }
            (false, false) => {
                return Err(PlacementError::BadRequest(format!(
                    "No inventory record with resource class {class} for resource provider {provider}."
                )))
            }
            _ => {}
        }
        let single = Inventories::from([(class.to_owned(), inventory)]);
        check_all(&mut tx, &single, reserved_may_equal_total).await?;
        store(&mut tx, provider, &single, Scope::Listed).await?;
        tx.commit().await?;
        Ok(new_generation)
    }

    /// Deletes the inventory of one class. Allocations of it make a 409.
    pub async fn inventory_delete(
        &self,
        provider: &ProviderId,
        class: &str,
    ) -> Result<(), PlacementError> {
        let mut tx = self.begin_write().await?;
        bump_generation(&mut tx, provider, None).await?;
        let existing = load(&mut tx, provider).await?;
        if !existing.contains_key(class) {
            return Err(PlacementError::not_found(format!(
                "No inventory of class {class} found for resource provider {provider}."
            )));
        }
        check_unused(&mut tx, provider, &BTreeSet::from([class.to_owned()])).await?;
        sqlx::query(
            "DELETE FROM placement_inventories WHERE provider_uuid = $1 AND resource_class = $2",
        )
        .bind(&provider.0)
        .bind(class)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn write(
        &self,
        provider: &ProviderId,
        generation: Option<i64>,
        inventories: &Inventories,
        scope: Scope,
        reserved_may_equal_total: bool,
    ) -> Result<i64, PlacementError> {
        let mut tx = self.begin_write().await?;
        let new_generation = bump_generation(&mut tx, provider, generation).await?;
        check_all(&mut tx, inventories, reserved_may_equal_total).await?;
        if scope == Scope::All {
            let existing = load(&mut tx, provider).await?;
            let removed: BTreeSet<String> = existing
                .keys()
                .filter(|class| !inventories.contains_key(*class))
                .cloned()
                .collect();
            check_unused(&mut tx, provider, &removed).await?;
        }
        store(&mut tx, provider, inventories, scope).await?;
        tx.commit().await?;
        Ok(new_generation)
    }
}

/// Checks the classes exist and each inventory's fields are consistent.
async fn check_all(
    conn: &mut AnyConnection,
    inventories: &Inventories,
    reserved_may_equal_total: bool,
) -> Result<(), PlacementError> {
    for (class, inventory) in inventories {
        if !class_exists(conn, class).await? {
            return Err(PlacementError::BadRequest(format!(
                "Unknown resource class in inventory: {class}; create it with PUT /resource_classes/{class} first."
            )));
        }
        check_inventory(class, inventory, reserved_may_equal_total)?;
    }
    Ok(())
}

/// Checks one inventory's fields. Before microversion 1.26 `reserved` must
/// be below `total`; from 1.26 it may equal it.
pub fn check_inventory(
    class: &str,
    inventory: &Inventory,
    reserved_may_equal_total: bool,
) -> Result<(), PlacementError> {
    let too_large = inventory.reserved > inventory.total
        || (!reserved_may_equal_total && inventory.reserved == inventory.total);
    if too_large {
        return Err(PlacementError::BadRequest(format!(
            "Unable to update inventory for resource class {class}: reserved {} must be {} total {}.",
            inventory.reserved,
            if reserved_may_equal_total { "at most" } else { "less than" },
            inventory.total
        )));
    }
    if inventory.min_unit > inventory.max_unit {
        return Err(PlacementError::BadRequest(format!(
            "Unable to update inventory for resource class {class}: min_unit {} is above max_unit {}.",
            inventory.min_unit, inventory.max_unit
        )));
    }
    let in_range = |value: i64, min: i64| (min..=MAX_INT).contains(&value);
    let valid = in_range(inventory.total, 1)
        && in_range(inventory.reserved, 0)
        && in_range(inventory.min_unit, 1)
        && in_range(inventory.max_unit, 1)
        && in_range(inventory.step_size, 1)
        && inventory.allocation_ratio > 0.0
        && inventory.allocation_ratio.is_finite();
    if !valid {
        return Err(PlacementError::BadRequest(format!(
            "Unable to update inventory for resource class {class}: a field is out of range."
        )));
    }
    Ok(())
}

/// Fails with 409 when any of `classes` has allocations on `provider`.
async fn check_unused(
    conn: &mut AnyConnection,
    provider: &ProviderId,
    classes: &BTreeSet<String>,
) -> Result<(), PlacementError> {
    for class in classes {
        let row = sqlx::query(
            "SELECT COUNT(*) FROM placement_allocations
             WHERE provider_uuid = $1 AND resource_class = $2",
        )
        .bind(&provider.0)
        .bind(class)
        .fetch_one(&mut *conn)
        .await?;
        let count: i64 = row.try_get(0)?;
        if count > 0 {
            return Err(PlacementError::conflict(
                format!("Inventory for {class} on resource provider {provider} in use; remove its allocations first."),
                CODE_INVENTORY_IN_USE,
            ));
        }
    }
    Ok(())
}

async fn store(
    conn: &mut AnyConnection,
    provider: &ProviderId,
    inventories: &Inventories,
    scope: Scope,
) -> Result<(), PlacementError> {
    if scope == Scope::All {
        sqlx::query("DELETE FROM placement_inventories WHERE provider_uuid = $1")
            .bind(&provider.0)
            .execute(&mut *conn)
            .await?;
    }
    for (class, inventory) in inventories {
        sqlx::query(
            "DELETE FROM placement_inventories WHERE provider_uuid = $1 AND resource_class = $2",
        )
        .bind(&provider.0)
        .bind(class)
        .execute(&mut *conn)
        .await?;
        sqlx::query(
            "INSERT INTO placement_inventories
                 (provider_uuid, resource_class, total, reserved, min_unit, max_unit,
                  step_size, allocation_ratio)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&provider.0)
        .bind(class)
        .bind(inventory.total)
        .bind(inventory.reserved)
        .bind(inventory.min_unit)
        .bind(inventory.max_unit)
        .bind(inventory.step_size)
        .bind(inventory.allocation_ratio)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

pub(crate) async fn load(
    conn: &mut AnyConnection,
    provider: &ProviderId,
) -> Result<Inventories, PlacementError> {
    let rows = sqlx::query(
        "SELECT provider_uuid, resource_class, total, reserved, min_unit, max_unit,
                step_size, allocation_ratio
         FROM placement_inventories WHERE provider_uuid = $1",
    )
    .bind(&provider.0)
    .fetch_all(&mut *conn)
    .await?;
    let mut inventories = Inventories::new();
    for row in rows {
        let (_, class, inventory) = inventory_from_row(&row)?;
        inventories.insert(class, inventory);
    }
    Ok(inventories)
}
