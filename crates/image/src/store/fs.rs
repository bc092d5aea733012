//! The filesystem image store: one file per image in one directory, named
//! by the image id.
//!
//! Writes go to a temporary name in the same directory, are synced, then
//! renamed over the final name, and the directory is synced, so a crash
//! leaves either the old file or the new one. Temporary names start with
//! `.tmp-`; the service deletes leftovers at start-up.

use std::io;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use super::{ByteRange, ByteStream, ImageStore, StoreError, CHUNK_SIZE};
use crate::model::ImageId;

/// Prefix of files being written.
const TEMP_PREFIX: &str = ".tmp-";

/// Image data as files in one directory.
#[derive(Clone, Debug)]
pub struct FilesystemStore {
    dir: PathBuf,
}

impl FilesystemStore {
    /// Opens the store in `dir`, creating the directory when missing.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
        Ok(FilesystemStore {
            dir: dir.to_owned(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Returns the path of the data of `id`. Ids that could escape the
    /// directory are mapped to a name that cannot exist, because ids come
    /// from clients.
    pub fn path_of(&self, id: &ImageId) -> PathBuf {
        self.dir.join(file_name(id))
    }

    fn remove_temporary_files(&self) -> Result<usize, StoreError> {
        let mut removed = 0;
        let entries = std::fs::read_dir(&self.dir).map_err(|e| StoreError::io(&self.dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| StoreError::io(&self.dir, e))?;
            if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                std::fs::remove_file(entry.path()).map_err(|e| StoreError::io(&entry.path(), e))?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    fn temp_path(&self, id: &ImageId) -> PathBuf {
        let unique = uuid::Uuid::new_v4().simple();
        self.dir
            .join(format!("{TEMP_PREFIX}{}-{unique}", file_name(id)))
    }

    /// Renames `from` to the final name of `id` and syncs the directory so
    /// that the rename survives a crash.
    async fn commit(&self, from: &Path, id: &ImageId) -> Result<(), StoreError> {
        let target = self.path_of(id);
        tokio::fs::rename(from, &target)
            .await
            .map_err(|e| StoreError::io(&target, e))?;
        sync_dir(&self.dir).await
    }
}

/// Maps an id to a file name. Glance ids are UUIDs; anything that is not a
/// plain name gets a prefix no UUID has, so it can never name another file.
fn file_name(id: &ImageId) -> String {
    let plain = id
        .as_str()
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if plain && !id.as_str().is_empty() {
        id.as_str().to_owned()
    } else {
        format!("x-{}", hex::encode(id.as_str()))
    }
}

async fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    let dir = dir.to_owned();
    let synced = tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || std::fs::File::open(&dir)?.sync_all()
    })
    .await
    .map_err(|e| StoreError::io(&dir, io::Error::other(e)))?;
    match synced {
        Ok(()) => Ok(()),
        // Some filesystems refuse fsync on directories; the rename is then
        // as durable as that filesystem makes it.
        Err(error) if error.kind() == io::ErrorKind::InvalidInput => Ok(()),
        Err(error) => Err(StoreError::io(&dir, error)),
    }
}

#[async_trait]
impl ImageStore for FilesystemStore {
    fn local_path(&self, id: &ImageId) -> Option<PathBuf> {
        Some(self.path_of(id))
    }

    async fn put(&self, id: &ImageId, mut data: ByteStream) -> Result<u64, StoreError> {
        let temp = self.temp_path(id);
        let result = async {
            let mut file = tokio::fs::File::create(&temp)
                .await
                .map_err(|e| StoreError::io(&temp, e))?;
            let mut size = 0u64;
            while let Some(chunk) = data.next().await {
                let chunk = chunk.map_err(|e| StoreError::io(&temp, e))?;
                file.write_all(&chunk)
                    .await
                    .map_err(|e| StoreError::io(&temp, e))?;
                size += chunk.len() as u64;
            }
            file.sync_all()
                .await
                .map_err(|e| StoreError::io(&temp, e))?;
            Ok(size)
        }
        .await;
        match result {
            Ok(size) => {
                self.commit(&temp, id).await?;
                Ok(size)
            }
            Err(error) => {
                let _ = tokio::fs::remove_file(&temp).await;
                Err(error)
            }
        }
    }

    async fn put_file(&self, id: &ImageId, path: &Path) -> Result<u64, StoreError> {
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| StoreError::io(path, e))?;
        file.sync_all().await.map_err(|e| StoreError::io(path, e))?;
        let size = file
            .metadata()
            .await
            .map_err(|e| StoreError::io(path, e))?
            .len();
        drop(file);
        match self.commit(path, id).await {
            Ok(()) => Ok(size),
            // A file on another filesystem cannot be renamed here; copy it.
            Err(StoreError::Io { source, .. })
                if source.kind() == io::ErrorKind::CrossesDevices =>
            {
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
            Err(error) => Err(error),
        }
    }

    async fn size(&self, id: &ImageId) -> Result<Option<u64>, StoreError> {
        let path = self.path_of(id);
        match tokio::fs::metadata(&path).await {
            Ok(meta) => Ok(Some(meta.len())),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(StoreError::io(&path, error)),
        }
    }

    async fn open(&self, id: &ImageId, range: Option<ByteRange>) -> Result<ByteStream, StoreError> {
        let path = self.path_of(id);
        let mut file = match tokio::fs::File::open(&path).await {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::NotFound { id: id.clone() })
            }
            Err(error) => return Err(StoreError::io(&path, error)),
        };
        let Some(range) = range else {
            return Ok(Box::pin(tokio_util::io::ReaderStream::with_capacity(
                file, CHUNK_SIZE,
            )));
        };
        let size = file
            .metadata()
            .await
            .map_err(|e| StoreError::io(&path, e))?
            .len();
        if range.first > range.last || range.last >= size {
            return Err(StoreError::RangeOutside {
                id: id.clone(),
                first: range.first,
                last: range.last,
                size,
            });
        }
        file.seek(io::SeekFrom::Start(range.first))
            .await
            .map_err(|e| StoreError::io(&path, e))?;
        let limited = file.take(range.len());
        Ok(Box::pin(tokio_util::io::ReaderStream::with_capacity(
            limited, CHUNK_SIZE,
        )))
    }

    async fn delete(&self, id: &ImageId) -> Result<(), StoreError> {
        let path = self.path_of(id);
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(StoreError::io(&path, error)),
        }
    }

    async fn list(&self) -> Result<Vec<ImageId>, StoreError> {
        let mut ids = Vec::new();
        let mut entries = tokio::fs::read_dir(&self.dir)
            .await
            .map_err(|e| StoreError::io(&self.dir, e))?;
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(|e| StoreError::io(&self.dir, e))?
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(TEMP_PREFIX) || !entry.file_type().await.is_ok_and(|t| t.is_file())
            {
                continue;
            }
            match name
                .strip_prefix("x-")
                .and_then(|encoded| hex::decode(encoded).ok())
            {
                Some(raw) => ids.push(ImageId::new(String::from_utf8_lossy(&raw).into_owned())),
                None => ids.push(ImageId::new(name)),
            }
        }
        Ok(ids)
    }

    async fn recover(&self) -> Result<usize, StoreError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.remove_temporary_files())
            .await
            .map_err(|e| StoreError::io(Path::new("recover task"), io::Error::other(e)))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    async fn collect(stream: ByteStream) -> Vec<u8> {
        let chunks: Vec<_> = stream.collect().await;
        chunks
            .into_iter()
            .flat_map(|c| c.unwrap().to_vec())
            .collect()
    }

    fn chunks(parts: &[&'static [u8]]) -> ByteStream {
        let items: Vec<io::Result<Bytes>> =
            parts.iter().map(|p| Ok(Bytes::from_static(p))).collect();
        Box::pin(futures::stream::iter(items))
    }

    #[tokio::test]
    async fn put_then_open_returns_data() {
        let dir = tempfile::tempdir().unwrap();
        let store = FilesystemStore::open(dir.path()).unwrap();
        let id = ImageId::generate();
        assert_eq!(
            store
                .put(&id, chunks(&[b"hello ", b"world"]))
                .await
                .unwrap(),
            11
        );
        assert_eq!(
            collect(store.open(&id, None).await.unwrap()).await,
            b"hello world"
        );
        let range = ByteRange { first: 6, last: 9 };
        assert_eq!(
            collect(store.open(&id, Some(range)).await.unwrap()).await,
            b"worl"
        );
        assert_eq!(store.size(&id).await.unwrap(), Some(11));
        assert_eq!(store.list().await.unwrap(), vec![id]);
    }

    #[tokio::test]
    async fn range_past_end_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let store = FilesystemStore::open(dir.path()).unwrap();
        let id = ImageId::generate();
        store.put(&id, chunks(&[b"abc"])).await.unwrap();
        let error = store
            .open(&id, Some(ByteRange { first: 1, last: 3 }))
            .await
            .err()
            .unwrap();
        assert!(
            matches!(error, StoreError::RangeOutside { size: 3, .. }),
            "{error}"
        );
    }

    #[tokio::test]
    async fn failed_stream_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = FilesystemStore::open(dir.path()).unwrap();
        let id = ImageId::generate();
        let items: Vec<io::Result<Bytes>> = vec![
            Ok(Bytes::from_static(b"abc")),
            Err(io::Error::other("client went away")),
        ];
        assert!(store
            .put(&id, Box::pin(futures::stream::iter(items)))
            .await
            .is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        assert_eq!(store.size(&id).await.unwrap(), None);
    }

    #[tokio::test]
    async fn hostile_id_stays_inside_directory() {
        let dir = tempfile::tempdir().unwrap();
        let store = FilesystemStore::open(&dir.path().join("images")).unwrap();
        let id = ImageId::new("../escape");
        store.put(&id, chunks(&[b"x"])).await.unwrap();
        assert!(!dir.path().join("escape").exists());
        assert_eq!(store.list().await.unwrap(), vec![id.clone()]);
        store.delete(&id).await.unwrap();
        store.delete(&id).await.unwrap();
        assert_eq!(store.size(&id).await.unwrap(), None);
    }

    #[tokio::test]
    async fn put_file_moves_file_into_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = FilesystemStore::open(&dir.path().join("images")).unwrap();
        let source = dir.path().join("upload");
        std::fs::write(&source, b"data").unwrap();
        let id = ImageId::generate();
        assert_eq!(store.put_file(&id, &source).await.unwrap(), 4);
        assert!(!source.exists());
        assert_eq!(std::fs::read(store.path_of(&id)).unwrap(), b"data");
    }
}
