//! `/v3/regions`: the tree of regions endpoints are placed in.

use std::collections::{BTreeSet, HashMap};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use oxstack_core::validate::JsonBody;
use oxstack_core::{body_schema, ApiError, RequestContext};
use serde::Deserialize;
use serde_json::{json, Value};

use super::require_matching_id;
use crate::api::{list_body, opt_str, self_link, QueryMap};
use crate::db::catalog::{self, Region};
use crate::policy::authorize;
use crate::{Identity, IdentityState};

pub fn render(state: &Identity, region: &Region) -> Value {
    json!({
        "id": region.id,
        "description": region.description,
        "parent_region_id": region.parent_region_id,
        "links": self_link(state, &format!("regions/{}", region.id)),
    })
}

/// Keystone's region properties: ids of up to 255 characters, and a
/// description of up to 255 characters or null.
fn region_properties(id_min_length: u32) -> Value {
    json!({
        "id": {"type": "string", "minLength": id_min_length, "maxLength": 255},
        "description": {"type": ["string", "null"], "maxLength": 255},
        "parent_region_id": {"type": ["string", "null"], "minLength": 1, "maxLength": 255}
    })
}

#[derive(Deserialize)]
pub struct RegionCreateBody {
    region: Value,
}

// An empty id on create means "assign one", as in Keystone.
body_schema!(
    RegionCreateBody,
    json!({
        "type": "object",
        "required": ["region"],
        "properties": {"region": {"type": "object", "properties": region_properties(0)}}
    })
);

#[derive(Deserialize)]
pub struct RegionUpdateBody {
    region: Value,
}

body_schema!(
    RegionUpdateBody,
    json!({
        "type": "object",
        "required": ["region"],
        "properties": {"region": {"type": "object", "minProperties": 1, "properties": region_properties(1)}}
    })
);

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("Could not find region: {id}."))
}

async fn find(state: &Identity, id: &str) -> Result<Region, ApiError> {
    catalog::get_region(state.pool(), id)
        .await?
        .ok_or_else(|| not_found(id))
}

pub(super) async fn list(
    State(state): State<IdentityState>,
    ctx: RequestContext,
    query: QueryMap,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &ctx, "identity:list_regions", &json!({}))?;
    let parent = query.get("parent_region_id");
    let items = catalog::list_regions(state.pool())
        .await?
        .iter()
        .filter(|r| parent.is_none_or(|p| Some(p.as_str()) == r.parent_region_id.as_deref()))
        .map(|r| render(&state, r))
        .collect();
    Ok(Json(list_body(&state, "regions", "regions", items)))
}

pub(super) async fn show(
    State(state): State<IdentityState>,
    ctx: RequestContext,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &ctx, "identity:get_region", &json!({}))?;
    let region = find(&state, &id).await?;
    Ok(Json(json!({ "region": render(&state, &region) })))
}

/// `POST /v3/regions`: the id may be given in the body or is assigned.
pub(super) async fn create(
    State(state): State<IdentityState>,
    ctx: RequestContext,
    JsonBody(body): JsonBody<RegionCreateBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    authorize(&state, &ctx, "identity:create_region", &json!({}))?;
    let id = opt_str(&body.region, "id")
        .filter(|id| !id.is_empty())
        .unwrap_or_else(crate::db::new_id);
    insert(&state, id, &body.region).await
}

/// `PUT /v3/regions/{region_id}`: creates the region with the id in the URL.
pub(super) async fn create_with_id(
    State(state): State<IdentityState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<RegionCreateBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    authorize(&state, &ctx, "identity:create_region", &json!({}))?;
    if let Some(body_id) = opt_str(&body.region, "id") {
        if body_id != id {
            return Err(ApiError::bad_request(format!(
                "Conflicting region IDs specified: \"{id}\" != \"{body_id}\"."
            )));
        }
    }
    insert(&state, id, &body.region).await
}

async fn insert(
    state: &Identity,
    id: String,
    input: &Value,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if catalog::get_region(state.pool(), &id).await?.is_some() {
        return Err(ApiError::conflict(format!(
            "Conflict occurred attempting to store region - Duplicate ID, {id}."
        )));
    }
    let parent_region_id = opt_str(input, "parent_region_id");
    if let Some(parent) = &parent_region_id {
        find(state, parent).await?;
    }
    let region = Region {
        id,
        description: opt_str(input, "description").unwrap_or_default(),
        parent_region_id,
    };
    catalog::insert_region(state.pool(), &region).await?;
    tracing::info!(region_id = %region.id, "created region");
    Ok((
        StatusCode::CREATED,
        Json(json!({ "region": render(state, &region) })),
    ))
}

pub(super) async fn update(
    State(state): State<IdentityState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<RegionUpdateBody>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &ctx, "identity:update_region", &json!({}))?;
    let input = body.region;
    require_matching_id(&input, &id)?;
    let mut region = find(&state, &id).await?;
    if let Some(parent) = input.get("parent_region_id") {
        let parent = parent.as_str().map(str::to_owned);
        if let Some(parent) = &parent {
            find(&state, parent).await?;
            check_no_cycle(&state, &id, parent).await?;
        }
        region.parent_region_id = parent;
    }
    if let Some(description) = input.get("description") {
        region.description = description.as_str().unwrap_or_default().to_owned();
    }
    catalog::update_region(state.pool(), &region).await?;
    Ok(Json(json!({ "region": render(&state, &region) })))
}

/// Rejects making `parent` the parent of `region_id` when `region_id` is
/// `parent` itself or one of its ancestors.
async fn check_no_cycle(state: &Identity, region_id: &str, parent: &str) -> Result<(), ApiError> {
    let parents: HashMap<String, Option<String>> = catalog::list_regions(state.pool())
        .await?
        .into_iter()
        .map(|r| (r.id, r.parent_region_id))
        .collect();
    let mut seen = BTreeSet::new();
    let mut current = Some(parent.to_owned());
    while let Some(id) = current {
        if id == region_id {
            return Err(ApiError::bad_request(format!(
                "The specified parent region {parent} would create a circular region hierarchy."
            )));
        }
        // Stored data with a cycle would loop forever without this guard.
        if !seen.insert(id.clone()) {
            break;
        }
        current = parents.get(&id).cloned().flatten();
    }
    Ok(())
}

/// Deletes the region and all regions below it, as Keystone does, unless
/// any of them has an endpoint (403).
pub(super) async fn remove(
    State(state): State<IdentityState>,
    ctx: RequestContext,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    authorize(&state, &ctx, "identity:delete_region", &json!({}))?;
    find(&state, &id).await?;
    let regions = catalog::list_regions(state.pool()).await?;
    let subtree = subtree_leaves_first(&regions, &id);
    let in_use = catalog::list_endpoints(state.pool())
        .await?
        .into_iter()
        .any(|e| e.region_id.is_some_and(|r| subtree.contains(&r)));
    if in_use {
        return Err(ApiError::forbidden(format!(
            "Unable to delete region {id} because it or its child regions have associated endpoints."
        )));
    }
    catalog::delete_regions(state.pool(), &subtree).await?;
    tracing::info!(region_id = %id, deleted = subtree.len(), "deleted region and its child regions");
    Ok(StatusCode::NO_CONTENT)
}

/// Returns `root` and every region below it, each child before its parent.
fn subtree_leaves_first(regions: &[Region], root: &str) -> Vec<String> {
    let mut order = vec![root.to_owned()];
    let mut next = 0;
    while next < order.len() {
        let parent = order[next].clone();
        for region in regions {
            let is_child = region.parent_region_id.as_deref() == Some(parent.as_str());
            if is_child && !order.contains(&region.id) {
                order.push(region.id.clone());
            }
        }
        next += 1;
    }
    order.reverse();
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(id: &str, parent: Option<&str>) -> Region {
        Region {
            id: id.into(),
            description: String::new(),
            parent_region_id: parent.map(Into::into),
        }
    }

    #[test]
    fn subtree_lists_children_before_parents() {
        let regions = [
            region("a", None),
            region("b", Some("a")),
            region("c", Some("b")),
            region("d", None),
        ];
        assert_eq!(subtree_leaves_first(&regions, "a"), ["c", "b", "a"]);
        assert_eq!(subtree_leaves_first(&regions, "d"), ["d"]);
    }

    #[test]
    fn subtree_survives_stored_cycle() {
        let regions = [region("a", Some("b")), region("b", Some("a"))];
        assert_eq!(subtree_leaves_first(&regions, "a"), ["b", "a"]);
    }
}
