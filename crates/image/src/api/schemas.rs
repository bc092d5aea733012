//! `/v2/schemas/*`: the JSON schemas of images and members.

use axum::routing::get;
use axum::{Json, Router};
use oxstack_core::RequestContext;
use serde_json::Value;

use super::ImageState;
use crate::schema;

pub fn routes() -> Router<ImageState> {
    Router::new()
        .route(
            "/v2/schemas/image",
            get(|_: RequestContext| async { Json(schema::image()) }),
        )
        .route(
            "/v2/schemas/images",
            get(|_: RequestContext| async { Json(schema::images()) }),
        )
        .route(
            "/v2/schemas/member",
            get(|_: RequestContext| async { Json(schema::member()) }),
        )
        .route(
            "/v2/schemas/members",
            get(|_: RequestContext| async { Json::<Value>(schema::members()) }),
        )
}
