//! Receiving image data: a byte stream is written to a local file while its
//! MD5 (`checksum`) and SHA-512 (`os_hash_value`) are computed, then the
//! file is inspected before it may become an image's data.
//!
//! Memory stays flat whatever the image size: chunks are gathered into
//! buffers of at most `BUFFER_SIZE` and at most `QUEUE_DEPTH` buffers wait
//! for each worker. Writing with MD5, and SHA-512, run on two blocking
//! threads, so hashing does not stall the async runtime and the two hashes
//! proceed in parallel.

use std::error::Error as StdError;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use md5::{Digest, Md5};
use sha2::Sha512;
use tokio::sync::mpsc;

use crate::format::{self, Rejection};

/// Bytes gathered before a buffer goes to the workers.
const BUFFER_SIZE: usize = 1 << 20;
/// Buffers queued per worker; bounds memory at about
/// `BUFFER_SIZE * (QUEUE_DEPTH + 2)`.
const QUEUE_DEPTH: usize = 4;

/// Data received in full.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    pub size: u64,
    /// MD5 in lower-case hex.
    pub md5: String,
    /// SHA-512 in lower-case hex.
    pub sha512: String,
}

/// A failure to receive image data.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    #[error("The incoming image is too large: the limit is {cap} bytes.")]
    TooLarge { cap: u64 },
    #[error("reading the image data from the client failed")]
    Body(#[source] Box<dyn StdError + Send + Sync>),
    #[error("writing image data to {path} failed")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("a hashing worker stopped unexpectedly")]
    Worker(#[source] tokio::task::JoinError),
}

/// Streams `body` into a new file at `path` (when given), hashing it, and
/// syncs the file. Fails with `TooLarge` as soon as more than `cap` bytes
/// arrive. On error the caller removes whatever was written.
pub async fn receive<S, E>(body: S, path: Option<&Path>, cap: u64) -> Result<Received, ReceiveError>
where
    S: Stream<Item = Result<Bytes, E>> + Send,
    E: Into<Box<dyn StdError + Send + Sync>>,
{
    let file = match path {
        Some(path) => Some(
            std::fs::File::create(path).map_err(|source| ReceiveError::Write {
                path: path.to_owned(),
                source,
            })?,
        ),
        None => None,
    };
    let (write_tx, write_rx) = mpsc::channel::<Bytes>(QUEUE_DEPTH);
    let (sha_tx, sha_rx) = mpsc::channel::<Bytes>(QUEUE_DEPTH);
    let owned_path = path.map(Path::to_owned);
    let writer = tokio::task::spawn_blocking(move || write_and_md5(write_rx, file, owned_path));
    let sha = tokio::task::spawn_blocking(move || sha512_of(sha_rx));

    let fed = feed(body, cap, &write_tx, &sha_tx).await;
    drop(write_tx);
    drop(sha_tx);
    let md5 = writer.await.map_err(ReceiveError::Worker)?;
    let sha512 = sha.await.map_err(ReceiveError::Worker)?;

    let size = fed?;
    Ok(Received {
        size,
        md5: md5?,
        sha512,
    })
}

/// Reads `body` into full buffers and hands each to both workers. Returns
/// the byte count. A send fails only when a worker stopped on a write
/// error, which `receive` then reports.
async fn feed<S, E>(
    body: S,
    cap: u64,
    write_tx: &mpsc::Sender<Bytes>,
    sha_tx: &mpsc::Sender<Bytes>,
) -> Result<u64, ReceiveError>
where
    S: Stream<Item = Result<Bytes, E>> + Send,
    E: Into<Box<dyn StdError + Send + Sync>>,
{
    let mut body = std::pin::pin!(body);
    let mut buffer = BytesMut::with_capacity(BUFFER_SIZE);
    let mut size = 0u64;
    loop {
        let chunk = body
            .next()
            .await
            .transpose()
            .map_err(|e| ReceiveError::Body(e.into()))?;
        let done = chunk.is_none();
        if let Some(chunk) = chunk {
            size += chunk.len() as u64;
            if size > cap {
                return Err(ReceiveError::TooLarge { cap });
            }
            buffer.extend_from_slice(&chunk);
        }
        if buffer.len() >= BUFFER_SIZE || (done && !buffer.is_empty()) {
            let full = buffer.split().freeze();
            buffer.reserve(BUFFER_SIZE);
            let sent = write_tx.send(full.clone()).await.is_ok() && sha_tx.send(full).await.is_ok();
            if !sent {
                return Ok(size);
            }
        }
        if done {
            return Ok(size);
        }
    }
}

fn write_and_md5(
    mut rx: mpsc::Receiver<Bytes>,
    mut file: Option<std::fs::File>,
    path: Option<PathBuf>,
) -> Result<String, ReceiveError> {
    let write_error = |source| ReceiveError::Write {
        path: path.clone().unwrap_or_default(),
        source,
    };
    let mut md5 = Md5::new();
    while let Some(buffer) = rx.blocking_recv() {
        if let Some(file) = file.as_mut() {
            file.write_all(&buffer).map_err(write_error)?;
        }
        md5.update(&buffer);
    }
    if let Some(file) = file {
        file.sync_all().map_err(write_error)?;
    }
    Ok(hex::encode(md5.finalize()))
}

fn sha512_of(mut rx: mpsc::Receiver<Bytes>) -> String {
    let mut sha = Sha512::new();
    while let Some(buffer) = rx.blocking_recv() {
        sha.update(&buffer);
    }
    hex::encode(sha.finalize())
}

/// Checks received data before it becomes an image's data, returning the
/// virtual size when the inspector could tell it.
///
/// For `bare` containers the content must match `disk_format` and be safe,
/// as Glance requires. Other containers (`ovf`, `ova`, `docker`,
/// `compressed`) wrap the disk, so their content cannot match
/// `disk_format`. They are still rejected when the inspector finds content
/// that could make QEMU read host files.
pub fn inspect(
    path: &Path,
    disk_format: &str,
    container_format: &str,
) -> Result<Option<u64>, Rejection> {
    if container_format == "bare" {
        return format::verify(path, disk_format).map(|inspection| Some(inspection.virtual_size));
    }
    let inspection = format::inspect(path)?;
    inspection.safety.clone()?;
    let matches = format::check_declared(disk_format, &inspection).is_ok();
    Ok(matches.then_some(inspection.virtual_size))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream_of(parts: Vec<Vec<u8>>) -> impl Stream<Item = Result<Bytes, io::Error>> + Send {
        futures::stream::iter(parts.into_iter().map(|p| Ok(Bytes::from(p))))
    }

    #[tokio::test]
    async fn receive_hashes_and_writes_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        let parts = vec![b"abc".to_vec(), vec![7u8; 3 * BUFFER_SIZE + 5]];
        let expected: Vec<u8> = parts.concat();
        let received = receive(stream_of(parts), Some(&path), u64::MAX)
            .await
            .unwrap();
        assert_eq!(received.size, expected.len() as u64);
        assert_eq!(received.md5, hex::encode(Md5::digest(&expected)));
        assert_eq!(received.sha512, hex::encode(Sha512::digest(&expected)));
        assert_eq!(std::fs::read(&path).unwrap(), expected);
    }

    #[tokio::test]
    async fn empty_body_has_hashes_of_nothing() {
        let received = receive(stream_of(vec![]), None, 10).await.unwrap();
        assert_eq!(received.size, 0);
        assert_eq!(received.md5, "d41d8cd98f00b204e9800998ecf8427e");
    }

    #[tokio::test]
    async fn body_over_cap_is_rejected() {
        let parts = vec![vec![0u8; 600], vec![0u8; 600]];
        let error = receive(stream_of(parts), None, 1000).await.unwrap_err();
        assert!(
            matches!(error, ReceiveError::TooLarge { cap: 1000 }),
            "{error}"
        );
    }

    #[tokio::test]
    async fn body_error_is_reported() {
        let items: Vec<Result<Bytes, io::Error>> = vec![
            Ok(Bytes::from_static(b"abc")),
            Err(io::Error::other("connection reset")),
        ];
        let error = receive(futures::stream::iter(items), None, u64::MAX)
            .await
            .unwrap_err();
        assert!(matches!(error, ReceiveError::Body(_)), "{error}");
    }

    #[tokio::test]
    async fn unwritable_path_is_a_write_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-dir").join("data");
        let error = receive(stream_of(vec![b"x".to_vec()]), Some(&path), 10)
            .await
            .unwrap_err();
        assert!(matches!(error, ReceiveError::Write { .. }), "{error}");
    }
}
