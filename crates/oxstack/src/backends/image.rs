//! `ImageApi` over the in-process image service.

use std::sync::Arc;

use std::collections::BTreeMap;

use oxstack_compute::external::{ExternalError, ImageApi, ImageChangeError, ImageInfo};
use oxstack_core::{AuthContext, RequestContext};
use oxstack_image::ops::images::{Change, PatchOp};
use oxstack_image::ops::list::ListQuery;
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
            created_at: image.created_at,
            updated_at: image.updated_at,
        }
    }

    fn caller(&self, context: &RequestContext) -> Caller {
        Caller::new(&self.images.policy, context)
    }
}

fn context_of(caller: &AuthContext) -> RequestContext {
    RequestContext {
        request_id: String::new(),
        auth: Arc::new(caller.clone()),
    }
}

/// Keeps Glance's 403 apart, because compute's proxy returns its own 403.
fn change_error(error: oxstack_core::ApiError) -> ImageChangeError {
    if error.kind.status().as_u16() == 403 {
        ImageChangeError::Forbidden(error.message)
    } else {
        ImageChangeError::Other(external(error))
    }
}

/// The largest page compute's image proxy requests. Nova reads every page
/// of Glance's list when the request has no limit.
const PROXY_MAX_LIMIT: usize = 100_000;

#[async_trait::async_trait]
impl ImageApi for GlanceBackend {
    async fn get_image(
        &self,
        caller: &AuthContext,
        id: &str,
    ) -> Result<Option<ImageInfo>, ExternalError> {
        let context = RequestContext {
            request_id: String::new(),
            auth: Arc::new(caller.clone()),
        };
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

    async fn list_images(
        &self,
        caller: &AuthContext,
        query: &[(String, String)],
    ) -> Result<Vec<ImageInfo>, ExternalError> {
        let context = context_of(caller);
        let caller = self.caller(&context);
        let query = ListQuery::parse(query, PROXY_MAX_LIMIT, PROXY_MAX_LIMIT).map_err(external)?;
        let page = oxstack_image::ops::list::list(&self.images, &caller, &query)
            .await
            .map_err(external)?;
        Ok(page
            .images
            .into_iter()
            .map(|image| self.info(image))
            .collect())
    }

    async fn delete_image(&self, caller: &AuthContext, id: &str) -> Result<(), ImageChangeError> {
        let context = context_of(caller);
        let caller = self.caller(&context);
        oxstack_image::ops::images::delete(&self.images, &caller, &ImageId::new(id))
            .await
            .map_err(change_error)
    }

    async fn replace_image_properties(
        &self,
        caller: &AuthContext,
        id: &str,
        properties: &BTreeMap<String, String>,
    ) -> Result<ImageInfo, ImageChangeError> {
        let context = context_of(caller);
        let caller = self.caller(&context);
        let image_id = ImageId::new(id);
        let current = oxstack_image::ops::find_visible(&self.images, &caller, &image_id)
            .await
            .map_err(change_error)?
            .image;
        // One PATCH: remove the properties not kept, then add or replace
        // the others, so the change is all or nothing.
        let mut changes = Vec::new();
        for name in current
            .properties
            .keys()
            .filter(|name| !properties.contains_key(*name))
        {
            changes.push(Change {
                op: PatchOp::Remove,
                path: vec![name.clone()],
                value: None,
                strict_add: false,
            });
        }
        for (name, value) in properties {
            if current.properties.get(name) != Some(value) {
                changes.push(Change {
                    op: PatchOp::Add,
                    path: vec![name.clone()],
                    value: Some(serde_json::Value::String(value.clone())),
                    strict_add: false,
                });
            }
        }
        let image = oxstack_image::ops::images::update(&self.images, &caller, &image_id, &changes)
            .await
            .map_err(change_error)?;
        Ok(self.info(image))
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
        let service = ImageService::open(
            store,
            ImageConfig::default(),
            dir,
            "http://127.0.0.1:5000".into(),
        )
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
        let id = images
            .register_image(&file, "disk", "raw", "p1", Visibility::Private)
            .await
            .unwrap();
        let backend = GlanceBackend::new(images.clone());

        let seen = backend
            .get_image(&member_of("p1"), id.as_str())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(seen.status, "active");
        assert_eq!(seen.name.as_deref(), Some("disk"));
        assert_eq!(seen.disk_format.as_deref(), Some("raw"));
        assert_eq!(seen.size, Some(4096));
        let path = seen
            .path
            .expect("an active image in the filesystem store has a path");
        assert_eq!(
            std::fs::read(&path).unwrap().len(),
            4096,
            "{}",
            path.display()
        );

        assert!(
            backend
                .get_image(&member_of("p2"), id.as_str())
                .await
                .unwrap()
                .is_none(),
            "another project's private image"
        );
        assert!(backend
            .get_image(&member_of("p1"), "no-such-image")
            .await
            .unwrap()
            .is_none());

        let for_host = backend.image_for_host(id.as_str()).await.unwrap().unwrap();
        assert_eq!(for_host.path, Some(path));
        assert!(backend
            .image_for_host("no-such-image")
            .await
            .unwrap()
            .is_none());
    }

    #[tokio::test]
    async fn proxy_lists_changes_and_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let images = image_service(dir.path()).await;
        let file = dir.path().join("disk.raw");
        std::fs::write(&file, vec![0u8; 4096]).unwrap();
        let id = images
            .register_image(&file, "disk", "raw", "p1", Visibility::Private)
            .await
            .unwrap();
        let backend = GlanceBackend::new(images.clone());
        let owner = member_of("p1");

        let query = vec![("name".to_owned(), "disk".to_owned())];
        let listed = backend.list_images(&owner, &query).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert!(listed[0].created_at > 0);
        assert!(
            backend
                .list_images(&member_of("p2"), &query)
                .await
                .unwrap()
                .is_empty(),
            "private to p1"
        );
        let bad_marker = vec![("marker".to_owned(), "no-such-image".to_owned())];
        assert!(backend.list_images(&owner, &bad_marker).await.is_err());

        let first: BTreeMap<String, String> = [
            ("a".to_owned(), "1".to_owned()),
            ("b".to_owned(), "2".to_owned()),
        ]
        .into();
        let changed = backend
            .replace_image_properties(&owner, id.as_str(), &first)
            .await
            .unwrap();
        assert_eq!(changed.properties.get("a").map(String::as_str), Some("1"));
        let second: BTreeMap<String, String> = [("b".to_owned(), "3".to_owned())].into();
        let changed = backend
            .replace_image_properties(&owner, id.as_str(), &second)
            .await
            .unwrap();
        assert!(
            !changed.properties.contains_key("a"),
            "a was removed: {:?}",
            changed.properties
        );
        assert_eq!(changed.properties.get("b").map(String::as_str), Some("3"));

        let hidden = backend
            .delete_image(&member_of("p2"), id.as_str())
            .await
            .unwrap_err();
        assert!(
            matches!(hidden, ImageChangeError::Other(ref e) if e.kind == oxstack_compute::external::ExternalErrorKind::NotFound),
            "{hidden:?}"
        );
        backend.delete_image(&owner, id.as_str()).await.unwrap();
        assert!(backend
            .get_image(&owner, id.as_str())
            .await
            .unwrap()
            .is_none());
    }
}
