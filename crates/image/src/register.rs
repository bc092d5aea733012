//! Registration of an image from a local file by the operator's tooling
//! (`oxstack up` registers the test guest image), without an HTTP request.

use std::path::{Path, PathBuf};

use oxstack_core::ApiError;

use crate::db::{self, images};
use crate::model::{Image, ImageId, Status, Visibility};
use crate::ops::data::commit;
use crate::{upload, ImageService};

/// A failure to register an image.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error("cannot read image file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("disk_format {0} is not one Glance accepts")]
    UnknownDiskFormat(String),
    #[error("registering image {name} failed: {error}")]
    Rejected { name: String, error: ApiError },
}

impl ImageService {
    /// Registers the file at `path` as an active image named `name` owned by
    /// `owner_project_id`, with container format `bare`, and returns its id.
    ///
    /// Idempotent by name and owner: an existing active image of that name
    /// is returned as it is, and an existing one without data (left by an
    /// interrupted registration) receives the data. The data is hashed and
    /// inspected as an upload is.
    pub async fn register_image(
        &self,
        path: &Path,
        name: &str,
        disk_format: &str,
        owner_project_id: &str,
        visibility: Visibility,
    ) -> Result<ImageId, RegisterError> {
        if !crate::model::DISK_FORMATS.contains(&disk_format) {
            return Err(RegisterError::UnknownDiskFormat(disk_format.to_owned()));
        }
        let rejected = |error: ApiError| RegisterError::Rejected {
            name: name.to_owned(),
            error,
        };
        let existing = images::find_by_name(self.pool(), owner_project_id, name)
            .await
            .map_err(rejected)?;
        if let Some(active) = existing.iter().find(|image| image.status.has_data()) {
            return Ok(active.id.clone());
        }
        let image = match existing
            .into_iter()
            .find(|image| image.status == Status::Queued)
        {
            Some(image) => image,
            None => {
                let mut image = Image::new(
                    ImageId::generate(),
                    Some(owner_project_id.to_owned()),
                    db::now(),
                );
                image.name = Some(name.to_owned());
                image.disk_format = Some(disk_format.to_owned());
                image.container_format = Some("bare".to_owned());
                image.visibility = visibility;
                images::insert(self.pool(), &image)
                    .await
                    .map_err(rejected)?;
                image
            }
        };

        if !images::set_status(
            self.pool(),
            &image.id,
            Status::Queued,
            Status::Saving,
            db::now(),
        )
        .await
        .map_err(rejected)?
        {
            return Err(rejected(ApiError::conflict(format!(
                "Image {} is already receiving data.",
                image.id
            ))));
        }
        let result = self.receive_file(&image, path).await;
        if result.is_err() {
            let _ = images::set_status(
                self.pool(),
                &image.id,
                Status::Saving,
                Status::Queued,
                db::now(),
            )
            .await;
        }
        result?;
        tracing::info!(image_id = %image.id, name, "registered image");
        Ok(image.id)
    }

    async fn receive_file(&self, image: &Image, path: &Path) -> Result<(), RegisterError> {
        let read_error = |source| RegisterError::Read {
            path: path.to_owned(),
            source,
        };
        let file = tokio::fs::File::open(path).await.map_err(read_error)?;
        let stream = tokio_util::io::ReaderStream::with_capacity(file, crate::store::CHUNK_SIZE);
        let incoming = self.incoming_path(&image.id);
        let received =
            match upload::receive(stream, Some(&incoming), self.config.image_size_cap).await {
                Ok(received) => received,
                Err(error) => {
                    let _ = tokio::fs::remove_file(&incoming).await;
                    let error = ApiError::bad_request(error.to_string());
                    return Err(RegisterError::Rejected {
                        name: image.name.clone().unwrap_or_default(),
                        error,
                    });
                }
            };
        let committed = commit(self, image, Status::Saving, &incoming, &received).await;
        if let Err(error) = committed {
            let _ = tokio::fs::remove_file(&incoming).await;
            return Err(RegisterError::Rejected {
                name: image.name.clone().unwrap_or_default(),
                error,
            });
        }
        Ok(())
    }
}
