//! Image service (Glance v2): the image API, image stores, and disk image
//! format inspection.
//!
//! The binary opens an [`ImageService`] on the shared database and data
//! directory and merges [`mount`] (the [`router`] nested under `/image`,
//! plus `/image/`) into its application:
//!
//! ```ignore
//! let images = Arc::new(ImageService::open(store, config, &data_dir, public_url).await?);
//! app.merge(oxstack_image::mount(images, validator));
//! ```
//!
//! Data layout under the data directory: `images/` holds one file per
//! active image (the filesystem store), `images/incoming/` contains uploads being
//! received, `images/staging/` data staged for interoperable import.

pub mod api;
pub mod config;
pub mod db;
pub mod format;
pub mod model;
pub mod ops;
pub mod policy;
pub mod reconcile;
pub mod register;
pub mod schema;
pub mod store;
pub mod upload;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use oxstack_core::policy::Enforcer;
use oxstack_store::Store;

pub use api::{mount, router};
pub use config::ImageConfig;
pub use model::{Image, ImageId, Status, Visibility};
pub use store::{FilesystemStore, ImageStore};

/// The image service: what its handlers and background tasks share.
pub struct ImageService {
    pub store: Store,
    pub config: ImageConfig,
    /// The store of active images' data.
    pub data: Arc<dyn ImageStore>,
    /// Uploads being received: hashed and inspected here before the data
    /// store takes them. Emptied at start-up.
    pub incoming_dir: PathBuf,
    /// Data staged by `PUT /v2/images/{id}/stage`, one file per image.
    pub staging_dir: PathBuf,
    pub policy: Enforcer,
    /// The URL clients reach this cloud at, without a trailing slash
    /// (`http://127.0.0.1:5000`); the image API is under `{public_url}/image`.
    pub public_url: String,
}

/// A failure to start the image service.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Database(#[from] oxstack_store::StoreError),
    #[error("image store: {0}")]
    ImageStore(#[from] store::StoreError),
    #[error("cannot create directory {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("policy: {0}")]
    Policy(#[from] oxstack_core::policy::PolicyLoadError),
    #[error("reconciling images with stored data failed: {0}")]
    Reconcile(oxstack_core::ApiError),
}

impl ImageService {
    /// Opens the image service with the filesystem store in
    /// `DATA_DIR/images/`: migrates its tables, loads the policy, and
    /// reconciles the database with the files (see [`reconcile`]).
    pub async fn open(
        store: Store,
        config: ImageConfig,
        data_dir: &Path,
        public_url: String,
    ) -> Result<Self, OpenError> {
        let data = Arc::new(FilesystemStore::open(&data_dir.join("images"))?);
        Self::open_with_store(store, config, data_dir, public_url, data).await
    }

    /// Opens the image service with `data` as the image store. Incoming and
    /// staged files still live under `DATA_DIR/images/`.
    pub async fn open_with_store(
        store: Store,
        config: ImageConfig,
        data_dir: &Path,
        public_url: String,
        data: Arc<dyn ImageStore>,
    ) -> Result<Self, OpenError> {
        store.migrate("image", db::schema::MIGRATIONS).await?;
        let incoming_dir = data_dir.join("images").join("incoming");
        let staging_dir = data_dir.join("images").join("staging");
        for dir in [&incoming_dir, &staging_dir] {
            std::fs::create_dir_all(dir).map_err(|source| OpenError::CreateDir {
                path: dir.clone(),
                source,
            })?;
        }
        let policy = policy::load(config.policy_file.as_deref())?;
        for (rule, missing) in policy.undefined_references() {
            tracing::warn!(
                rule,
                missing,
                "policy rule refers to an undefined rule; it never passes"
            );
        }
        let service = ImageService {
            store,
            config,
            data,
            incoming_dir,
            staging_dir,
            policy,
            public_url: public_url.trim_end_matches('/').to_owned(),
        };
        reconcile::run(&service)
            .await
            .map_err(OpenError::Reconcile)?;
        Ok(service)
    }

    pub fn pool(&self) -> &oxstack_store::Pool {
        self.store.pool()
    }

    /// Returns the file of the filesystem store that contains the data of
    /// active image `id`, or `None` when the data is in another store or
    /// missing.
    pub fn local_data_path(&self, id: &ImageId) -> Option<PathBuf> {
        self.data.local_path(id).filter(|path| path.is_file())
    }

    /// Returns the path staged data of `id` has once staging finished.
    pub fn staged_path(&self, id: &ImageId) -> PathBuf {
        self.staging_dir.join(safe_file_name(id))
    }

    /// Returns a fresh path in the incoming directory for data of `id`.
    pub fn incoming_path(&self, id: &ImageId) -> PathBuf {
        let unique = uuid::Uuid::new_v4().simple();
        self.incoming_dir
            .join(format!("{}-{unique}", safe_file_name(id)))
    }
}

/// Maps a client-chosen id to a file name that stays inside its directory.
fn safe_file_name(id: &ImageId) -> String {
    let plain = !id.as_str().is_empty()
        && id
            .as_str()
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if plain {
        id.as_str().to_owned()
    } else {
        format!("x-{}", hex::encode(id.as_str()))
    }
}
