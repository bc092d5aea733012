//! An image store in memory, for tests that need a store whose writes can
//! be made to fail.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;

use super::{ByteRange, ByteStream, ImageStore, StoreError};
use crate::model::ImageId;

/// Image data in a map. Holds whole images in memory, so it suits small
/// test images only.
#[derive(Debug, Default)]
pub struct MemoryStore {
    data: Mutex<HashMap<ImageId, Bytes>>,
    fail_writes: AtomicBool,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes every later `put` fail with an I/O error, until called with false.
    pub fn fail_writes(&self, fail: bool) {
        self.fail_writes.store(fail, Ordering::SeqCst);
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<ImageId, Bytes>> {
        // A panic while holding the lock cannot leave the map half-updated:
        // every critical section is one insert, remove or clone.
        self.data
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl ImageStore for MemoryStore {
    async fn put(&self, id: &ImageId, mut data: ByteStream) -> Result<u64, StoreError> {
        let mut buffer = Vec::new();
        while let Some(chunk) = data.next().await {
            let chunk = chunk.map_err(|e| StoreError::Io {
                path: format!("memory:{id}"),
                source: e,
            })?;
            buffer.extend_from_slice(&chunk);
        }
        if self.fail_writes.load(Ordering::SeqCst) {
            return Err(StoreError::Io {
                path: format!("memory:{id}"),
                source: io::Error::other("writes are set to fail"),
            });
        }
        let size = buffer.len() as u64;
        self.map().insert(id.clone(), Bytes::from(buffer));
        Ok(size)
    }

    async fn size(&self, id: &ImageId) -> Result<Option<u64>, StoreError> {
        Ok(self.map().get(id).map(|data| data.len() as u64))
    }

    async fn open(&self, id: &ImageId, range: Option<ByteRange>) -> Result<ByteStream, StoreError> {
        let data = self
            .map()
            .get(id)
            .cloned()
            .ok_or_else(|| StoreError::NotFound { id: id.clone() })?;
        let data = match range {
            None => data,
            Some(range) if range.first <= range.last && range.last < data.len() as u64 => {
                data.slice(range.first as usize..=range.last as usize)
            }
            Some(range) => {
                return Err(StoreError::RangeOutside {
                    id: id.clone(),
                    first: range.first,
                    last: range.last,
                    size: data.len() as u64,
                })
            }
        };
        Ok(Box::pin(futures::stream::iter([Ok(data)])))
    }

    async fn delete(&self, id: &ImageId) -> Result<(), StoreError> {
        self.map().remove(id);
        Ok(())
    }

    async fn list(&self) -> Result<Vec<ImageId>, StoreError> {
        Ok(self.map().keys().cloned().collect())
    }
}
