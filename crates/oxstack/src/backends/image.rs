//! `ImageApi` over the in-process image service.

use std::sync::Arc;

use oxstack_compute::external::{ExternalError, ImageApi, ImageInfo};
use oxstack_core::{AuthContext, RequestContext};
use oxstack_image::policy::Caller;
use oxstack_image::{Image, ImageId, ImageService, Status};

use super::external;

/// The image service as compute calls it, in the same process.
pub struct GlanceBackend {
    images: Arc<ImageService>,
}

impl GlanceBackend {
    pub fn new(images: Arc<ImageService>) -> Self {
        GlanceBackend { images }
    }

    fn info(&self, image: Image) -> ImageInfo {
        // Only an active image has data a host may read.
        let path = (image.status == Status::Active)
            .then(|| self.images.local_data_path(&image.id))
            .flatten();
        ImageInfo {
            id: image.id.as_str().to_owned(),
            name: image.name,
            status: image.status.as_str().to_owned(),
            disk_format: image.disk_format,
            container_format: image.container_format,
            size: image.size,
            virtual_size: image.virtual_size,
            min_disk: u64::try_from(image.min_disk).unwrap_or(0),
            min_ram: u64::try_from(image.min_ram).unwrap_or(0),
            properties: image.properties,
            path,
        }
    }
}

#[async_trait::async_trait]
impl ImageApi for GlanceBackend {
    async fn get_image(&self, caller: &AuthContext, id: &str) -> Result<Option<ImageInfo>, ExternalError> {
        let context = RequestContext { request_id: String::new(), auth: Arc::new(caller.clone()) };
        let caller = Caller::new(&self.images.policy, &context);
        match oxstack_image::ops::find_visible(&self.images, &caller, &ImageId::new(id)).await {
            Ok(visible) => Ok(Some(self.info(visible.image))),
            Err(error) if error.kind.status().as_u16() == 404 => Ok(None),
            Err(error) => Err(external(error)),
        }
    }

    async fn image_for_host(&self, id: &str) -> Result<Option<ImageInfo>, ExternalError> {
        let image = oxstack_image::db::images::get(self.images.pool(), &ImageId::new(id))
            .await
            .map_err(external)?;
        Ok(image
            .filter(|image| !matches!(image.status, Status::Deleted | Status::PendingDelete))
            .map(|image| self.info(image)))
    }
}

#[cfg(test)]
mod tests {
    use oxstack_image::{ImageConfig, Visibility};

    use super::*;
    use crate::testing::member_of;

    async fn image_service(dir: &std::path::Path) -> Arc<ImageService> {
        let url = format!("sqlite://{}/images.db", dir.display());
        let store = oxstack_store::Store::connect(&url).await.unwrap();
        let service = ImageService::open(store, ImageConfig::default(), dir, "http://127.0.0.1:5000".into())
            .await
            .unwrap();
        Arc::new(service)
    }

    #[tokio::test]
    async fn private_image_visibility_and_path() {
        let dir = tempfile::tempdir().unwrap();
        let images = image_service(dir.path()).await;
        let file = dir.path().join("disk.raw");
        std::fs::write(&file, vec![0u8; 4096]).unwrap();
        let id = images.register_image(&file, "disk", "raw", "p1", Visibility::Private).await.unwrap();
        let backend = GlanceBackend::new(images.clone());

        let seen = backend.get_image(&member_of("p1"), id.as_str()).await.unwrap().unwrap();
        assert_eq!(seen.status, "active");
        assert_eq!(seen.name.as_deref(), Some("disk"));
        assert_eq!(seen.disk_format.as_deref(), Some("raw"));
        assert_eq!(seen.size, Some(4096));
        let path = seen.path.expect("an active image in the filesystem store has a path");
        assert_eq!(std::fs::read(&path).unwrap().len(), 4096, "{}", path.display());

        assert!(backend.get_image(&member_of("p2"), id.as_str()).await.unwrap().is_none(), "another project's private image");
        assert!(backend.get_image(&member_of("p1"), "no-such-image").await.unwrap().is_none());

        let for_host = backend.image_for_host(id.as_str()).await.unwrap().unwrap();
        assert_eq!(for_host.path, Some(path));
        assert!(backend.image_for_host("no-such-image").await.unwrap().is_none());
    }
}
