//! The flavor record, its loading with the caller's visibility rules, and
//! its JSON shape at each microversion.

use std::collections::BTreeMap;

use oxstack_core::microversion::Microversion;
use oxstack_core::ApiError;
use oxstack_store::Row;
use serde_json::{json, Map, Value};
use sqlx::any::AnyRow;

use super::db_error;
use crate::policy::Caller;
use crate::ComputeService;

/// One flavor as stored.
#[derive(Clone, Debug)]
pub struct Flavor {
    pub id: String,
    pub name: String,
    pub vcpus: i64,
    /// MiB.
    pub ram: i64,
    /// Root disk, GB.
    pub disk: i64,
    /// GB.
    pub ephemeral: i64,
    /// MiB.
    pub swap: i64,
    pub rxtx_factor: f64,
    pub is_public: bool,
    pub disabled: bool,
    pub description: Option<String>,
    pub created_at: i64,
    pub extra_specs: BTreeMap<String, String>,
}

const COLUMNS: &str = "id, name, vcpus, ram, disk, ephemeral, swap, rxtx_factor, is_public, \
                       disabled, description, created_at";

fn from_row(row: &AnyRow) -> Result<Flavor, sqlx::Error> {
    Ok(Flavor {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        vcpus: row.try_get("vcpus")?,
        ram: row.try_get("ram")?,
        disk: row.try_get("disk")?,
        ephemeral: row.try_get("ephemeral")?,
        swap: row.try_get("swap")?,
        rxtx_factor: row.try_get("rxtx_factor")?,
        is_public: row.try_get::<i64, _>("is_public")? != 0,
        disabled: row.try_get::<i64, _>("disabled")? != 0,
        description: row.try_get("description")?,
        created_at: row.try_get("created_at")?,
        extra_specs: BTreeMap::new(),
    })
}

/// Loads every flavor with its extra specs, in no particular order.
pub async fn load_all(service: &ComputeService) -> Result<Vec<Flavor>, ApiError> {
    let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM compute_flavors"))
        .fetch_all(service.pool())
        .await
        .map_err(db_error)?;
    let mut flavors = Vec::with_capacity(rows.len());
    for row in &rows {
        flavors.push(from_row(row).map_err(db_error)?);
    }
    let specs =
        sqlx::query("SELECT flavor_id, spec_key, spec_value FROM compute_flavor_extra_specs")
            .fetch_all(service.pool())
            .await
            .map_err(db_error)?;
    let mut by_flavor: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for row in &specs {
        let flavor_id: String = row.try_get("flavor_id").map_err(db_error)?;
        let key: String = row.try_get("spec_key").map_err(db_error)?;
        let value: String = row.try_get("spec_value").map_err(db_error)?;
        by_flavor.entry(flavor_id).or_default().insert(key, value);
    }
    for flavor in &mut flavors {
        flavor.extra_specs = by_flavor.remove(&flavor.id).unwrap_or_default();
    }
    Ok(flavors)
}

/// Loads one flavor by id, whatever its visibility; `None` when absent.
pub async fn load(service: &ComputeService, id: &str) -> Result<Option<Flavor>, ApiError> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM compute_flavors WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(service.pool())
    .await
    .map_err(db_error)?;
    let Some(row) = row else { return Ok(None) };
    let mut flavor = from_row(&row).map_err(db_error)?;
    let specs = sqlx::query(
        "SELECT spec_key, spec_value FROM compute_flavor_extra_specs WHERE flavor_id = $1",
    )
    .bind(id)
    .fetch_all(service.pool())
    .await
    .map_err(db_error)?;
    for row in &specs {
        flavor.extra_specs.insert(
            row.try_get("spec_key").map_err(db_error)?,
            row.try_get("spec_value").map_err(db_error)?,
        );
    }
    Ok(Some(flavor))
}

/// Returns the projects granted access to flavor `id`, sorted.
pub async fn access_projects(service: &ComputeService, id: &str) -> Result<Vec<String>, ApiError> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT project_id FROM compute_flavor_access WHERE flavor_id = $1 ORDER BY project_id",
    )
    .bind(id)
    .fetch_all(service.pool())
    .await
    .map_err(db_error)?;
    Ok(rows.into_iter().map(|(project,)| project).collect())
}

/// Loads flavor `id` if the caller may read it, as Nova's flavor queries
/// filter. Admins can read every flavor, and others public ones and private
/// ones granted to their project. An invisible flavor gets the same 404 as a
/// missing one.
pub async fn load_visible(
    service: &ComputeService,
    caller: &Caller,
    id: &str,
) -> Result<Flavor, ApiError> {
    let not_found = || ApiError::not_found(format!("Flavor {id} could not be found."));
    let flavor = load(service, id).await?.ok_or_else(not_found)?;
    if flavor.is_public || caller.is_admin() {
        return Ok(flavor);
    }
    let projects = access_projects(service, id).await?;
    if projects.iter().any(|p| p == caller.project_id()) {
        Ok(flavor)
    } else {
        Err(not_found())
    }
}

/// Renders `flavor` as Nova does at `version`; `detail` selects the full
/// view over the summary (`id`, `name`, `links`, and `description` from
/// 2.55).
pub fn render(
    service: &ComputeService,
    flavor: &Flavor,
    version: Microversion,
    detail: bool,
) -> Value {
    let mut body = Map::new();
    body.insert("id".into(), json!(flavor.id));
    body.insert("name".into(), json!(flavor.name));
    if detail {
        body.insert("ram".into(), json!(flavor.ram));
        body.insert("disk".into(), json!(flavor.disk));
        body.insert("vcpus".into(), json!(flavor.vcpus));
        // Before 2.75 Nova wrote a swap of 0 as the empty string.
        let swap = if flavor.swap == 0 && !version.at_least(2, 75) {
            json!("")
        } else {
            json!(flavor.swap)
        };
        body.insert("swap".into(), swap);
        body.insert("OS-FLV-EXT-DATA:ephemeral".into(), json!(flavor.ephemeral));
        body.insert("OS-FLV-DISABLED:disabled".into(), json!(flavor.disabled));
        body.insert("os-flavor-access:is_public".into(), json!(flavor.is_public));
        body.insert("rxtx_factor".into(), json!(flavor.rxtx_factor));
    }
    let path = format!("flavors/{}", flavor.id);
    body.insert(
        "links".into(),
        json!([
            {"rel": "self", "href": service.v21_url(&path)},
            {"rel": "bookmark", "href": service.bookmark_url(&path)},
        ]),
    );
    if version.at_least(2, 55) {
        body.insert("description".into(), json!(flavor.description));
    }
    if detail && version.at_least(2, 61) {
        body.insert("extra_specs".into(), json!(flavor.extra_specs));
    }
    Value::Object(body)
}
