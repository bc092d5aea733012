//! Storage of active images' data: the `ImageStore` trait,
//! the filesystem store, and an in-memory store for tests.
//!
//! The service hands a store only verified data: uploads are received into
//! a local file, hashed and inspected first (see `crate::upload`), and the
//! store then takes the file with `put_file`. A store that keeps data
//! elsewhere (an object store) gets the same file through `put`.

mod fs;
mod memory;

use std::io;
use std::path::Path;
use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;

pub use fs::FilesystemStore;
pub use memory::MemoryStore;

use crate::model::ImageId;

/// A stream of data chunks.
pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// An inclusive byte range `first..=last` of stored data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteRange {
    pub first: u64,
    pub last: u64,
}

impl ByteRange {
    pub fn len(&self) -> u64 {
        self.last - self.first + 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }
}

/// A failed store operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no data is stored for image {id}")]
    NotFound { id: ImageId },
    #[error("byte range {first}-{last} is outside the {size} bytes stored for image {id}")]
    RangeOutside {
        id: ImageId,
        first: u64,
        last: u64,
        size: u64,
    },
    #[error("image store I/O failed on {path}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
}

impl StoreError {
    pub fn io(path: &Path, source: io::Error) -> Self {
        StoreError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// Data of active images, keyed by image id.
///
/// Writes replace any data stored under the id. Each write is atomic: a
/// reader sees the old data or the new, never a part, and a crash during a
/// write leaves the old data (or none).
#[async_trait]
pub trait ImageStore: Send + Sync + 'static {
    /// Stores the chunks of `data` as the data of `id`, returning the number
    /// of bytes stored. A stream error aborts the write and is returned.
    async fn put(&self, id: &ImageId, data: ByteStream) -> Result<u64, StoreError>;

    /// Stores the local file at `path` as the data of `id` and removes the
    /// file. Stores on the same filesystem override this to rename the file.
    async fn put_file(&self, id: &ImageId, path: &Path) -> Result<u64, StoreError> {
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| StoreError::io(path, e))?;
        let stream = tokio_util::io::ReaderStream::with_capacity(file, CHUNK_SIZE);
        let size = self.put(id, Box::pin(stream)).await?;
        tokio::fs::remove_file(path)
            .await
            .map_err(|e| StoreError::io(path, e))?;
        Ok(size)
    }

    /// Returns the size of the data of `id`, or `None` when there is none.
    async fn size(&self, id: &ImageId) -> Result<Option<u64>, StoreError>;

    /// Opens the data of `id`, all of it or `range`, for reading.
    async fn open(&self, id: &ImageId, range: Option<ByteRange>) -> Result<ByteStream, StoreError>;

    /// Deletes the data of `id`. Deleting absent data succeeds.
    async fn delete(&self, id: &ImageId) -> Result<(), StoreError>;

    /// Returns the ids that have data, for reconciliation at start-up.
    async fn list(&self) -> Result<Vec<ImageId>, StoreError>;

    /// Returns the local file that contains the data of `id`, for readers on
    /// this host that open it directly (a hypervisor creating an overlay).
    /// `None` when the store keeps data elsewhere. The file may be absent.
    fn local_path(&self, _id: &ImageId) -> Option<std::path::PathBuf> {
        None
    }

    /// Removes what writes interrupted by a crash left behind, returning how
    /// many items it removed. Called once at start-up, before any write.
    async fn recover(&self) -> Result<usize, StoreError> {
        Ok(0)
    }
}

/// Size of the chunks stores read and stream. Large enough that per-chunk
/// costs (a task hop, a syscall) stay small against copying the bytes.
pub const CHUNK_SIZE: usize = 256 * 1024;
