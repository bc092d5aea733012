//! Image data: upload (`PUT …/file`), stage (`PUT …/stage`) and download
//! (`GET …/file`), and the commit step shared with import and
//! registration.
//!
//! Upload: `queued → saving`, receive into the incoming directory while
//! hashing, inspect, hand the file to the image store, then `saving →
//! active` with the hashes. Any failure removes the received file and
//! returns the image to `queued`, so no unverified data is ever stored.

use std::error::Error as StdError;
use std::path::Path;

use bytes::Bytes;
use futures::Stream;
use oxstack_core::{ApiError, ErrorKind};

use super::find_visible;
use crate::db::{self, images};
use crate::model::{DataInfo, Image, ImageId, Status};
use crate::policy::{self, Caller};
use crate::store::{ByteRange, ByteStream, StoreError};
use crate::upload::{self, ReceiveError, Received};
use crate::ImageService;

/// Receives `body` as the data of a `queued` image and activates the image.
/// `declared_size` (from `Content-Length` or `X-OpenStack-Image-Size`)
/// lets an oversized upload fail before any byte is read.
pub async fn upload<S, E>(
    service: &ImageService,
    caller: &Caller,
    id: &ImageId,
    body: S,
    declared_size: Option<u64>,
) -> Result<(), ApiError>
where
    S: Stream<Item = Result<Bytes, E>> + Send,
    E: Into<Box<dyn StdError + Send + Sync>>,
{
    let visible = find_visible(service, caller, id).await?;
    policy::enforce(
        &service.policy,
        caller,
        "upload_image",
        &visible.target(caller),
    )?;
    let image = visible.image;
    check_formats_set(&image)?;
    check_declared_size(service, declared_size)?;
    begin_transfer(service, &image, Status::Saving).await?;

    let path = service.incoming_path(id);
    let result = async {
        let received = upload::receive(body, Some(&path), service.config.image_size_cap)
            .await
            .map_err(receive_error)?;
        commit(service, &image, Status::Saving, &path, &received).await
    }
    .await;
    if let Err(error) = &result {
        abandon(service, id, Status::Saving, &path, error).await;
    }
    result
}

/// Receives `body` into the staging area of a `queued` image, which becomes
/// `uploading` until it is imported.
pub async fn stage<S, E>(
    service: &ImageService,
    caller: &Caller,
    id: &ImageId,
    body: S,
    declared_size: Option<u64>,
) -> Result<(), ApiError>
where
    S: Stream<Item = Result<Bytes, E>> + Send,
    E: Into<Box<dyn StdError + Send + Sync>>,
{
    let visible = find_visible(service, caller, id).await?;
    policy::enforce(
        &service.policy,
        caller,
        "modify_image",
        &visible.target(caller),
    )?;
    check_declared_size(service, declared_size)?;
    begin_transfer(service, &visible.image, Status::Uploading).await?;

    let path = service.incoming_path(id);
    let result = async {
        let received = upload::receive(body, Some(&path), service.config.image_size_cap)
            .await
            .map_err(receive_error)?;
        let staged = service.staged_path(id);
        tokio::fs::rename(&path, &staged)
            .await
            .map_err(ApiError::internal)?;
        if !images::set_staged_size(service.pool(), id, received.size, db::now()).await? {
            let _ = tokio::fs::remove_file(&staged).await;
            return Err(ApiError::not_found(format!(
                "Image {id} was deleted while its data was staged."
            )));
        }
        tracing::info!(image_id = %id, size = received.size, "staged image data");
        Ok(())
    }
    .await;
    if let Err(error) = &result {
        abandon(service, id, Status::Uploading, &path, error).await;
    }
    result
}

fn check_formats_set(image: &Image) -> Result<(), ApiError> {
    let missing: Vec<&str> = [
        ("disk_format", &image.disk_format),
        ("container_format", &image.container_format),
    ]
    .into_iter()
    .filter(|(_, value)| value.is_none())
    .map(|(name, _)| name)
    .collect();
    match missing.as_slice() {
        [] => Ok(()),
        [one] => Err(ApiError::bad_request(format!(
            "Property {one} must be set prior to saving data."
        ))),
        many => Err(ApiError::bad_request(format!(
            "Properties {} must be set prior to saving data.",
            many.join(", ")
        ))),
    }
}

fn check_declared_size(service: &ImageService, declared_size: Option<u64>) -> Result<(), ApiError> {
    let cap = service.config.image_size_cap;
    match declared_size {
        Some(size) if size > cap => Err(ApiError::new(
            ErrorKind::PayloadTooLarge,
            format!("The incoming image is too large: {size} bytes; the limit is {cap} bytes."),
        )),
        _ => Ok(()),
    }
}

/// Moves a `queued` image to `to`, or explains with Glance's 409 why the
/// image cannot take data now.
async fn begin_transfer(service: &ImageService, image: &Image, to: Status) -> Result<(), ApiError> {
    if image.status == Status::Queued
        && images::set_status(service.pool(), &image.id, Status::Queued, to, db::now()).await?
    {
        return Ok(());
    }
    let current = images::get(service.pool(), &image.id)
        .await?
        .map(|i| i.status)
        .unwrap_or(image.status);
    Err(ApiError::conflict(format!(
        "Image status transition from {current} to {to} is not allowed"
    )))
}

fn receive_error(error: ReceiveError) -> ApiError {
    match error {
        ReceiveError::TooLarge { .. } => {
            ApiError::new(ErrorKind::PayloadTooLarge, error.to_string())
        }
        ReceiveError::Body(source) => ApiError::bad_request(format!(
            "Error reading the image data from the request body: {source}"
        )),
        ReceiveError::Write { .. } | ReceiveError::Worker(_) => {
            ApiError::internal(format!("{error}: {:?}", StdError::source(&error)))
        }
    }
}

/// Undoes a failed transfer: removes the received file and returns the
/// image from `from` to `queued`.
async fn abandon(
    service: &ImageService,
    id: &ImageId,
    from: Status,
    path: &Path,
    error: &ApiError,
) {
    let _ = tokio::fs::remove_file(path).await;
    match images::set_status(service.pool(), id, from, Status::Queued, db::now()).await {
        Ok(_) => {
            tracing::info!(image_id = %id, error = %error, "image data rejected; image is queued again")
        }
        Err(db_error) => tracing::error!(image_id = %id, error = %db_error,
            "could not return the image to queued; start-up reconciliation will"),
    }
}

/// Inspects the received file at `path`, gives it to the image store and
/// moves the image from `from` to `active` with its hashes. On error the
/// file may remain at `path`; the caller removes it.
pub async fn commit(
    service: &ImageService,
    image: &Image,
    from: Status,
    path: &Path,
    received: &Received,
) -> Result<(), ApiError> {
    let disk_format = image.disk_format.clone().unwrap_or_default();
    let container_format = image.container_format.clone().unwrap_or_default();
    let inspected_path = path.to_owned();
    let virtual_size = tokio::task::spawn_blocking(move || {
        upload::inspect(&inspected_path, &disk_format, &container_format)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(|rejection| ApiError::bad_request(format!("Image data was rejected: {rejection}")))?;

    service
        .data
        .put_file(&image.id, path)
        .await
        .map_err(ApiError::internal)?;
    let info = DataInfo {
        size: received.size,
        virtual_size,
        checksum: received.md5.clone(),
        os_hash_value: received.sha512.clone(),
    };
    if !images::activate(service.pool(), &image.id, from, &info, db::now()).await? {
        // Deleted (or reset) while the data arrived: what was stored has no image.
        let _ = service.data.delete(&image.id).await;
        return Err(ApiError::not_found(format!(
            "Image {} could not be found after upload. The image may have been deleted during the upload.",
            image.id
        )));
    }
    tracing::info!(image_id = %image.id, size = received.size, "image is active");
    Ok(())
}

/// The outcome of a download request.
pub enum Download {
    /// The image has no data (204).
    NoData,
    /// The data, or the requested range of it.
    Data {
        stream: ByteStream,
        range: Option<ByteRange>,
        total: u64,
        checksum: Option<String>,
    },
    /// The range cannot be served (416); `total` goes in `Content-Range`.
    Unsatisfiable { total: u64 },
}

/// Opens the data of an image for download, all of it or the range of a
/// `Range: bytes=…` header.
pub async fn download(
    service: &ImageService,
    caller: &Caller,
    id: &ImageId,
    range_header: Option<&str>,
) -> Result<Download, ApiError> {
    let visible = find_visible(service, caller, id).await?;
    if visible.image.status == Status::Deactivated && !caller.is_admin {
        return Err(ApiError::forbidden(
            "The requested image has been deactivated. Image data download is forbidden.",
        ));
    }
    policy::enforce(
        &service.policy,
        caller,
        "download_image",
        &visible.target(caller),
    )?;
    let image = visible.image;
    let (Some(total), true) = (image.size, image.status.has_data()) else {
        return Ok(Download::NoData);
    };

    let range = match range_header.map(|header| parse_range(header, total)) {
        None | Some(Ok(None)) => None,
        Some(Ok(Some(range))) => Some(range),
        Some(Err(Unsatisfiable)) => return Ok(Download::Unsatisfiable { total }),
    };
    match service.data.open(id, range).await {
        Ok(stream) => Ok(Download::Data {
            stream,
            range,
            total,
            checksum: image.checksum,
        }),
        Err(StoreError::NotFound { .. }) => Ok(Download::NoData),
        Err(StoreError::RangeOutside { .. }) => Ok(Download::Unsatisfiable { total }),
        Err(error) => Err(ApiError::internal(error)),
    }
}

/// A `Range` header that names no byte of the data (416).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unsatisfiable;

/// Parses a single `bytes=first-last`, `bytes=first-` or `bytes=-suffix`
/// range against data of `total` bytes. Returns `Ok(None)` for a header
/// this service ignores (another unit, or several ranges, which are served
/// whole).
pub fn parse_range(header: &str, total: u64) -> Result<Option<ByteRange>, Unsatisfiable> {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let (first, last) = spec.split_once('-').ok_or(Unsatisfiable)?;
    let (first, last) = (first.trim(), last.trim());
    let parse = |text: &str| text.parse::<u64>().map_err(|_| Unsatisfiable);
    let range = if first.is_empty() {
        let suffix = parse(last)?;
        if suffix == 0 || total == 0 {
            return Err(Unsatisfiable);
        }
        ByteRange {
            first: total.saturating_sub(suffix),
            last: total - 1,
        }
    } else {
        let first = parse(first)?;
        let last = if last.is_empty() {
            total.saturating_sub(1)
        } else {
            parse(last)?.min(total.saturating_sub(1))
        };
        if first >= total || first > last {
            return Err(Unsatisfiable);
        }
        ByteRange { first, last }
    };
    Ok(Some(range))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_as_rfc_7233() {
        assert_eq!(
            parse_range("bytes=0-4", 10),
            Ok(Some(ByteRange { first: 0, last: 4 }))
        );
        assert_eq!(
            parse_range("bytes=5-", 10),
            Ok(Some(ByteRange { first: 5, last: 9 }))
        );
        assert_eq!(
            parse_range("bytes=-3", 10),
            Ok(Some(ByteRange { first: 7, last: 9 }))
        );
        assert_eq!(
            parse_range("bytes=8-100", 10),
            Ok(Some(ByteRange { first: 8, last: 9 }))
        );
        assert_eq!(
            parse_range("bytes=-100", 10),
            Ok(Some(ByteRange { first: 0, last: 9 }))
        );
        assert_eq!(parse_range("items=0-1", 10), Ok(None));
        assert_eq!(parse_range("bytes=0-1,4-5", 10), Ok(None));
    }

    #[test]
    fn unsatisfiable_ranges_are_errors() {
        assert_eq!(parse_range("bytes=10-12", 10), Err(Unsatisfiable));
        assert_eq!(parse_range("bytes=5-2", 10), Err(Unsatisfiable));
        assert_eq!(parse_range("bytes=-0", 10), Err(Unsatisfiable));
        assert_eq!(parse_range("bytes=a-b", 10), Err(Unsatisfiable));
        assert_eq!(parse_range("bytes=0-0", 0), Err(Unsatisfiable));
    }
}
