//! `/v2/images`: create, list, show, update, delete, tags and the
//! deactivate/reactivate actions.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use oxstack_core::{ApiError, ErrorKind};
use serde_json::{json, Value};

use super::patch::{self, Dialect};
use super::{encode_query, image_id, render, ImageState};
use crate::ops::list::ListQuery;
use crate::ops::{self, import::IMPORT_METHODS};
use crate::policy::Caller;

pub fn routes() -> Router<ImageState> {
    Router::new()
        .route("/v2/images", get(list).post(create))
        .route(
            "/v2/images/{image_id}",
            get(show).patch(update).delete(remove),
        )
        .route(
            "/v2/images/{image_id}/tags/{tag}",
            put(add_tag).delete(remove_tag),
        )
        .route("/v2/images/{image_id}/actions/deactivate", post(deactivate))
        .route("/v2/images/{image_id}/actions/reactivate", post(reactivate))
}

async fn create(
    State(state): State<ImageState>,
    caller: Caller,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    let body = oxstack_core::validate::read_json(request, &state).await?;
    let Value::Object(body) = body else {
        return Err(ApiError::bad_request(
            "The request body must be a JSON object of image attributes.",
        ));
    };
    let image = ops::images::create(&state, &caller, body).await?;

    let mut response = (StatusCode::CREATED, Json(render::image(&image))).into_response();
    let location = format!("{}/image/v2/images/{}", state.public_url, image.id);
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&location) {
        headers.insert(header::LOCATION, value);
    }
    headers.insert(
        "openstack-image-import-methods",
        HeaderValue::from_static(IMPORT_METHODS[0]),
    );
    Ok(response)
}

async fn list(
    State(state): State<ImageState>,
    caller: Caller,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    let query = ListQuery::parse(
        &pairs,
        state.config.limit_param_default,
        state.config.api_limit_max,
    )?;
    let page = ops::list::list(&state, &caller, &query).await?;

    let without_marker: Vec<(String, String)> = pairs
        .iter()
        .filter(|(k, _)| k != "marker")
        .cloned()
        .collect();
    let first = if without_marker.is_empty() {
        "/v2/images".to_owned()
    } else {
        format!("/v2/images?{}", encode_query(&without_marker))
    };
    let mut body = json!({
        "images": page.images.iter().map(render::image).collect::<Vec<_>>(),
        "first": first,
        "schema": "/v2/schemas/images",
    });
    if let Some(marker) = page.next_marker {
        let mut next = without_marker;
        next.push(("marker".to_owned(), marker.to_string()));
        body["next"] = json!(format!("/v2/images?{}", encode_query(&next)));
    }
    Ok(Json(body))
}

async fn show(
    State(state): State<ImageState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let visible = ops::find_visible(&state, &caller, &image_id(id)).await?;
    Ok(Json(render::image(&visible.image)))
}

async fn update(
    State(state): State<ImageState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, Response> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let Some(dialect) = Dialect::from_content_type(content_type) else {
        let error = ApiError::new(
            ErrorKind::UnsupportedMediaType,
            format!(
                "Image PATCH expects Content-Type one of: {}",
                patch::ACCEPT_PATCH
            ),
        );
        return Err((
            [(
                header::HeaderName::from_static("accept-patch"),
                patch::ACCEPT_PATCH,
            )],
            error,
        )
            .into_response());
    };
    let result = async {
        let body: Value = serde_json::from_slice(&body).map_err(|error| {
            ApiError::bad_request(format!("Malformed JSON in request body: {error}"))
        })?;
        let changes = patch::parse(&body, dialect)?;
        ops::images::update(&state, &caller, &image_id(id), &changes).await
    }
    .await;
    result
        .map(|image| Json(render::image(&image)))
        .map_err(IntoResponse::into_response)
}

async fn remove(
    State(state): State<ImageState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    ops::images::delete(&state, &caller, &image_id(id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn add_tag(
    State(state): State<ImageState>,
    caller: Caller,
    Path((id, tag)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    ops::images::add_tag(&state, &caller, &image_id(id), &tag).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn remove_tag(
    State(state): State<ImageState>,
    caller: Caller,
    Path((id, tag)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    ops::images::remove_tag(&state, &caller, &image_id(id), &tag).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn deactivate(
    State(state): State<ImageState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    ops::images::set_active(&state, &caller, &image_id(id), false).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn reactivate(
    State(state): State<ImageState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    ops::images::set_active(&state, &caller, &image_id(id), true).await?;
    Ok(StatusCode::NO_CONTENT)
}
