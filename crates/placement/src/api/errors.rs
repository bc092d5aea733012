//! Placement's error body, `{"errors": [{"status", "title", "detail",
//! "code", "request_id"}]}`, with the specific error code the handler set
//! (`placement.concurrent_update`, …) where there is one.

use axum::extract::Request;
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use oxstack_core::request_id::RequestId;
use oxstack_core::{ApiError, ErrorKind};
use serde_json::json;

use crate::error::CODE_DEFAULT;

/// Writes the body of every `ApiError` response in placement's shape and
/// logs the error at the level its kind deserves.
pub async fn render_errors(request: Request, next: Next) -> Response {
    let request_id = request
        .extensions()
        .get::<RequestId>()
        .map(|id| id.0.clone());
    let mut response = next.run(request).await;
    let Some(error) = response.extensions_mut().remove::<ApiError>() else {
        return response;
    };
    match error.kind {
        ErrorKind::Internal => {
            tracing::error!(service = "placement", error = %error, "request failed")
        }
        _ => tracing::info!(
            service = "placement", status = error.kind.status().as_u16(),
            message = %error.message, "request rejected"),
    }
    let status = error.kind.status();
    let mut entry = json!({
        "status": status.as_u16(),
        "title": status.canonical_reason().unwrap_or("Error"),
        "detail": error.message,
        "code": error.error_type.unwrap_or(CODE_DEFAULT),
    });
    if let Some(id) = request_id {
        entry["request_id"] = id.into();
    }
    let mut rendered = (status, axum::Json(json!({"errors": [entry]}))).into_response();
    // Headers set by inner layers (microversion echo, request id) survive.
    for (name, value) in response.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rendered.headers_mut().insert(name.clone(), value.clone());
        }
    }
    rendered
}
