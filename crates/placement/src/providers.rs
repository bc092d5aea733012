//! Resource providers: creation, lookup, listing with filters, renaming,
//! parenting and deletion, and the generation every change to a provider
//! bumps.

use std::collections::BTreeSet;

use oxstack_store::Row;
use sqlx::AnyConnection;

use crate::error::{
    PlacementError, CODE_CANNOT_DELETE_PARENT, CODE_DUPLICATE_NAME, CODE_PROVIDER_IN_USE,
};
use crate::model::{now, Provider, ProviderId, Resources};
use crate::snapshot::Snapshot;
use crate::PlacementService;

/// Filters of `GET /resource_providers`; an empty filter lists every
/// provider.
#[derive(Clone, Debug, Default)]
pub struct ProviderFilter {
    pub name: Option<String>,
    pub uuid: Option<ProviderId>,
    /// Every group must contain one of the provider's aggregates.
    pub member_of: Vec<Vec<String>>,
    /// The provider must have room for all of these resources.
    pub resources: Resources,
    /// The provider must be in the same tree as this one.
    pub in_tree: Option<ProviderId>,
    /// Traits the provider must have.
    pub required: Vec<String>,
    /// Traits the provider must not have.
    pub forbidden: Vec<String>,
}

const PROVIDER_COLUMNS: &str = "uuid, name, generation, parent_uuid, root_uuid, updated_at";

impl PlacementService {
    /// Creates a provider; `uuid` is generated when `None`. A parent makes
    /// the provider part of the parent's tree.
    pub async fn provider_create(
        &self,
        uuid: Option<ProviderId>,
        name: &str,
        parent: Option<ProviderId>,
    ) -> Result<Provider, PlacementError> {
        let uuid = uuid.unwrap_or_else(|| ProviderId(uuid::Uuid::new_v4().to_string()));
        let mut tx = self.begin_write().await?;
        let root = match &parent {
            Some(parent_uuid) => {
                let parent = find(&mut tx, parent_uuid).await?.ok_or_else(|| {
                    PlacementError::BadRequest(format!(
                        "parent provider UUID {parent_uuid} does not exist."
                    ))
                })?;
                parent.root_uuid
            }
            None => uuid.clone(),
        };

        if find(&mut tx, &uuid).await?.is_some() {
            return Err(PlacementError::conflict(
                format!("Conflicting resource provider uuid: {uuid} already exists."),
                CODE_DUPLICATE_NAME,
            ));
        }
        if find_by_name(&mut tx, name).await?.is_some() {
            return Err(duplicate_name(name));
        }

        let at = now();
        sqlx::query(
            "INSERT INTO placement_providers
                 (uuid, name, generation, parent_uuid, root_uuid, created_at, updated_at)
             VALUES ($1, $2, 0, $3, $4, $5, $5)",
        )
        .bind(&uuid.0)
        .bind(name)
        .bind(parent.as_ref().map(|p| p.0.clone()))
        .bind(&root.0)
        .bind(at)
        .execute(&mut *tx)
        .await
        .map_err(|error| unique_as_duplicate(error, name))?;
        tx.commit().await?;
        tracing::info!(provider = %uuid, name, "resource provider created");
        Ok(Provider {
            uuid,
            name: name.to_owned(),
            generation: 0,
            parent_uuid: parent,
            root_uuid: root,
            updated_at: at,
        })
    }

    /// Returns the provider `uuid`, creating it with `name` when it does not
    /// exist. A compute host calls this at start, so a second call with the
    /// same arguments changes nothing.
    pub async fn ensure_provider(
        &self,
        uuid: &ProviderId,
        name: &str,
    ) -> Result<Provider, PlacementError> {
        if let Some(provider) = self.provider_find(uuid).await? {
            return Ok(provider);
        }
        match self.provider_create(Some(uuid.clone()), name, None).await {
            // Another caller may have created it between the lookup and the
            // insert; a conflict on the name alone stays an error.
            Err(conflict @ PlacementError::Conflict { .. }) => {
                self.provider_find(uuid).await?.ok_or(conflict)
            }
            other => other,
        }
    }

    pub async fn provider_find(
        &self,
        uuid: &ProviderId,
    ) -> Result<Option<Provider>, PlacementError> {
        let mut conn = self.pool().acquire().await?;
        find(&mut conn, uuid).await
    }

    pub async fn provider_get(&self, uuid: &ProviderId) -> Result<Provider, PlacementError> {
        self.provider_find(uuid)
            .await?
            .ok_or_else(|| PlacementError::provider_not_found(uuid))
    }

    /// Lists the providers that pass every filter in `filter`, by name.
    pub async fn provider_list(
        &self,
        filter: &ProviderFilter,
    ) -> Result<Vec<Provider>, PlacementError> {
        let mut conn = self.pool().acquire().await?;
        let rows = sqlx::query(&format!(
            "SELECT {PROVIDER_COLUMNS} FROM placement_providers ORDER BY name"
        ))
        .fetch_all(&mut *conn)
        .await?;
        let mut providers = rows
            .iter()
            .map(provider_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        drop(conn);

        providers.retain(|p| filter.name.as_ref().is_none_or(|name| &p.name == name));
        providers.retain(|p| filter.uuid.as_ref().is_none_or(|uuid| &p.uuid == uuid));
        if let Some(tree) = &filter.in_tree {
            let Some(root) = providers_root(&providers, tree, self).await? else {
                return Ok(Vec::new());
            };
            providers.retain(|p| p.root_uuid == root);
        }
        let needs_snapshot = !filter.member_of.is_empty()
            || !filter.resources.is_empty()
            || !filter.required.is_empty()
            || !filter.forbidden.is_empty();
        if needs_snapshot {
            let snapshot = Snapshot::load(self.pool()).await?;
            providers.retain(|p| {
                snapshot.in_aggregates(&p.uuid, &filter.member_of)
                    && snapshot.has_traits(&p.uuid, &filter.required, &filter.forbidden)
                    && snapshot.fits(&p.uuid, &filter.resources)
            });
        }
        Ok(providers)
    }

    /// Renames a provider and, when `parent` is `Some`, sets its parent.
    /// A provider without a parent may get one; changing or removing an
    /// existing parent is rejected, as in placement before microversion 1.37.
    pub async fn provider_update(
        &self,
        uuid: &ProviderId,
        name: &str,
        parent: Option<Option<ProviderId>>,
    ) -> Result<Provider, PlacementError> {
        let mut tx = self.begin_write().await?;
        let mut provider = find(&mut tx, uuid)
            .await?
            .ok_or_else(|| PlacementError::provider_not_found(uuid))?;
        if let Some(other) = find_by_name(&mut tx, name).await? {
            if other.uuid != *uuid {
                return Err(duplicate_name(name));
            }
        }
        if let Some(parent) = parent {
            if parent != provider.parent_uuid {
                set_parent(&mut tx, &mut provider, parent).await?;
            }
        }
        let at = now();
        sqlx::query("UPDATE placement_providers SET name = $1, updated_at = $2 WHERE uuid = $3")
            .bind(name)
            .bind(at)
            .bind(&uuid.0)
            .execute(&mut *tx)
            .await
            .map_err(|error| unique_as_duplicate(error, name))?;
        tx.commit().await?;
        provider.name = name.to_owned();
        provider.updated_at = at;
        Ok(provider)
    }

    /// Deletes a provider with its inventories, traits and aggregates. A
    /// provider with allocations or children is kept and 409 returned.
    pub async fn provider_delete(&self, uuid: &ProviderId) -> Result<(), PlacementError> {
        let mut tx = self.begin_write().await?;
        bump_generation(&mut tx, uuid, None).await?;
        let children: i64 =
            sqlx::query("SELECT COUNT(*) FROM placement_providers WHERE parent_uuid = $1")
                .bind(&uuid.0)
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
        if children > 0 {
            return Err(PlacementError::conflict(
                format!("Unable to delete parent resource provider {uuid}: it has child resource providers; delete them first."),
                CODE_CANNOT_DELETE_PARENT,
            ));
        }
        let allocations: i64 =
            sqlx::query("SELECT COUNT(*) FROM placement_allocations WHERE provider_uuid = $1")
                .bind(&uuid.0)
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
        if allocations > 0 {
            return Err(PlacementError::conflict(
                format!(
                    "Unable to delete resource provider {uuid}: Resource provider has allocations."
                ),
                CODE_PROVIDER_IN_USE,
            ));
        }
        for table in [
            "placement_inventories",
            "placement_provider_traits",
            "placement_provider_aggregates",
        ] {
            sqlx::query(&format!("DELETE FROM {table} WHERE provider_uuid = $1"))
                .bind(&uuid.0)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("DELETE FROM placement_providers WHERE uuid = $1")
            .bind(&uuid.0)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::info!(provider = %uuid, "resource provider deleted");
        Ok(())
    }
}

async fn providers_root(
    providers: &[Provider],
    tree: &ProviderId,
    service: &PlacementService,
) -> Result<Option<ProviderId>, PlacementError> {
    if let Some(provider) = providers.iter().find(|p| &p.uuid == tree) {
        return Ok(Some(provider.root_uuid.clone()));
    }
    Ok(service.provider_find(tree).await?.map(|p| p.root_uuid))
}

/// Sets the parent of a provider that has none, moving its whole subtree
/// to the parent's root.
async fn set_parent(
    conn: &mut AnyConnection,
    provider: &mut Provider,
    parent: Option<ProviderId>,
) -> Result<(), PlacementError> {
    let Some(parent_uuid) = parent else {
        return Err(PlacementError::BadRequest(
            "Un-parenting a provider is not currently allowed.".into(),
        ));
    };
    if provider.parent_uuid.is_some() {
        return Err(PlacementError::BadRequest(
            "Re-parenting a provider is not currently allowed.".into(),
        ));
    }
    let parent = find(conn, &parent_uuid).await?.ok_or_else(|| {
        PlacementError::BadRequest(format!(
            "parent provider UUID {parent_uuid} does not exist."
        ))
    })?;
    // The provider has no parent, so it is the root of its tree; a parent
    // inside that tree would make a cycle.
    if parent.root_uuid == provider.uuid {
        return Err(PlacementError::BadRequest(format!(
            "creating loop in the provider tree is not allowed: {parent_uuid} is in the tree of {}.",
            provider.uuid
        )));
    }
    sqlx::query("UPDATE placement_providers SET parent_uuid = $1 WHERE uuid = $2")
        .bind(&parent_uuid.0)
        .bind(&provider.uuid.0)
        .execute(&mut *conn)
        .await?;
    sqlx::query("UPDATE placement_providers SET root_uuid = $1 WHERE root_uuid = $2")
        .bind(&parent.root_uuid.0)
        .bind(&provider.uuid.0)
        .execute(&mut *conn)
        .await?;
    provider.parent_uuid = Some(parent_uuid);
    provider.root_uuid = parent.root_uuid;
    Ok(())
}

/// Increments the generation of provider `uuid` and returns the new value.
/// With `expected`, the update applies only when the stored generation
/// still equals it. Run as the first write of a transaction, the update
/// takes the provider's row lock (PostgreSQL) or the database write lock
/// (SQLite), so writers to one provider run one after another.
pub(crate) async fn bump_generation(
    conn: &mut AnyConnection,
    uuid: &ProviderId,
    expected: Option<i64>,
) -> Result<i64, PlacementError> {
    let result = match expected {
        Some(generation) => {
            sqlx::query(
                "UPDATE placement_providers SET generation = generation + 1, updated_at = $1
             WHERE uuid = $2 AND generation = $3",
            )
            .bind(now())
            .bind(&uuid.0)
            .bind(generation)
            .execute(&mut *conn)
            .await?
        }
        None => {
            sqlx::query(
                "UPDATE placement_providers SET generation = generation + 1, updated_at = $1
             WHERE uuid = $2",
            )
            .bind(now())
            .bind(&uuid.0)
            .execute(&mut *conn)
            .await?
        }
    };
    if result.rows_affected() == 0 {
        return match find(conn, uuid).await? {
            Some(_) => Err(PlacementError::provider_generation(uuid)),
            None => Err(PlacementError::provider_not_found(uuid)),
        };
    }
    let row = sqlx::query("SELECT generation FROM placement_providers WHERE uuid = $1")
        .bind(&uuid.0)
        .fetch_one(&mut *conn)
        .await?;
    Ok(row.try_get(0)?)
}

pub(crate) async fn find(
    conn: &mut AnyConnection,
    uuid: &ProviderId,
) -> Result<Option<Provider>, PlacementError> {
    let row = sqlx::query(&format!(
        "SELECT {PROVIDER_COLUMNS} FROM placement_providers WHERE uuid = $1"
    ))
    .bind(&uuid.0)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.as_ref().map(provider_from_row).transpose()?)
}

async fn find_by_name(
    conn: &mut AnyConnection,
    name: &str,
) -> Result<Option<Provider>, PlacementError> {
    let row = sqlx::query(&format!(
        "SELECT {PROVIDER_COLUMNS} FROM placement_providers WHERE name = $1"
    ))
    .bind(name)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.as_ref().map(provider_from_row).transpose()?)
}

/// Returns the providers among `uuids` that do not exist.
pub(crate) async fn missing(
    conn: &mut AnyConnection,
    uuids: &BTreeSet<ProviderId>,
) -> Result<Vec<ProviderId>, PlacementError> {
    let mut missing = Vec::new();
    for uuid in uuids {
        if find(conn, uuid).await?.is_none() {
            missing.push(uuid.clone());
        }
    }
    Ok(missing)
}

fn provider_from_row(row: &sqlx::any::AnyRow) -> Result<Provider, sqlx::Error> {
    Ok(Provider {
        uuid: ProviderId(row.try_get("uuid")?),
        name: row.try_get("name")?,
        generation: row.try_get("generation")?,
        parent_uuid: row
            .try_get::<Option<String>, _>("parent_uuid")?
            .map(ProviderId),
        root_uuid: ProviderId(row.try_get("root_uuid")?),
        updated_at: row.try_get("updated_at")?,
    })
}

fn duplicate_name(name: &str) -> PlacementError {
    PlacementError::conflict(
        format!("Conflicting resource provider name: {name} already exists."),
        CODE_DUPLICATE_NAME,
    )
}

fn unique_as_duplicate(error: sqlx::Error, name: &str) -> PlacementError {
    if oxstack_store::is_unique_violation(&error) {
        duplicate_name(name)
    } else {
        error.into()
    }
}
