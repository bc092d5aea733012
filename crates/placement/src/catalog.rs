//! Resource classes and traits: the standard names that always exist, the
//! `CUSTOM_` names operators create, and the traits and aggregates attached
//! to each provider.

use std::collections::BTreeSet;

use oxstack_store::Row;
use sqlx::AnyConnection;

use crate::error::PlacementError;
use crate::model::{now, ProviderId, STANDARD_RESOURCE_CLASSES, STANDARD_TRAITS};
use crate::providers::bump_generation;
use crate::PlacementService;

/// Whether a create request made a new name or found an existing one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Created {
    New,
    Existing,
}

/// A table of custom names: resource classes or traits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameKind {
    ResourceClass,
    Trait,
}

impl NameKind {
    fn table(self) -> &'static str {
        match self {
            NameKind::ResourceClass => "placement_resource_classes",
            NameKind::Trait => "placement_traits",
        }
    }

    fn standard(self) -> &'static [&'static str] {
        match self {
            NameKind::ResourceClass => STANDARD_RESOURCE_CLASSES,
            NameKind::Trait => STANDARD_TRAITS,
        }
    }

    /// Returns the word used in messages.
    pub fn noun(self) -> &'static str {
        match self {
            NameKind::ResourceClass => "resource class",
            NameKind::Trait => "trait",
        }
    }
}

impl PlacementService {
    /// Lists standard names first, then custom names in order.
    pub async fn names_list(&self, kind: NameKind) -> Result<Vec<String>, PlacementError> {
        let mut conn = self.pool().acquire().await?;
        let rows = sqlx::query(&format!("SELECT name FROM {} ORDER BY name", kind.table()))
            .fetch_all(&mut *conn)
            .await?;
        let mut names: Vec<String> = kind.standard().iter().map(|s| (*s).to_owned()).collect();
        for row in rows {
            names.push(row.try_get(0)?);
        }
        Ok(names)
    }

    pub async fn name_exists(&self, kind: NameKind, name: &str) -> Result<bool, PlacementError> {
        let mut conn = self.pool().acquire().await?;
        exists(&mut conn, kind, name).await
    }

    /// Creates a custom name. The caller has checked the `CUSTOM_` form.
    pub async fn name_create(&self, kind: NameKind, name: &str) -> Result<Created, PlacementError> {
        if kind.standard().contains(&name) || self.name_exists(kind, name).await? {
            return Ok(Created::Existing);
        }
        let columns = match kind {
            NameKind::ResourceClass => "(name, created_at, updated_at) VALUES ($1, $2, $2)",
            NameKind::Trait => "(name, created_at) VALUES ($1, $2)",
        };
        let result = sqlx::query(&format!("INSERT INTO {} {columns}", kind.table()))
            .bind(name)
            .bind(now())
            .execute(self.pool())
            .await;
        match result {
            Ok(_) => Ok(Created::New),
            Err(error) if oxstack_store::is_unique_violation(&error) => Ok(Created::Existing),
            Err(error) => Err(error.into()),
        }
    }

    /// Deletes a custom name that no inventory, allocation or provider uses.
    pub async fn name_delete(&self, kind: NameKind, name: &str) -> Result<(), PlacementError> {
        let noun = kind.noun();
        if kind.standard().contains(&name) {
            return Err(PlacementError::BadRequest(format!(
                "Cannot delete standard {noun} {name}."
            )));
        }
        let mut tx = self.begin_write().await?;
        if !exists(&mut tx, kind, name).await? {
            return Err(PlacementError::not_found(format!(
                "No such {noun}: {name}."
            )));
        }
        let uses: &[&str] = match kind {
            NameKind::ResourceClass => &[
                "SELECT COUNT(*) FROM placement_inventories WHERE resource_class = $1",
                "SELECT COUNT(*) FROM placement_allocations WHERE resource_class = $1",
            ],
            NameKind::Trait => &["SELECT COUNT(*) FROM placement_provider_traits WHERE trait = $1"],
        };
        for query in uses {
            let count: i64 = sqlx::query(query)
                .bind(name)
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
            if count > 0 {
                return Err(PlacementError::conflict(
                    format!("Unable to delete {noun} {name}: it is in use."),
                    crate::error::CODE_DEFAULT,
                ));
            }
        }
        sqlx::query(&format!("DELETE FROM {} WHERE name = $1", kind.table()))
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Renames a custom resource class, as `PUT /resource_classes/{name}`
    /// does before microversion 1.7, along with every inventory and
    /// allocation of it.
    pub async fn resource_class_rename(&self, from: &str, to: &str) -> Result<(), PlacementError> {
        if STANDARD_RESOURCE_CLASSES.contains(&from) {
            return Err(PlacementError::BadRequest(format!(
                "Cannot update standard resource class {from}."
            )));
        }
        let mut tx = self.begin_write().await?;
        if !exists(&mut tx, NameKind::ResourceClass, from).await? {
            return Err(PlacementError::not_found(format!(
                "No such resource class {from}."
            )));
        }
        if exists(&mut tx, NameKind::ResourceClass, to).await? {
            return Err(PlacementError::conflict(
                format!("Resource class already exists: {to}."),
                crate::error::CODE_DUPLICATE_NAME,
            ));
        }
        for statement in [
            "UPDATE placement_resource_classes SET name = $1 WHERE name = $2",
            "UPDATE placement_inventories SET resource_class = $1 WHERE resource_class = $2",
            "UPDATE placement_allocations SET resource_class = $1 WHERE resource_class = $2",
        ] {
            sqlx::query(statement)
                .bind(to)
                .bind(from)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Returns the generation and traits of a provider.
    pub async fn provider_traits(
        &self,
        provider: &ProviderId,
    ) -> Result<(i64, BTreeSet<String>), PlacementError> {
        self.provider_set(provider, "placement_provider_traits", "trait")
            .await
    }

    /// Returns the generation and aggregate UUIDs of a provider.
    pub async fn provider_aggregates(
        &self,
        provider: &ProviderId,
    ) -> Result<(i64, BTreeSet<String>), PlacementError> {
        self.provider_set(provider, "placement_provider_aggregates", "aggregate_uuid")
            .await
    }

    /// Replaces the traits of a provider. Every trait must exist.
    pub async fn provider_traits_replace(
        &self,
        provider: &ProviderId,
        generation: Option<i64>,
        traits: &BTreeSet<String>,
    ) -> Result<i64, PlacementError> {
        let mut tx = self.begin_write().await?;
        let new_generation = bump_generation(&mut tx, provider, generation).await?;
        let mut unknown = Vec::new();
        for name in traits {
            if !exists(&mut tx, NameKind::Trait, name).await? {
                unknown.push(name.as_str());
            }
        }
        if !unknown.is_empty() {
            return Err(PlacementError::BadRequest(format!(
                "No such trait(s): {}; create custom traits with PUT /traits/{{name}} first.",
                unknown.join(", ")
            )));
        }
        replace_set(
            &mut tx,
            provider,
            "placement_provider_traits",
            "trait",
            traits,
        )
        .await?;
        tx.commit().await?;
        Ok(new_generation)
    }

    /// Replaces the aggregates of a provider.
    pub async fn provider_aggregates_replace(
        &self,
        provider: &ProviderId,
        generation: Option<i64>,
        aggregates: &BTreeSet<String>,
    ) -> Result<i64, PlacementError> {
        let mut tx = self.begin_write().await?;
        let new_generation = bump_generation(&mut tx, provider, generation).await?;
        replace_set(
            &mut tx,
            provider,
            "placement_provider_aggregates",
            "aggregate_uuid",
            aggregates,
        )
        .await?;
        tx.commit().await?;
        Ok(new_generation)
    }

    async fn provider_set(
        &self,
        provider: &ProviderId,
        table: &str,
        column: &str,
    ) -> Result<(i64, BTreeSet<String>), PlacementError> {
        let mut conn = self.pool().acquire().await?;
        let found = crate::providers::find(&mut conn, provider)
            .await?
            .ok_or_else(|| PlacementError::provider_not_found(provider))?;
        let rows = sqlx::query(&format!(
            "SELECT {column} FROM {table} WHERE provider_uuid = $1"
        ))
        .bind(&provider.0)
        .fetch_all(&mut *conn)
        .await?;
        let values = rows
            .iter()
            .map(|row| row.try_get(0))
            .collect::<Result<_, _>>()?;
        Ok((found.generation, values))
    }
}

async fn replace_set(
    conn: &mut AnyConnection,
    provider: &ProviderId,
    table: &str,
    column: &str,
    values: &BTreeSet<String>,
) -> Result<(), PlacementError> {
    sqlx::query(&format!("DELETE FROM {table} WHERE provider_uuid = $1"))
        .bind(&provider.0)
        .execute(&mut *conn)
        .await?;
    for value in values {
        sqlx::query(&format!(
            "INSERT INTO {table} (provider_uuid, {column}) VALUES ($1, $2)"
        ))
        .bind(&provider.0)
        .bind(value)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

async fn exists(
    conn: &mut AnyConnection,
    kind: NameKind,
    name: &str,
) -> Result<bool, PlacementError> {
    if kind.standard().contains(&name) {
        return Ok(true);
    }
    let row = sqlx::query(&format!(
        "SELECT name FROM {} WHERE name = $1",
        kind.table()
    ))
    .bind(name)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.is_some())
}

pub(crate) async fn class_exists(
    conn: &mut AnyConnection,
    name: &str,
) -> Result<bool, PlacementError> {
    exists(conn, NameKind::ResourceClass, name).await
}

impl PlacementService {
    /// Returns the traits at least one provider has.
    pub async fn traits_in_use(&self) -> Result<BTreeSet<String>, PlacementError> {
        let rows = sqlx::query("SELECT DISTINCT trait FROM placement_provider_traits")
            .fetch_all(self.pool())
            .await?;
        Ok(rows
            .iter()
            .map(|row| row.try_get(0))
            .collect::<Result<_, _>>()?)
    }
}
