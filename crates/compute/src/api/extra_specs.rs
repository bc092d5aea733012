//! Flavor extra specs: `/flavors/{id}/os-extra_specs[/{key}]`. Everyone who
//! can read the flavor can read them, and admins write them.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use oxstack_core::ApiError;
use serde_json::{json, Value};

use super::flavor_view;
use super::{authorize_without_target, db_error, parse_body, ComputeState};
use crate::policy::Caller;

pub fn routes() -> Router<ComputeState> {
    Router::new()
        .route("/flavors/{id}/os-extra_specs", get(index).post(create))
        .route(
            "/flavors/{id}/os-extra_specs/{key}",
            get(show).put(update).delete(delete),
        )
}

/// Checks a key against Nova's pattern: 1 to 255 of letters, digits and
/// `-_:. `.
// NOTE: From 2.86, Nova also rejects unknown keys and invalid values in the
// namespaces it defines (`hw:`, `quota:`, `resources`…). OxStack checks only
// the key format, at every microversion.
fn check_key(key: &str) -> Result<(), ApiError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':' | '.' | ' ');
    if key.is_empty() || key.len() > 255 || !key.chars().all(allowed) {
        return Err(ApiError::bad_request(format!(
            "Invalid extra spec key '{key}': use 1 to 255 letters, digits, spaces and '-_:.'."
        )));
    }
    Ok(())
}

/// Turns a value into the stored string. Nova accepts strings, numbers and
/// booleans and stores their text.
fn spec_value(key: &str, value: &Value) -> Result<String, ApiError> {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => if *b { "True" } else { "False" }.to_owned(),
        _ => {
            return Err(ApiError::bad_request(format!(
                "Invalid value for extra spec '{key}': it must be a string, number or boolean."
            )))
        }
    };
    if text.len() > 255 {
        return Err(ApiError::bad_request(format!(
            "Invalid value for extra spec '{key}': it is longer than 255 characters."
        )));
    }
    Ok(text)
}

async fn store_specs(
    state: &ComputeState,
    id: &str,
    specs: &BTreeMap<String, String>,
) -> Result<(), ApiError> {
    let mut transaction = state.pool().begin().await.map_err(db_error)?;
    for (key, value) in specs {
        sqlx::query(
            "DELETE FROM compute_flavor_extra_specs WHERE flavor_id = $1 AND spec_key = $2",
        )
        .bind(id)
        .bind(key)
        .execute(&mut *transaction)
        .await
        .map_err(db_error)?;
        sqlx::query(
            "INSERT INTO compute_flavor_extra_specs (flavor_id, spec_key, spec_value) VALUES ($1, $2, $3)",
        )
        .bind(id)
        .bind(key)
        .bind(value)
        .execute(&mut *transaction)
        .await
        .map_err(db_error)?;
    }
    transaction.commit().await.map_err(db_error)
}

async fn index(
    State(state): State<ComputeState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    authorize_without_target(
        &state,
        &caller,
        "os_compute_api:os-flavor-extra-specs:index",
    )?;
    let flavor = flavor_view::load_visible(&state, &caller, &id).await?;
    Ok(Json(json!({ "extra_specs": flavor.extra_specs })))
}

async fn show(
    State(state): State<ComputeState>,
    caller: Caller,
    Path((id, key)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    authorize_without_target(&state, &caller, "os_compute_api:os-flavor-extra-specs:show")?;
    let flavor = flavor_view::load_visible(&state, &caller, &id).await?;
    let value = flavor.extra_specs.get(&key).ok_or_else(|| {
        ApiError::not_found(format!("Flavor {id} has no extra specs with key {key}."))
    })?;
    Ok(Json(json!({ key: value })))
}

async fn create(
    State(state): State<ComputeState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    authorize_without_target(
        &state,
        &caller,
        "os_compute_api:os-flavor-extra-specs:create",
    )?;
    let body = parse_body(&body)?;
    let object = body
        .get("extra_specs")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            ApiError::bad_request("Invalid input: 'extra_specs' is a required object.")
        })?;
    let mut specs = BTreeMap::new();
    for (key, value) in object {
        check_key(key)?;
        specs.insert(key.clone(), spec_value(key, value)?);
    }
    flavor_view::load(&state, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("Flavor {id} could not be found.")))?;
    store_specs(&state, &id, &specs).await?;
    Ok(Json(json!({ "extra_specs": specs })))
}

async fn update(
    State(state): State<ComputeState>,
    caller: Caller,
    Path((id, key)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    authorize_without_target(
        &state,
        &caller,
        "os_compute_api:os-flavor-extra-specs:update",
    )?;
    let body = parse_body(&body)?;
    let object = body.as_object().filter(|o| o.len() == 1).ok_or_else(|| {
        ApiError::bad_request("Request body must contain exactly one extra spec.")
    })?;
    let Some(value) = object.get(&key) else {
        return Err(ApiError::bad_request("Request body and URI mismatch"));
    };
    check_key(&key)?;
    let value = spec_value(&key, value)?;
    flavor_view::load(&state, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("Flavor {id} could not be found.")))?;
    let specs = BTreeMap::from([(key.clone(), value.clone())]);
    store_specs(&state, &id, &specs).await?;
    Ok(Json(json!({ key: value })))
}

async fn delete(
    State(state): State<ComputeState>,
    caller: Caller,
    Path((id, key)): Path<(String, String)>,
) -> Result<(), ApiError> {
    authorize_without_target(
        &state,
        &caller,
        "os_compute_api:os-flavor-extra-specs:delete",
    )?;
    let result = sqlx::query(
        "DELETE FROM compute_flavor_extra_specs WHERE flavor_id = $1 AND spec_key = $2",
    )
    .bind(&id)
    .bind(&key)
    .execute(state.pool())
    .await
    .map_err(db_error)?;
    if result.rows_affected() == 0 {
        return Err(ApiError::not_found(format!(
            "Flavor {id} has no extra specs with key {key}."
        )));
    }
    Ok(())
}
