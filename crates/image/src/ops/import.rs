//! Interoperable image import with the `glance-direct` method: data staged
//! by `PUT …/stage` goes through the same hashing, inspection and commit as
//! an upload, in a background task.
//!
//! `uploading → importing → active`; when the staged data is rejected the
//! image returns to `queued` and the staged data is deleted, as in Glance.

use std::sync::Arc;

use oxstack_core::ApiError;
use serde_json::Value;

use super::data::commit;
use super::find_visible;
use crate::db::{self, images};
use crate::model::{Image, ImageId, Status};
use crate::policy::{self, Caller};
use crate::upload;
use crate::ImageService;

/// The import methods this service offers.
pub const IMPORT_METHODS: &[&str] = &["glance-direct"];

/// Validates an import request body as Glance does.
pub fn check_request(body: &Value) -> Result<(), ApiError> {
    let method = body
        .get("method")
        .ok_or_else(|| ApiError::bad_request("Import request requires a 'method' field."))?;
    let name = method
        .get("name")
        .ok_or_else(|| ApiError::bad_request("Import request requires a 'name' field."))?;
    let name = name.as_str().unwrap_or_default();
    if !IMPORT_METHODS.contains(&name) {
        return Err(ApiError::bad_request(format!(
            "Unknown import method name '{name}'."
        )));
    }
    for flag in ["all_stores_must_succeed", "all_stores"] {
        if body.get(flag).is_some_and(|value| !value.is_boolean()) {
            return Err(ApiError::bad_request(format!(
                "'{flag}' must be boolean value only"
            )));
        }
    }
    if body.get("stores").is_some_and(|stores| !stores.is_null()) {
        return Err(ApiError::bad_request(
            "Store selection is not available: this service has a single image store.",
        ));
    }
    Ok(())
}

/// Starts importing the staged data of an `uploading` image. Returns once
/// the image is `importing`; a background task finishes the work.
pub async fn start(
    service: Arc<ImageService>,
    caller: &Caller,
    id: &ImageId,
) -> Result<(), ApiError> {
    let visible = find_visible(&service, caller, id).await?;
    policy::enforce(
        &service.policy,
        caller,
        "modify_image",
        &visible.target(caller),
    )?;
    let image = visible.image;
    let staged = service.staged_path(id);
    if image.status != Status::Uploading || !staged.is_file() {
        return Err(ApiError::conflict(
            "Image needs to be staged before 'glance-direct' method can be used",
        ));
    }
    if !images::set_status(
        service.pool(),
        id,
        Status::Uploading,
        Status::Importing,
        db::now(),
    )
    .await?
    {
        return Err(ApiError::conflict(format!(
            "Image {id} is already being imported."
        )));
    }

    let request_id = caller.request_id.clone();
    tokio::spawn(async move {
        match run(&service, &image).await {
            Ok(()) => tracing::info!(image_id = %image.id, request_id, "imported image"),
            Err(error) => {
                let _ = tokio::fs::remove_file(service.staged_path(&image.id)).await;
                let requeued = images::set_status(
                    service.pool(),
                    &image.id,
                    Status::Importing,
                    Status::Queued,
                    db::now(),
                )
                .await;
                tracing::warn!(image_id = %image.id, request_id, error = %error, ?requeued,
                    "import failed; the staged data is deleted and the image is queued again");
            }
        }
    });
    Ok(())
}

async fn run(service: &ImageService, image: &Image) -> Result<(), ApiError> {
    let staged = service.staged_path(&image.id);
    let file = tokio::fs::File::open(&staged)
        .await
        .map_err(ApiError::internal)?;
    let stream = tokio_util::io::ReaderStream::with_capacity(file, crate::store::CHUNK_SIZE);
    let received = upload::receive(stream, None, service.config.image_size_cap)
        .await
        .map_err(|error| ApiError::bad_request(error.to_string()))?;
    commit(service, image, Status::Importing, &staged, &received).await
}
