//! The Image v2 HTTP API: one module per resource. Paths are relative to
//! the image endpoint root; the binary nests this router under `/image`.

pub mod data;
pub mod discovery;
pub mod images;
pub mod members;
pub mod patch;
pub mod render;
pub mod schemas;

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::Router;
use oxstack_core::{ApiError, RequestContext, ServiceKind, TokenValidator};

use crate::model::ImageId;
use crate::policy::Caller;
use crate::ImageService;

/// Shared handle passed to every handler.
pub type ImageState = Arc<ImageService>;

/// Builds the image routes with token authentication and Glance's error
/// bodies (JSON or plain text, by `Accept`).
pub fn router(state: ImageState, validator: Arc<dyn TokenValidator>) -> Router {
    Router::new()
        .merge(discovery::routes())
        .merge(images::routes())
        .merge(data::routes())
        .merge(members::routes())
        .merge(schemas::routes())
        .fallback(|| async { ApiError::not_found("The resource could not be found.") })
        .with_state(state)
        .layer(axum::middleware::from_fn(move |request, next| {
            oxstack_core::context::authenticate(validator.clone(), request, next)
        }))
        .layer(axum::middleware::from_fn(|request, next| {
            oxstack_core::error::render_errors(ServiceKind::Image, request, next)
        }))
}

/// Returns the image API mounted at `/image`, for the binary to merge into
/// its application. It adds `/image/` beside `nest("/image", …)`, because
/// axum 0.8's `nest` does not match the trailing slash, and keystoneauth's
/// version discovery requests exactly `{catalog URL}/`.
pub fn mount(state: ImageState, validator: Arc<dyn TokenValidator>) -> Router {
    let public_url = state.public_url.clone();
    Router::new()
        .route(
            "/image/",
            axum::routing::get(move || discovery::root_document(public_url.clone())),
        )
        .nest("/image", router(state, validator))
}

impl FromRequestParts<ImageState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ImageState) -> Result<Self, ApiError> {
        let ctx = RequestContext::from_request_parts(parts, state).await?;
        Ok(Caller::new(&state.policy, &ctx))
    }
}

/// Reads the image id path segment.
pub fn image_id(id: String) -> ImageId {
    ImageId::new(id)
}

/// Percent-encodes a query component as Python's `urlencode` does for
/// the characters Glance's links contain.
pub fn encode_query(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(key, value)| format!("{}={}", encode_component(key), encode_component(value)))
        .collect::<Vec<_>>()
        .join("&")
}

fn encode_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_encoding_matches_urlencode() {
        let pairs = vec![
            ("name".to_owned(), "a b".to_owned()),
            ("id".to_owned(), "in:x,y".to_owned()),
        ];
        assert_eq!(encode_query(&pairs), "name=a+b&id=in%3Ax%2Cy");
    }
}
