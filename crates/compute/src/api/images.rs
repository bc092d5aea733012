//! Nova's deprecated proxy to the image service: `/images`,
//! `/images/detail`, `/images/{id}` (show and delete) and the image's
//! additional properties as `/images/{id}/metadata`. Nova removed it at
//! microversion 2.36, so later requests get a 404. The image service
//! enforces who may read or change an image.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use oxstack_core::microversion::Microversion;
use oxstack_core::{ApiError, ErrorKind};
use serde_json::{json, Map, Value};

use super::server_view::iso_time;
use super::{parse_body, ComputeState, QueryPairs, Version};
use crate::external::{ExternalError, ExternalErrorKind, ImageChangeError, ImageInfo};
use crate::policy::Caller;
use crate::quota;

pub fn routes() -> Router<ComputeState> {
    Router::new()
        .route("/images", get(index))
        .route("/images/detail", get(detail))
        .route("/images/{id}", get(show).delete(delete))
        .route(
            "/images/{id}/metadata",
            get(metadata_index)
                .post(metadata_create)
                .put(metadata_update_all),
        )
        .route(
            "/images/{id}/metadata/{key}",
            get(metadata_show)
                .put(metadata_update)
                .delete(metadata_delete),
        )
}

fn check_version(version: Microversion) -> Result<(), ApiError> {
    if version.at_least(2, 36) {
        Err(ApiError::not_found("The resource could not be found."))
    } else {
        Ok(())
    }
}

fn image_not_found() -> ApiError {
    ApiError::not_found("Image not found.")
}

fn external_error(error: ExternalError) -> ApiError {
    match error.kind {
        ExternalErrorKind::NotFound => image_not_found(),
        ExternalErrorKind::BadRequest => ApiError::bad_request(error.message),
        ExternalErrorKind::Conflict => ApiError::conflict(error.message),
        ExternalErrorKind::Unavailable => ApiError::new(ErrorKind::Unavailable, error.message),
    }
}

fn change_error(error: ImageChangeError) -> ApiError {
    match error {
        ImageChangeError::Forbidden(message) => ApiError::forbidden(message),
        ImageChangeError::Other(error) => external_error(error),
    }
}

/// Maps Nova's list filters to the image service's query, as Nova does:
/// `server` (an id or a server URL) is the `instance_uuid` property,
/// `type` the `image_type` property, `property-NAME` the property NAME,
/// `changes-since` a lower bound on `updated_at`, and the status lowercase.
/// Other keys are ignored.
pub fn image_query(pairs: &[(String, String)]) -> Result<Vec<(String, String)>, ApiError> {
    let mut query = Vec::new();
    for (key, value) in pairs {
        let mapped = match key.as_str() {
            "name" => ("name".to_owned(), value.clone()),
            "status" => ("status".to_owned(), value.to_lowercase()),
            "changes-since" => ("updated_at".to_owned(), format!("gte:{value}")),
            "server" => {
                let id = value.rsplit('/').next().unwrap_or(value);
                ("instance_uuid".to_owned(), id.to_owned())
            }
            "type" => ("image_type".to_owned(), value.clone()),
            "minRam" => ("min_ram".to_owned(), value.clone()),
            "minDisk" => ("min_disk".to_owned(), value.clone()),
            "limit" => {
                value.parse::<usize>().map_err(|_| {
                    ApiError::bad_request(format!(
                        "Invalid limit '{value}': limit must be a non-negative integer."
                    ))
                })?;
                ("limit".to_owned(), value.clone())
            }
            "marker" => ("marker".to_owned(), value.clone()),
            other => match other.strip_prefix("property-") {
                Some(property) if !property.is_empty() => (property.to_owned(), value.clone()),
                _ => continue,
            },
        };
        query.push(mapped);
    }
    Ok(query)
}

/// Maps an image service status to the image status Nova shows.
fn status(image: &ImageInfo) -> &'static str {
    match image.status.as_str() {
        "active" => "ACTIVE",
        "queued" | "saving" => "SAVING",
        "deleted" | "pending_delete" => "DELETED",
        "killed" => "ERROR",
        _ => "UNKNOWN",
    }
}

fn progress(image: &ImageInfo) -> i64 {
    match image.status.as_str() {
        "queued" => 25,
        "saving" => 50,
        "active" => 100,
        _ => 0,
    }
}

fn links(state: &ComputeState, id: &str) -> Value {
    let path = format!("images/{id}");
    json!([
        {"rel": "self", "href": state.v21_url(&path)},
        {"rel": "bookmark", "href": state.bookmark_url(&path)},
        {
            "rel": "alternate",
            "type": "application/vnd.openstack.image",
            "href": format!("{}/image/{path}", state.public_url),
        },
    ])
}

fn summary(state: &ComputeState, image: &ImageInfo) -> Value {
    json!({"id": image.id, "name": image.name, "links": links(state, &image.id)})
}

/// Renders the detailed view, with `server` for a snapshot (an image with
/// the `instance_uuid` property) and `OS-DCF:diskConfig` when the image
/// sets `auto_disk_config`.
pub fn detailed(state: &ComputeState, image: &ImageInfo) -> Value {
    let mut body = Map::new();
    body.insert("id".into(), json!(image.id));
    body.insert("name".into(), json!(image.name));
    body.insert("minRam".into(), json!(image.min_ram));
    body.insert("minDisk".into(), json!(image.min_disk));
    body.insert("metadata".into(), json!(image.properties));
    body.insert("created".into(), json!(iso_time(image.created_at)));
    body.insert("updated".into(), json!(iso_time(image.updated_at)));
    body.insert("status".into(), json!(status(image)));
    body.insert("progress".into(), json!(progress(image)));
    body.insert("OS-EXT-IMG-SIZE:size".into(), json!(image.size));
    body.insert("links".into(), links(state, &image.id));
    if let Some(server_id) = image.properties.get("instance_uuid") {
        let path = format!("servers/{server_id}");
        body.insert(
            "server".into(),
            json!({"id": server_id, "links": [
                {"rel": "self", "href": state.v21_url(&path)},
                {"rel": "bookmark", "href": state.bookmark_url(&path)},
            ]}),
        );
    }
    if let Some(auto) = image.properties.get("auto_disk_config") {
        let auto = matches!(
            auto.to_lowercase().as_str(),
            "1" | "t" | "true" | "on" | "y" | "yes"
        );
        body.insert(
            "OS-DCF:diskConfig".into(),
            json!(if auto { "AUTO" } else { "MANUAL" }),
        );
    }
    Value::Object(body)
}

async fn list(
    state: &ComputeState,
    caller: &Caller,
    pairs: &[(String, String)],
    is_detail: bool,
) -> Result<Json<Value>, ApiError> {
    let query = image_query(pairs)?;
    let images = state
        .backends
        .images
        .list_images(&caller.ctx.auth, &query)
        .await
        .map_err(external_error)?;
    let items: Vec<Value> = images
        .iter()
        .map(|image| {
            if is_detail {
                detailed(state, image)
            } else {
                summary(state, image)
            }
        })
        .collect();
    let mut body = json!({"images": items});
    let limit = query
        .iter()
        .find(|(key, _)| key == "limit")
        .and_then(|(_, value)| value.parse::<usize>().ok());
    if let (Some(limit), Some(last)) = (limit, images.last()) {
        if limit > 0 && images.len() == limit {
            let base = state.v21_url(if is_detail { "images/detail" } else { "images" });
            let href = oxstack_core::pagination::next_link(&base, pairs, &last.id);
            body["images_links"] = json!([{"rel": "next", "href": href}]);
        }
    }
    Ok(Json(body))
}

async fn index(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
    query: QueryPairs,
) -> Result<Json<Value>, ApiError> {
    check_version(version)?;
    list(&state, &caller, &query.0, false).await
}

async fn detail(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
    query: QueryPairs,
) -> Result<Json<Value>, ApiError> {
    check_version(version)?;
    list(&state, &caller, &query.0, true).await
}

async fn find(state: &ComputeState, caller: &Caller, id: &str) -> Result<ImageInfo, ApiError> {
    state
        .backends
        .images
        .get_image(&caller.ctx.auth, id)
        .await
        .map_err(external_error)?
        .ok_or_else(image_not_found)
}

async fn show(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    check_version(version)?;
    let image = find(&state, &caller, &id).await?;
    Ok(Json(json!({"image": detailed(&state, &image)})))
}

async fn delete(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    check_version(version)?;
    state
        .backends
        .images
        .delete_image(&caller.ctx.auth, &id)
        .await
        .map_err(change_error)?;
    tracing::info!(image_id = %id, "image deleted through the compute API");
    Ok(StatusCode::NO_CONTENT)
}

/// Checks a metadata map against Nova's schema: keys of 1 to 255 letters,
/// digits, `-_:. `, and string values of at most 255 characters.
fn parse_metadata(value: &Value, field: &str) -> Result<BTreeMap<String, String>, ApiError> {
    let Some(object) = value.as_object() else {
        return Err(ApiError::bad_request(format!(
            "Invalid input for field/attribute {field}. Value: {value}. It must be an object."
        )));
    };
    let mut metadata = BTreeMap::new();
    for (key, item) in object {
        let key_ok = (1..=255).contains(&key.chars().count())
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_:. ".contains(c));
        if !key_ok {
            return Err(ApiError::bad_request(format!(
                "Invalid input for field/attribute {field}. Key '{key}' must be 1 to 255 letters, digits or '-_:. '."
            )));
        }
        let Some(text) = item.as_str().filter(|text| text.chars().count() <= 255) else {
            return Err(ApiError::bad_request(format!(
                "Invalid input for field/attribute {key}. Value: {item}. It must be a string of at most 255 characters."
            )));
        };
        metadata.insert(key.clone(), text.to_owned());
    }
    Ok(metadata)
}

/// Parses a body of the form `{"<field>": {...}}` with no other key.
fn metadata_body(body: &[u8], field: &str) -> Result<BTreeMap<String, String>, ApiError> {
    let body = parse_body(body)?;
    let Some(object) = body.as_object() else {
        return Err(ApiError::bad_request("The request body must be an object."));
    };
    if let Some(unknown) = object.keys().find(|key| *key != field) {
        return Err(ApiError::bad_request(format!(
            "Additional properties are not allowed ('{unknown}' was unexpected)"
        )));
    }
    let value = object
        .get(field)
        .ok_or_else(|| ApiError::bad_request(format!("'{field}' is a required property")))?;
    parse_metadata(value, field)
}

/// Rejects more properties than the project's `metadata_items` quota, as
/// Nova checks image metadata.
async fn check_quota(
    state: &ComputeState,
    caller: &Caller,
    properties: &BTreeMap<String, String>,
) -> Result<(), ApiError> {
    let limits = quota::limits(state, caller.project_id(), None).await?;
    let limit = limits.get("metadata_items").copied().unwrap_or(-1);
    if limit >= 0 && properties.len() as i64 > limit {
        return Err(ApiError::new(
            ErrorKind::QuotaExceeded,
            format!("Image metadata limit exceeded: at most {limit} items are allowed."),
        ));
    }
    Ok(())
}

async fn save(
    state: &ComputeState,
    caller: &Caller,
    id: &str,
    properties: &BTreeMap<String, String>,
) -> Result<ImageInfo, ApiError> {
    check_quota(state, caller, properties).await?;
    let image = state
        .backends
        .images
        .replace_image_properties(&caller.ctx.auth, id, properties)
        .await
        .map_err(change_error)?;
    tracing::info!(image_id = %id, "image metadata changed through the compute API");
    Ok(image)
}

async fn metadata_index(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    check_version(version)?;
    let image = find(&state, &caller, &id).await?;
    Ok(Json(json!({"metadata": image.properties})))
}

async fn metadata_show(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
    Path((id, key)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    check_version(version)?;
    let image = find(&state, &caller, &id).await?;
    match image.properties.get(&key) {
        Some(value) => Ok(Json(json!({"meta": {key: value}}))),
        None => Err(ApiError::not_found(format!(
            "Image {id} has no metadata key {key}."
        ))),
    }
}

/// Merges the request's items into the image's properties.
async fn metadata_create(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    check_version(version)?;
    let items = metadata_body(&body, "metadata")?;
    let mut properties = find(&state, &caller, &id).await?.properties;
    properties.extend(items);
    let image = save(&state, &caller, &id, &properties).await?;
    Ok(Json(json!({"metadata": image.properties})))
}

/// Replaces all of the image's properties with the request's items.
async fn metadata_update_all(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    check_version(version)?;
    let items = metadata_body(&body, "metadata")?;
    find(&state, &caller, &id).await?;
    save(&state, &caller, &id, &items).await?;
    Ok(Json(json!({"metadata": items})))
}

async fn metadata_update(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
    Path((id, key)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    check_version(version)?;
    let meta = metadata_body(&body, "meta")?;
    if meta.len() != 1 {
        return Err(ApiError::bad_request(
            "Invalid input for field/attribute meta: it must have exactly one item.",
        ));
    }
    let Some(value) = meta.get(&key) else {
        return Err(ApiError::bad_request("Request body and URI mismatch"));
    };
    let mut properties = find(&state, &caller, &id).await?.properties;
    properties.insert(key.clone(), value.clone());
    save(&state, &caller, &id, &properties).await?;
    Ok(Json(json!({"meta": meta})))
}

async fn metadata_delete(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
    Path((id, key)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    check_version(version)?;
    let mut properties = find(&state, &caller, &id).await?.properties;
    if properties.remove(&key).is_none() {
        return Err(ApiError::not_found("Invalid metadata key"));
    }
    save(&state, &caller, &id, &properties).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn nova_filters_mapped_to_glance() {
        let query = image_query(&pairs(&[
            ("status", "ACTIVE"),
            ("server", "http://x/compute/v2.1/servers/abc"),
            ("type", "snapshot"),
            ("changes-since", "2020-01-01T00:00:00Z"),
            ("property-os_distro", "cirros"),
            ("unknown", "ignored"),
        ]))
        .unwrap();
        assert_eq!(
            query,
            pairs(&[
                ("status", "active"),
                ("instance_uuid", "abc"),
                ("image_type", "snapshot"),
                ("updated_at", "gte:2020-01-01T00:00:00Z"),
                ("os_distro", "cirros"),
            ])
        );
    }

    #[test]
    fn invalid_limit_rejected() {
        assert!(image_query(&pairs(&[("limit", "-1")])).is_err());
    }

    #[test]
    fn metadata_key_checked() {
        assert!(parse_metadata(&json!({"ok key:1": "v"}), "metadata").is_ok());
        assert!(parse_metadata(&json!({"bad/key": "v"}), "metadata").is_err());
        assert!(parse_metadata(&json!({"k": 1}), "metadata").is_err());
    }
}
