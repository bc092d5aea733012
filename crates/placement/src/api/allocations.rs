//! `/allocations/{consumer_uuid}`, `POST /allocations` (microversion 1.13)
//! and `/resource_providers/{uuid}/allocations`. Before 1.12 allocations
//! are written as a list of `{"resource_provider": {"uuid"}, "resources"}`;
//! from 1.12 as a map from provider UUID to `{"resources"}`.

use std::collections::BTreeMap;

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use oxstack_core::microversion::Microversion;
use oxstack_core::validate::{read_json, Schema};
use oxstack_core::{ApiError, RequestContext};
use serde_json::{json, Map, Value};

use super::resource_providers::provider_id;
use super::{authorize, require, PlacementState};
use crate::allocations::ConsumerAllocations;
use crate::model::{normalize_uuid, ConsumerId, ProviderId, Resources, MAX_INT};

/// The project and user stored for consumers written before microversion
/// 1.8, which did not send them; OpenStack Placement's
/// `incomplete_consumer_project_id` default.
const INCOMPLETE_CONSUMER: &str = "00000000-0000-0000-0000-000000000000";

pub fn routes() -> Router<PlacementState> {
    Router::new()
        .route("/allocations", post(post_many))
        .route(
            "/allocations/{consumer_uuid}",
            get(show).put(replace).delete(remove),
        )
        .route(
            "/resource_providers/{uuid}/allocations",
            get(provider_allocations),
        )
}

fn consumer_id(text: &str) -> Result<ConsumerId, ApiError> {
    normalize_uuid(text)
        .map(ConsumerId)
        .ok_or_else(|| ApiError::bad_request(format!("Malformed consumer_uuid '{text}'.")))
}

fn resources_schema() -> Value {
    json!({
        "type": "object",
        "minProperties": 1,
        "propertyNames": {"pattern": "^[A-Z0-9_]+$", "maxLength": 255},
        "additionalProperties": {"type": "integer", "minimum": 1, "maximum": MAX_INT}
    })
}

/// Returns the schema of the map form of allocations (microversion 1.12
/// and later).
fn map_schema() -> Value {
    json!({
        "type": "object",
        "minProperties": 1,
        "propertyNames": {"format": "uuid"},
        "additionalProperties": {
            "type": "object",
            "properties": {"resources": resources_schema(), "generation": {"type": "integer"}},
            "required": ["resources"],
            "additionalProperties": false
        }
    })
}

fn list_schema() -> Value {
    json!({
        "type": "array",
        "minItems": 1,
        "items": {
            "type": "object",
            "properties": {
                "resource_provider": {
                    "type": "object",
                    "properties": {"uuid": {"type": "string", "format": "uuid"}},
                    "required": ["uuid"],
                    "additionalProperties": false
                },
                "resources": resources_schema()
            },
            "required": ["resource_provider", "resources"],
            "additionalProperties": false
        }
    })
}

/// Returns the schema of one consumer's body at `version`. In `POST /allocations`,
/// and in `PUT` from microversion 1.28, the allocations map may be empty,
/// which removes the consumer's allocations.
fn consumer_schema(version: Microversion, allow_empty: bool) -> Value {
    let mut allocations = if version.at_least(1, 12) {
        map_schema()
    } else {
        list_schema()
    };
    if allow_empty || version.at_least(1, 28) {
        allocations["minProperties"] = 0.into();
    }
    let id = json!({"type": "string", "minLength": 1, "maxLength": 255});
    let mut properties = json!({ "allocations": allocations });
    let mut required = vec!["allocations"];
    if version.at_least(1, 8) {
        properties["project_id"] = id.clone();
        properties["user_id"] = id;
        required.extend(["project_id", "user_id"]);
    }
    if version.at_least(1, 28) {
        properties["consumer_generation"] = json!({"type": ["integer", "null"]});
        required.push("consumer_generation");
    }
    json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false
    })
}

/// Decodes a checked consumer body into the allocations to write; from
/// microversion 1.28 the body carries the consumer generation to check.
fn decode_consumer(
    version: Microversion,
    consumer: ConsumerId,
    body: &Value,
) -> Result<ConsumerAllocations, ApiError> {
    let mut allocations: BTreeMap<ProviderId, Resources> = BTreeMap::new();
    let entries: Vec<(String, &Value)> = match &body["allocations"] {
        Value::Array(items) => items
            .iter()
            .map(|item| {
                (
                    item["resource_provider"]["uuid"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    &item["resources"],
                )
            })
            .collect(),
        Value::Object(map) => map
            .iter()
            .map(|(uuid, item)| (uuid.clone(), &item["resources"]))
            .collect(),
        _ => Vec::new(),
    };
    for (uuid, resources) in entries {
        let provider = ProviderId(
            normalize_uuid(&uuid)
                .ok_or_else(|| ApiError::bad_request(format!("'{uuid}' is not a 'uuid'.")))?,
        );
        let target = allocations.entry(provider).or_default();
        for (class, amount) in resources.as_object().into_iter().flatten() {
            *target.entry(class.clone()).or_default() += amount.as_i64().unwrap_or_default();
        }
    }
    let text = |key: &str| body[key].as_str().unwrap_or(INCOMPLETE_CONSUMER).to_owned();
    Ok(ConsumerAllocations {
        consumer,
        project_id: text("project_id"),
        user_id: text("user_id"),
        consumer_generation: version
            .at_least(1, 28)
            .then(|| body["consumer_generation"].as_i64()),
        allocations,
    })
}

async fn show(
    State(state): State<PlacementState>,
    Extension(version): Extension<Microversion>,
    ctx: RequestContext,
    Path(consumer): Path<String>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &ctx, "placement:allocations:list")?;
    let Some(view) = state.consumer_allocations(&consumer_id(&consumer)?).await? else {
        return Ok(Json(json!({"allocations": {}})));
    };
    let allocations: Map<String, Value> = view
        .allocations
        .iter()
        .map(|(provider, (generation, resources))| {
            (
                provider.0.clone(),
                json!({"generation": generation, "resources": resources}),
            )
        })
        .collect();
    let mut body = json!({ "allocations": allocations });
    if version.at_least(1, 12) {
        body["project_id"] = view.project_id.into();
        body["user_id"] = view.user_id.into();
    }
    if version.at_least(1, 28) {
        body["consumer_generation"] = view.generation.into();
    }
    Ok(Json(body))
}

async fn replace(
    State(state): State<PlacementState>,
    Extension(version): Extension<Microversion>,
    ctx: RequestContext,
    Path(consumer): Path<String>,
    request: Request,
) -> Result<StatusCode, ApiError> {
    authorize(&state, &ctx, "placement:allocations:update")?;
    let consumer = consumer_id(&consumer)?;
    let body = read_json(request, &()).await?;
    Schema::compile(&consumer_schema(version, false)).check(&body)?;
    let request = decode_consumer(version, consumer, &body)?;
    state.allocations_replace(&[request]).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn post_many(
    State(state): State<PlacementState>,
    Extension(version): Extension<Microversion>,
    ctx: RequestContext,
    request: Request,
) -> Result<StatusCode, ApiError> {
    require(version, 13)?;
    authorize(&state, &ctx, "placement:allocations:manage")?;
    let body = read_json(request, &()).await?;
    let schema = Schema::compile(&json!({
        "type": "object",
        "minProperties": 1,
        "propertyNames": {"format": "uuid"},
        "additionalProperties": consumer_schema(version, true)
    }));
    schema.check(&body)?;
    let mut requests = Vec::new();
    for (consumer, item) in body.as_object().into_iter().flatten() {
        requests.push(decode_consumer(version, consumer_id(consumer)?, item)?);
    }
    state.allocations_replace(&requests).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn remove(
    State(state): State<PlacementState>,
    ctx: RequestContext,
    Path(consumer): Path<String>,
) -> Result<StatusCode, ApiError> {
    authorize(&state, &ctx, "placement:allocations:delete")?;
    let consumer = consumer_id(&consumer)?;
    if !state.release(&consumer).await? {
        return Err(ApiError::not_found(format!(
            "No allocations for consumer '{consumer}'."
        )));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Lists the allocations on a provider, with each consumer's generation
/// from microversion 1.28.
async fn provider_allocations(
    State(state): State<PlacementState>,
    Extension(version): Extension<Microversion>,
    ctx: RequestContext,
    Path(uuid): Path<String>,
) -> Result<Json<Value>, ApiError> {
    authorize(
        &state,
        &ctx,
        "placement:resource_providers:allocations:list",
    )?;
    let (generation, by_consumer) = state.provider_allocations(&provider_id(&uuid)?).await?;
    let allocations: Map<String, Value> = by_consumer
        .iter()
        .map(|(consumer, (consumer_generation, resources))| {
            let mut entry = json!({ "resources": resources });
            if version.at_least(1, 28) {
                entry["consumer_generation"] = (*consumer_generation).into();
            }
            (consumer.0.clone(), entry)
        })
        .collect();
    Ok(Json(
        json!({"allocations": allocations, "resource_provider_generation": generation}),
    ))
}
