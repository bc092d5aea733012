//! `/flavors`: list (summary and detail) with Nova's filters, sorting and
//! paging, show, create, update of the description (2.55+) and delete.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use oxstack_core::pagination::{next_link, paginate, PageRequest};
use oxstack_core::ApiError;
use serde_json::{json, Value};

use super::flavor_view::{self, Flavor};
use super::{db_error, parse_body, ComputeState, QueryPairs, Version};
use crate::policy::Caller;

/// Nova's default `max_limit`: the largest page a list returns.
const MAX_LIMIT: usize = 1000;

pub fn routes() -> Router<ComputeState> {
    Router::new()
        .route("/flavors", get(list_summary).post(create))
        .route("/flavors/detail", get(list_detail))
        .route("/flavors/{id}", get(show).put(update).delete(delete))
}

async fn list_summary(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
    query: QueryPairs,
) -> Result<Json<Value>, ApiError> {
    list(&state, &caller, version, &query.0, false).await
}

async fn list_detail(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
    query: QueryPairs,
) -> Result<Json<Value>, ApiError> {
    list(&state, &caller, version, &query.0, true).await
}

/// The flavors an admin's `is_public` filter selects.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PublicFilter {
    Public,
    Private,
    All,
}

fn parse_is_public(value: &str) -> Result<PublicFilter, ApiError> {
    match value.to_ascii_lowercase().as_str() {
        "none" => Ok(PublicFilter::All),
        "true" | "t" | "yes" | "y" | "on" | "1" => Ok(PublicFilter::Public),
        "false" | "f" | "no" | "n" | "off" | "0" => Ok(PublicFilter::Private),
        _ => Err(ApiError::bad_request(format!(
            "Invalid is_public filter [{value}]"
        ))),
    }
}

fn parse_min(name: &str, value: &str) -> Result<i64, ApiError> {
    value
        .parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| ApiError::bad_request(format!("Invalid {name} filter [{value}]")))
}

/// Compares two flavors by one of Nova's flavor sort keys; `None` for a key
/// Nova rejects.
fn sort_order(key: &str) -> Option<fn(&Flavor, &Flavor) -> std::cmp::Ordering> {
    Some(match key {
        "flavorid" | "id" => |a, b| a.id.cmp(&b.id),
        "name" => |a, b| a.name.cmp(&b.name),
        "memory_mb" => |a, b| a.ram.cmp(&b.ram),
        "root_gb" => |a, b| a.disk.cmp(&b.disk),
        "ephemeral_gb" => |a, b| a.ephemeral.cmp(&b.ephemeral),
        "vcpus" => |a, b| a.vcpus.cmp(&b.vcpus),
        "swap" => |a, b| a.swap.cmp(&b.swap),
        "rxtx_factor" => |a, b| a.rxtx_factor.total_cmp(&b.rxtx_factor),
        "is_public" => |a, b| a.is_public.cmp(&b.is_public),
        "disabled" => |a, b| a.disabled.cmp(&b.disabled),
        "description" => |a, b| a.description.cmp(&b.description),
        "created_at" | "updated_at" => |a, b| a.created_at.cmp(&b.created_at),
        // Nova accepts vcpu_weight, which OxStack does not store.
        "vcpu_weight" => |_, _| std::cmp::Ordering::Equal,
        _ => return None,
    })
}

async fn list(
    state: &ComputeState,
    caller: &Caller,
    version: oxstack_core::microversion::Microversion,
    query: &[(String, String)],
    detail: bool,
) -> Result<Json<Value>, ApiError> {
    let mut public = PublicFilter::Public;
    let mut min_ram = 0;
    let mut min_disk = 0;
    let mut sort_key = "flavorid".to_owned();
    let mut descending = false;
    for (key, value) in query {
        match key.as_str() {
            "is_public" => public = parse_is_public(value)?,
            "minRam" => min_ram = parse_min("minRam", value)?,
            "minDisk" => min_disk = parse_min("minDisk", value)?,
            "sort_key" => sort_key = value.clone(),
            "sort_dir" => match value.as_str() {
                "asc" => descending = false,
                "desc" => descending = true,
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "Invalid sort_dir '{value}': use asc or desc."
                    )))
                }
            },
            _ => {}
        }
    }
    let order = sort_order(&sort_key)
        .ok_or_else(|| ApiError::bad_request(format!("Invalid sort_key '{sort_key}'.")))?;
    let page = PageRequest::from_query(query, MAX_LIMIT)?;

    let mut flavors = flavor_view::load_all(state).await?;
    // Non-admins always get the public flavors plus those granted to their
    // project, whatever the value of `is_public`, as Nova filters them.
    let granted: Vec<String> = if caller.is_admin() {
        Vec::new()
    } else {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT flavor_id FROM compute_flavor_access WHERE project_id = $1")
                .bind(caller.project_id())
                .fetch_all(state.pool())
                .await
                .map_err(db_error)?;
        rows.into_iter().map(|(id,)| id).collect()
    };
    flavors.retain(|flavor| {
        let visible = if caller.is_admin() {
            match public {
                PublicFilter::All => true,
                PublicFilter::Public => flavor.is_public,
                PublicFilter::Private => !flavor.is_public,
            }
        } else {
            flavor.is_public || granted.contains(&flavor.id)
        };
        visible && flavor.ram >= min_ram && flavor.disk >= min_disk
    });
    flavors.sort_by(|a, b| {
        let ordering = order(a, b).then_with(|| a.id.cmp(&b.id));
        if descending {
            ordering.reverse()
        } else {
            ordering
        }
    });

    let page_result = paginate(flavors, &page, |f| f.id.as_str())?;
    let items: Vec<Value> = page_result
        .items
        .iter()
        .map(|f| flavor_view::render(state, f, version, detail))
        .collect();
    let mut body = json!({ "flavors": items });
    if let Some(marker) = page_result.next_marker {
        let base = state.v21_url(if detail { "flavors/detail" } else { "flavors" });
        body["flavors_links"] = json!([{"rel": "next", "href": next_link(&base, query, &marker)}]);
    }
    Ok(Json(body))
}

async fn show(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let flavor = flavor_view::load_visible(&state, &caller, &id).await?;
    Ok(Json(
        json!({ "flavor": flavor_view::render(&state, &flavor, version, true) }),
    ))
}

async fn create(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    caller.authorize(
        &state.policy,
        "os_compute_api:os-flavor-manage:create",
        json!({}),
    )?;
    let body = parse_body(&body)?;
    let flavor = super::flavor_input::parse_create(&body, version)?;

    let now = chrono::Utc::now().timestamp();
    let result = sqlx::query(
        "INSERT INTO compute_flavors (id, name, vcpus, ram, disk, ephemeral, swap, rxtx_factor, \
         is_public, disabled, description, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, $10, $11)",
    )
    .bind(&flavor.id)
    .bind(&flavor.name)
    .bind(flavor.vcpus)
    .bind(flavor.ram)
    .bind(flavor.disk)
    .bind(flavor.ephemeral)
    .bind(flavor.swap)
    .bind(flavor.rxtx_factor)
    .bind(i64::from(flavor.is_public))
    .bind(&flavor.description)
    .bind(now)
    .execute(state.pool())
    .await;
    if let Err(error) = result {
        if oxstack_store::is_unique_violation(&error) {
            return Err(duplicate_error(&state, &flavor).await);
        }
        return Err(db_error(error));
    }
    tracing::info!(flavor_id = %flavor.id, name = %flavor.name, "flavor created");
    Ok(Json(
        json!({ "flavor": flavor_view::render(&state, &flavor, version, true) }),
    ))
}

/// Names the column a rejected insert collided on, as Nova's two 409s do.
async fn duplicate_error(state: &ComputeState, flavor: &Flavor) -> ApiError {
    match flavor_view::load(state, &flavor.id).await {
        Ok(Some(_)) => ApiError::conflict(format!("Flavor with ID {} already exists.", flavor.id)),
        _ => ApiError::conflict(format!("Flavor with name {} already exists.", flavor.name)),
    }
}

async fn update(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    // Flavor update exists from 2.55, and Nova returns 404 below it.
    if !version.at_least(2, 55) {
        return Err(ApiError::not_found("The resource could not be found."));
    }
    caller.authorize(
        &state.policy,
        "os_compute_api:os-flavor-manage:update",
        json!({}),
    )?;
    let body = parse_body(&body)?;
    let description = super::flavor_input::parse_update(&body)?;
    let mut flavor = flavor_view::load(&state, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("Flavor {id} could not be found.")))?;
    sqlx::query("UPDATE compute_flavors SET description = $1 WHERE id = $2")
        .bind(&description)
        .bind(&id)
        .execute(state.pool())
        .await
        .map_err(db_error)?;
    flavor.description = description;
    Ok(Json(
        json!({ "flavor": flavor_view::render(&state, &flavor, version, true) }),
    ))
}

async fn delete(
    State(state): State<ComputeState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    caller.authorize(
        &state.policy,
        "os_compute_api:os-flavor-manage:delete",
        json!({}),
    )?;
    let result = sqlx::query("DELETE FROM compute_flavors WHERE id = $1")
        .bind(&id)
        .execute(state.pool())
        .await
        .map_err(db_error)?;
    if result.rows_affected() == 0 {
        return Err(ApiError::not_found(format!(
            "Flavor {id} could not be found."
        )));
    }
    tracing::info!(flavor_id = %id, "flavor deleted");
    Ok(StatusCode::ACCEPTED)
}
