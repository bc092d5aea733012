//! Start-up reconciliation of image rows with stored data, after a crash or
//! a kill at any point of an upload, stage, import or delete.
//!
//! Rules, applied in order:
//! 1. Files in the incoming directory are partial uploads: deleted. The
//!    image store removes its own interrupted writes (`ImageStore::recover`).
//! 2. `saving` images go back to `queued`, as Glance does when an upload
//!    fails, so the client can upload again. (Glance itself leaves them in
//!    `saving` after a crash; `killed` would force a new image id.)
//! 3. `uploading` images keep their status when their staged file is
//!    complete and go back to `queued` otherwise. `importing` images go
//!    back to `uploading` when the staged file is still there, so the client
//!    can call import again, and to `queued` otherwise.
//! 4. `active` and `deactivated` images whose data is missing go back to
//!    `queued` and the loss is logged as an error: the image keeps its id
//!    and metadata, and its owner can upload the data again.
//! 5. Stored data of an image that is not `active` or `deactivated` (or no
//!    longer exists) is deleted, and so is staged data of an image that is
//!    not `uploading` or `importing`.

use std::collections::HashSet;

use oxstack_core::ApiError;

use crate::db::{self, images};
use crate::model::{ImageId, Status};
use crate::ImageService;

/// The changes reconciliation made, for the start-up log and tests.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub partial_files_removed: usize,
    pub requeued: usize,
    pub orphan_data_removed: usize,
    pub orphan_staged_removed: usize,
}

/// Reconciles `service`'s database with its stored files.
pub async fn run(service: &ImageService) -> Result<Report, ApiError> {
    let mut report = Report {
        partial_files_removed: remove_dir_files(&service.incoming_dir)?,
        ..Report::default()
    };
    report.partial_files_removed += service.data.recover().await.map_err(ApiError::internal)?;

    report.requeued += requeue(service, Status::Saving, |_| false).await?;
    report.requeued += requeue(service, Status::Uploading, |staged| staged).await?;
    for image in images::list_by_status(service.pool(), Status::Importing).await? {
        let to = if service.staged_path(&image.id).is_file() {
            Status::Uploading
        } else {
            Status::Queued
        };
        images::set_status(service.pool(), &image.id, Status::Importing, to, db::now()).await?;
        tracing::warn!(image_id = %image.id, status = %to, "import was interrupted");
        report.requeued += 1;
    }
    for status in [Status::Active, Status::Deactivated] {
        for image in images::list_by_status(service.pool(), status).await? {
            if service
                .data
                .size(&image.id)
                .await
                .map_err(ApiError::internal)?
                .is_none()
            {
                images::set_status(service.pool(), &image.id, status, Status::Queued, db::now())
                    .await?;
                tracing::error!(image_id = %image.id, "image data is missing from the image store; \
                    the image is queued again and its data must be uploaded again");
                report.requeued += 1;
            }
        }
    }

    let (with_data, staging) = expected_files(service).await?;
    for id in service.data.list().await.map_err(ApiError::internal)? {
        if !with_data.contains(&id) {
            service.data.delete(&id).await.map_err(ApiError::internal)?;
            report.orphan_data_removed += 1;
        }
    }
    report.orphan_staged_removed = remove_orphan_staged(service, &staging)?;

    if report != Report::default() {
        tracing::info!(?report, "reconciled images with stored data");
    }
    Ok(report)
}

/// Moves images in `from` to `queued` unless `keep(staged file exists)`.
async fn requeue(
    service: &ImageService,
    from: Status,
    keep: impl Fn(bool) -> bool,
) -> Result<usize, ApiError> {
    let mut count = 0;
    for image in images::list_by_status(service.pool(), from).await? {
        if keep(service.staged_path(&image.id).is_file()) {
            continue;
        }
        images::set_status(service.pool(), &image.id, from, Status::Queued, db::now()).await?;
        tracing::warn!(image_id = %image.id, from = %from, "interrupted transfer; image is queued again");
        count += 1;
    }
    Ok(count)
}

/// Returns the ids that should have stored data and those that may have
/// staged data.
async fn expected_files(
    service: &ImageService,
) -> Result<(HashSet<ImageId>, HashSet<ImageId>), ApiError> {
    let mut with_data = HashSet::new();
    for status in [Status::Active, Status::Deactivated] {
        with_data.extend(
            images::list_by_status(service.pool(), status)
                .await?
                .into_iter()
                .map(|i| i.id),
        );
    }
    let mut staging = HashSet::new();
    for status in [Status::Uploading, Status::Importing] {
        staging.extend(
            images::list_by_status(service.pool(), status)
                .await?
                .into_iter()
                .map(|i| i.id),
        );
    }
    Ok((with_data, staging))
}

fn remove_orphan_staged(
    service: &ImageService,
    staging: &HashSet<ImageId>,
) -> Result<usize, ApiError> {
    let expected: HashSet<_> = staging.iter().map(|id| service.staged_path(id)).collect();
    let mut removed = 0;
    let entries = std::fs::read_dir(&service.staging_dir).map_err(ApiError::internal)?;
    for entry in entries {
        let path = entry.map_err(ApiError::internal)?.path();
        if path.is_file() && !expected.contains(&path) {
            std::fs::remove_file(&path).map_err(ApiError::internal)?;
            removed += 1;
        }
    }
    Ok(removed)
}

fn remove_dir_files(dir: &std::path::Path) -> Result<usize, ApiError> {
    let mut removed = 0;
    for entry in std::fs::read_dir(dir).map_err(ApiError::internal)? {
        let path = entry.map_err(ApiError::internal)?.path();
        if path.is_file() {
            std::fs::remove_file(&path).map_err(ApiError::internal)?;
            removed += 1;
        }
    }
    Ok(removed)
}
