//! Image data: `PUT/GET /v2/images/{id}/file`, `PUT …/stage` and
//! `POST …/import`.
//!
//! Uploads run in their own task, so that a client that disconnects
//! mid-upload still gets its image returned to `queued` and its partial
//! data removed: the task gets the body error and cleans up, even though
//! the request handler is gone.

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, put};
use axum::Router;
use oxstack_core::{ApiError, ErrorKind};

use super::{image_id, ImageState};
use crate::ops::{self, data::Download};
use crate::policy::Caller;

pub fn routes() -> Router<ImageState> {
    Router::new()
        .route(
            "/v2/images/{image_id}/file",
            put(upload).get(download).layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/v2/images/{image_id}/stage",
            put(stage).layer(DefaultBodyLimit::disable()),
        )
        .route("/v2/images/{image_id}/import", post(import))
}

/// Rejects bodies that are not `application/octet-stream`. A missing
/// `Content-Type` is accepted, as curl and some clients send none.
fn check_octet_stream(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let media_type = value
        .to_str()
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim();
    if media_type.is_empty() || media_type.eq_ignore_ascii_case("application/octet-stream") {
        return Ok(());
    }
    Err(ApiError::new(
        ErrorKind::UnsupportedMediaType,
        format!("Content type '{media_type}' is not supported for image data; send application/octet-stream."),
    ))
}

/// Reads the size a client announces: `X-OpenStack-Image-Size` (what
/// openstacksdk sends for chunked uploads), else `Content-Length`.
fn declared_size(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let header_value = headers
        .get("x-openstack-image-size")
        .or_else(|| headers.get(header::CONTENT_LENGTH));
    let Some(value) = header_value else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok())
        .map(Some)
        .ok_or_else(|| ApiError::bad_request("Invalid or missing image size in request headers."))
}

async fn upload(
    State(state): State<ImageState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, ApiError> {
    check_octet_stream(&headers)?;
    let size = declared_size(&headers)?;
    let task = tokio::spawn(async move {
        ops::data::upload(
            &state,
            &caller,
            &image_id(id),
            body.into_data_stream(),
            size,
        )
        .await
    });
    task.await.map_err(ApiError::internal)??;
    Ok(StatusCode::NO_CONTENT)
}

async fn stage(
    State(state): State<ImageState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, ApiError> {
    check_octet_stream(&headers)?;
    let size = declared_size(&headers)?;
    let task = tokio::spawn(async move {
        ops::data::stage(
            &state,
            &caller,
            &image_id(id),
            body.into_data_stream(),
            size,
        )
        .await
    });
    task.await.map_err(ApiError::internal)??;
    Ok(StatusCode::NO_CONTENT)
}

async fn import(
    State(state): State<ImageState>,
    caller: Caller,
    Path(id): Path<String>,
    request: axum::extract::Request,
) -> Result<StatusCode, ApiError> {
    let body = oxstack_core::validate::read_json(request, &state).await?;
    ops::import::check_request(&body)?;
    ops::import::start(state.clone(), &caller, &image_id(id)).await?;
    Ok(StatusCode::ACCEPTED)
}

async fn download(
    State(state): State<ImageState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let download = ops::data::download(&state, &caller, &image_id(id), range).await?;
    Ok(match download {
        Download::NoData => StatusCode::NO_CONTENT.into_response(),
        Download::Unsatisfiable { total } => {
            let mut response = (
                StatusCode::RANGE_NOT_SATISFIABLE,
                "Requested range not satisfiable\n",
            )
                .into_response();
            if let Ok(value) = HeaderValue::from_str(&format!("bytes */{total}")) {
                response.headers_mut().insert(header::CONTENT_RANGE, value);
            }
            response
        }
        Download::Data {
            stream,
            range,
            total,
            checksum,
        } => {
            let mut response = Response::new(Body::from_stream(stream));
            let length = range.map(|r| r.len()).unwrap_or(total);
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
            // Glance sends the hex MD5 here, not RFC 1864's base64, and
            // openstacksdk compares it with a hex digest.
            if let Some(value) = checksum.and_then(|c| HeaderValue::from_str(&c).ok()) {
                headers.insert("content-md5", value);
            }
            if let Some(range) = range {
                *response.status_mut() = StatusCode::PARTIAL_CONTENT;
                let value = format!("bytes {}-{}/{total}", range.first, range.last);
                if let Ok(value) = HeaderValue::from_str(&value) {
                    response.headers_mut().insert(header::CONTENT_RANGE, value);
                }
            }
            response
        }
    })
}
