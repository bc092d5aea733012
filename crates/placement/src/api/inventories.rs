//! `/resource_providers/{uuid}/inventories` and
//! `/resource_providers/{uuid}/inventories/{resource_class}`.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use oxstack_core::microversion::Microversion;
use oxstack_core::validate::JsonBody;
use oxstack_core::{body_schema, ApiError, RequestContext};
use serde::Deserialize;
use serde_json::{json, Value};

use super::resource_providers::provider_id;
use super::{authorize, link, require, PlacementState};
use crate::model::{Inventories, Inventory, MAX_INT};

pub fn routes() -> Router<PlacementState> {
    Router::new()
        .route(
            "/resource_providers/{uuid}/inventories",
            get(list).put(replace).post(create).delete(remove_all),
        )
        .route(
            "/resource_providers/{uuid}/inventories/{resource_class}",
            get(show).put(update).delete(remove),
        )
}

pub fn render_inventory(inventory: &Inventory) -> Value {
    json!({
        "total": inventory.total,
        "reserved": inventory.reserved,
        "min_unit": inventory.min_unit,
        "max_unit": inventory.max_unit,
        "step_size": inventory.step_size,
        "allocation_ratio": inventory.allocation_ratio,
    })
}

fn render_all(generation: i64, inventories: &Inventories) -> Value {
    let rendered: serde_json::Map<String, Value> = inventories
        .iter()
        .map(|(class, inventory)| (class.clone(), render_inventory(inventory)))
        .collect();
    json!({"inventories": rendered, "resource_provider_generation": generation})
}

fn render_one(generation: i64, inventory: &Inventory) -> Value {
    let mut body = render_inventory(inventory);
    body["resource_provider_generation"] = generation.into();
    body
}

/// The fields of one inventory in a request; omitted ones take placement's
/// defaults.
#[derive(Deserialize)]
struct InventoryFields {
    total: i64,
    reserved: Option<i64>,
    min_unit: Option<i64>,
    max_unit: Option<i64>,
    step_size: Option<i64>,
    allocation_ratio: Option<f64>,
}

impl InventoryFields {
    fn into_inventory(self) -> Inventory {
        let defaults = Inventory::with_total(self.total);
        Inventory {
            total: self.total,
            reserved: self.reserved.unwrap_or(defaults.reserved),
            min_unit: self.min_unit.unwrap_or(defaults.min_unit),
            max_unit: self.max_unit.unwrap_or(defaults.max_unit),
            step_size: self.step_size.unwrap_or(defaults.step_size),
            allocation_ratio: self.allocation_ratio.unwrap_or(defaults.allocation_ratio),
        }
    }
}

/// Returns the JSON schema of one inventory's fields, with `extra` properties and
/// `required` names added.
fn inventory_schema(extra: Value, required: &[&str]) -> Value {
    let mut properties = json!({
        "total": {"type": "integer", "minimum": 1, "maximum": MAX_INT},
        "reserved": {"type": "integer", "minimum": 0, "maximum": MAX_INT},
        "min_unit": {"type": "integer", "minimum": 1, "maximum": MAX_INT},
        "max_unit": {"type": "integer", "minimum": 1, "maximum": MAX_INT},
        "step_size": {"type": "integer", "minimum": 1, "maximum": MAX_INT},
        "allocation_ratio": {"type": "number", "exclusiveMinimum": 0, "maximum": 3.40282e38}
    });
    if let (Some(properties), Some(extra)) = (properties.as_object_mut(), extra.as_object()) {
        properties.extend(extra.clone());
    }
    json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false
    })
}

fn class_pattern() -> Value {
    json!({"type": "string", "pattern": "^[A-Z0-9_]+$", "maxLength": 255})
}

#[derive(Deserialize)]
struct ReplaceBody {
    resource_provider_generation: i64,
    inventories: BTreeMap<String, InventoryFields>,
}

body_schema!(
    ReplaceBody,
    json!({
        "type": "object",
        "properties": {
            "resource_provider_generation": {"type": "integer"},
            "inventories": {
                "type": "object",
                "propertyNames": class_pattern(),
                "additionalProperties": inventory_schema(json!({}), &["total"])
            }
        },
        "required": ["resource_provider_generation", "inventories"],
        "additionalProperties": false
    })
);

#[derive(Deserialize)]
struct OneBody {
    resource_provider_generation: i64,
    #[serde(flatten)]
    fields: InventoryFields,
}

body_schema!(
    OneBody,
    inventory_schema(
        json!({"resource_provider_generation": {"type": "integer"}}),
        &["total", "resource_provider_generation"],
    )
);

#[derive(Deserialize)]
struct CreateBody {
    resource_class: String,
    resource_provider_generation: i64,
    #[serde(flatten)]
    fields: InventoryFields,
}

body_schema!(
    CreateBody,
    inventory_schema(
        json!({"resource_provider_generation": {"type": "integer"}, "resource_class": class_pattern()}),
        &["total", "resource_provider_generation", "resource_class"],
    )
);

/// From microversion 1.26 an inventory may reserve all of its total.
fn reserved_may_equal_total(version: Microversion) -> bool {
    version.at_least(1, 26)
}

async fn list(
    State(state): State<PlacementState>,
    ctx: RequestContext,
    Path(uuid): Path<String>,
) -> Result<Json<Value>, ApiError> {
    authorize(
        &state,
        &ctx,
        "placement:resource_providers:inventories:list",
    )?;
    let (generation, inventories) = state.inventories_get(&provider_id(&uuid)?).await?;
    Ok(Json(render_all(generation, &inventories)))
}

async fn replace(
    State(state): State<PlacementState>,
    Extension(version): Extension<Microversion>,
    ctx: RequestContext,
    Path(uuid): Path<String>,
    JsonBody(body): JsonBody<ReplaceBody>,
) -> Result<Json<Value>, ApiError> {
    authorize(
        &state,
        &ctx,
        "placement:resource_providers:inventories:update",
    )?;
    let provider = provider_id(&uuid)?;
    let inventories: Inventories = body
        .inventories
        .into_iter()
        .map(|(class, fields)| (class, fields.into_inventory()))
        .collect();
    let generation = state
        .inventories_replace(
            &provider,
            Some(body.resource_provider_generation),
            &inventories,
            reserved_may_equal_total(version),
        )
        .await?;
    Ok(Json(render_all(generation, &inventories)))
}

async fn create(
    State(state): State<PlacementState>,
    Extension(version): Extension<Microversion>,
    ctx: RequestContext,
    Path(uuid): Path<String>,
    JsonBody(body): JsonBody<CreateBody>,
) -> Result<Response, ApiError> {
    authorize(
        &state,
        &ctx,
        "placement:resource_providers:inventories:create",
    )?;
    let provider = provider_id(&uuid)?;
    let inventory = body.fields.into_inventory();
    let generation = state
        .inventory_put(
            &provider,
            Some(body.resource_provider_generation),
            &body.resource_class,
            inventory.clone(),
            true,
            reserved_may_equal_total(version),
        )
        .await?;
    let location = format!(
        "{}{}",
        state.public_url,
        link(&format!(
            "resource_providers/{provider}/inventories/{}",
            body.resource_class
        ))
    );
    let headers = [(header::LOCATION, location)];
    Ok((
        StatusCode::CREATED,
        headers,
        Json(render_one(generation, &inventory)),
    )
        .into_response())
}

async fn remove_all(
    State(state): State<PlacementState>,
    Extension(version): Extension<Microversion>,
    ctx: RequestContext,
    Path(uuid): Path<String>,
) -> Result<StatusCode, ApiError> {
    require(version, 5)?;
    authorize(
        &state,
        &ctx,
        "placement:resource_providers:inventories:delete",
    )?;
    state
        .inventories_replace(&provider_id(&uuid)?, None, &Inventories::new(), true)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn show(
    State(state): State<PlacementState>,
    ctx: RequestContext,
    Path((uuid, class)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    authorize(
        &state,
        &ctx,
        "placement:resource_providers:inventories:show",
    )?;
    let provider = provider_id(&uuid)?;
    let (generation, inventories) = state.inventories_get(&provider).await?;
    let inventory = inventories.get(&class).ok_or_else(|| {
        ApiError::not_found(format!(
            "No inventory of class {class} for resource provider {provider}."
        ))
    })?;
    Ok(Json(render_one(generation, inventory)))
}

async fn update(
    State(state): State<PlacementState>,
    Extension(version): Extension<Microversion>,
    ctx: RequestContext,
    Path((uuid, class)): Path<(String, String)>,
    JsonBody(body): JsonBody<OneBody>,
) -> Result<Json<Value>, ApiError> {
    authorize(
        &state,
        &ctx,
        "placement:resource_providers:inventories:update",
    )?;
    let provider = provider_id(&uuid)?;
    let inventory = body.fields.into_inventory();
    let generation = state
        .inventory_put(
            &provider,
            Some(body.resource_provider_generation),
            &class,
            inventory.clone(),
            false,
            reserved_may_equal_total(version),
        )
        .await?;
    Ok(Json(render_one(generation, &inventory)))
}

async fn remove(
    State(state): State<PlacementState>,
    ctx: RequestContext,
    Path((uuid, class)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    authorize(
        &state,
        &ctx,
        "placement:resource_providers:inventories:delete",
    )?;
    state.inventory_delete(&provider_id(&uuid)?, &class).await?;
    Ok(StatusCode::NO_CONTENT)
}
