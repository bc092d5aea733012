//! The image cache (`instances_dir/_base/<image id>`, one copy per image)
//! and the qcow2 overlays that instances write to.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::{DriverError, ImageSource};

/// A cached image and the format QEMU must open it with.
#[derive(Debug, Clone)]
pub struct CachedImage {
    pub path: PathBuf,
    /// `qcow2` or `raw`.
    pub format: &'static str,
}

/// The per-host image cache. Each image is fetched once, and concurrent
/// spawns of one image wait for the first fetch instead of copying twice.
pub struct ImageCache {
    base_dir: PathBuf,
    qemu_img: PathBuf,
    fetch_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl ImageCache {
    pub fn new(base_dir: PathBuf, qemu_img: PathBuf) -> Self {
        ImageCache {
            base_dir,
            qemu_img,
            fetch_locks: Mutex::new(HashMap::new()),
        }
    }

    pub fn qemu_img(&self) -> &Path {
        &self.qemu_img
    }

    /// Returns the cached copy of `image`, copying it into the cache first
    /// when it is not there. A qcow2 image must not name a backing or data
    /// file, because QEMU would open that host file for the guest.
    // TODO: cached images are never removed. Nova's image cache manager
    // removes the ones no instance has used for a day.
    pub async fn fetch(&self, image: &ImageSource) -> Result<CachedImage, DriverError> {
        validate_image_id(&image.id)?;
        let format = match image.disk_format.as_str() {
            "qcow2" => "qcow2",
            "raw" => "raw",
            other => {
                return Err(DriverError::Failed(format!(
                    "image {} has disk_format {other:?}, which the QEMU driver does not boot; convert it to qcow2 or raw",
                    image.id
                )))
            }
        };
        let cached = CachedImage {
            path: self.base_dir.join(&image.id),
            format,
        };

        let lock = {
            let mut locks = self.fetch_locks.lock().expect("image cache lock map");
            locks.entry(image.id.clone()).or_default().clone()
        };
        let _guard = lock.lock().await;
        if tokio::fs::try_exists(&cached.path).await.unwrap_or(false) {
            return Ok(cached);
        }

        // A unique temporary name, renamed into place only when complete,
        // so a crash or a second agent never finds a half-copied image.
        let temporary = self.base_dir.join(format!(
            ".{}.{}.part",
            image.id,
            uuid::Uuid::new_v4().simple()
        ));
        let result = self.copy_and_check(image, &cached, &temporary).await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&temporary).await;
        }
        result?;
        tracing::info!(image_id = %image.id, path = %cached.path.display(), "image cached");
        Ok(cached)
    }

    async fn copy_and_check(
        &self,
        image: &ImageSource,
        cached: &CachedImage,
        temporary: &Path,
    ) -> Result<(), DriverError> {
        tokio::fs::copy(&image.path, temporary)
            .await
            .map_err(|error| {
                DriverError::Failed(format!(
                    "copying image {} from {} into the image cache failed: {error}",
                    image.id,
                    image.path.display()
                ))
            })?;
        if cached.format == "qcow2" {
            let info = image_info(&self.qemu_img, temporary, "qcow2")
                .await
                .map_err(|error| {
                    DriverError::Failed(format!(
                        "image {} is not a valid qcow2 image: {error}",
                        image.id
                    ))
                })?;
            if info.get("backing-filename").is_some() {
                return Err(DriverError::Failed(format!(
                    "image {} is a qcow2 image with a backing file, which is not allowed; upload a standalone image (qemu-img convert -O qcow2)",
                    image.id
                )));
            }
            if info.pointer("/format-specific/data/data-file").is_some() {
                return Err(DriverError::Failed(format!(
                    "image {} is a qcow2 image with an external data file, which is not allowed; upload a standalone image",
                    image.id
                )));
            }
        }
        tokio::fs::rename(temporary, &cached.path)
            .await
            .map_err(|error| {
                DriverError::Failed(format!("renaming {} failed: {error}", temporary.display()))
            })
    }
}

/// Image ids name files in the cache, so they must be single path
/// components.
fn validate_image_id(id: &str) -> Result<(), DriverError> {
    let valid = !id.is_empty()
        && id.len() <= 255
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(())
    } else {
        Err(DriverError::Failed(format!(
            "image id {id:?} cannot name a cache file; it may contain only letters, digits, '-', '_' and '.', and must not start with '.'"
        )))
    }
}

/// Runs `qemu-img info` with the format forced, so a raw image is never
/// probed as something else.
async fn image_info(qemu_img: &Path, path: &Path, format: &str) -> Result<Value, DriverError> {
    // -U: the image may be open in a running QEMU, which holds a lock on it.
    let output = run_qemu_img(
        qemu_img,
        &[
            "info",
            "-U",
            "--output=json",
            "-f",
            format,
            &path.to_string_lossy(),
        ],
    )
    .await?;
    serde_json::from_slice(&output).map_err(|error| {
        DriverError::Failed(format!("qemu-img info returned invalid JSON: {error}"))
    })
}

/// Creates the instance's root disk, a qcow2 overlay on `base`, unless it
/// exists already (a retried spawn keeps what the guest wrote). The disk
/// grows to `root_gb` when that is larger than the image.
pub async fn create_overlay(
    qemu_img: &Path,
    base: &CachedImage,
    disk: &Path,
    root_gb: u64,
) -> Result<(), DriverError> {
    if tokio::fs::try_exists(disk).await.unwrap_or(false) {
        return Ok(());
    }
    let info = image_info(qemu_img, &base.path, base.format).await?;
    let virtual_size = info
        .get("virtual-size")
        .and_then(Value::as_u64)
        .ok_or_else(|| {
            DriverError::Failed(format!(
                "qemu-img info of {} returned no virtual-size",
                base.path.display()
            ))
        })?;
    let size = overlay_size(virtual_size, root_gb)?;

    let temporary = disk.with_extension("part");
    let base_path = base.path.to_string_lossy();
    let temporary_path = temporary.to_string_lossy();
    let mut args = vec![
        "create",
        "-q",
        "-f",
        "qcow2",
        "-b",
        &base_path,
        "-F",
        base.format,
        &temporary_path,
    ];
    let size_arg = size.map(|bytes| bytes.to_string());
    if let Some(size_arg) = &size_arg {
        args.push(size_arg);
    }
    run_qemu_img(qemu_img, &args).await?;
    tokio::fs::rename(&temporary, disk).await.map_err(|error| {
        DriverError::Failed(format!("renaming {} failed: {error}", temporary.display()))
    })
}

/// Returns the size to give the overlay. `None` keeps the image's size.
fn overlay_size(virtual_size: u64, root_gb: u64) -> Result<Option<u64>, DriverError> {
    if root_gb == 0 {
        return Ok(None);
    }
    let wanted = root_gb << 30;
    if wanted < virtual_size {
        return Err(DriverError::Failed(format!(
            "the flavor's root disk of {root_gb} GB is smaller than the image's virtual size of {virtual_size} bytes; choose a flavor with a larger disk"
        )));
    }
    Ok((wanted > virtual_size).then_some(wanted))
}

async fn run_qemu_img(qemu_img: &Path, args: &[&str]) -> Result<Vec<u8>, DriverError> {
    let output = tokio::process::Command::new(qemu_img)
        .args(args)
        .output()
        .await
        .map_err(|error| {
            if error.kind() == std::io::ErrorKind::NotFound {
                DriverError::Failed(format!(
                    "{} not found; install qemu-utils",
                    qemu_img.display()
                ))
            } else {
                DriverError::Failed(format!("running {} failed: {error}", qemu_img.display()))
            }
        })?;
    if !output.status.success() {
        return Err(DriverError::Failed(format!(
            "qemu-img {} failed ({}): {}",
            args.first().copied().unwrap_or_default(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(output.stdout)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn overlay_keeps_size_without_root_gb() {
        assert_eq!(overlay_size(22 << 20, 0).unwrap(), None);
    }

    #[test]
    fn overlay_grows_to_root_gb() {
        assert_eq!(overlay_size(22 << 20, 1).unwrap(), Some(1 << 30));
        assert_eq!(overlay_size(1 << 30, 1).unwrap(), None);
    }

    #[test]
    fn overlay_smaller_than_image_is_rejected() {
        let error = overlay_size(3 << 30, 2).unwrap_err().to_string();
        assert!(error.contains("larger disk"), "{error}");
    }

    #[test]
    fn image_id_is_one_path_component() {
        assert!(validate_image_id("0b3a6e52-8d0c-4f43-9b7e-2f4b0c6f0001").is_ok());
        for bad in ["", "../etc/passwd", "a/b", ".hidden", "a b"] {
            assert!(validate_image_id(bad).is_err(), "{bad:?} must be rejected");
        }
    }

    fn image(path: PathBuf, disk_format: &str) -> ImageSource {
        ImageSource {
            id: "image-1".to_owned(),
            path,
            disk_format: disk_format.to_owned(),
            properties: BTreeMap::new(),
        }
    }

    #[tokio::test]
    async fn unsupported_disk_format_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ImageCache::new(dir.path().to_owned(), PathBuf::from("qemu-img"));
        let error = cache
            .fetch(&image(dir.path().join("x"), "vmdk"))
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("\"vmdk\""), "{error}");
        assert!(error.contains("convert it to qcow2 or raw"), "{error}");
    }

    #[tokio::test]
    async fn raw_image_is_cached_once() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("source.raw");
        std::fs::write(&source, vec![0u8; 4096]).unwrap();
        let base_dir = dir.path().join("_base");
        std::fs::create_dir(&base_dir).unwrap();
        let cache = Arc::new(ImageCache::new(base_dir.clone(), PathBuf::from("qemu-img")));

        let fetches: Vec<_> = (0..4)
            .map(|_| {
                let cache = cache.clone();
                let image = image(source.clone(), "raw");
                tokio::spawn(async move { cache.fetch(&image).await })
            })
            .collect();
        for fetch in fetches {
            let cached = fetch.await.unwrap().unwrap();
            assert_eq!(cached.path, base_dir.join("image-1"));
            assert_eq!(cached.format, "raw");
        }
        let names: Vec<_> = std::fs::read_dir(&base_dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            vec![std::ffi::OsString::from("image-1")],
            "no temporary file may remain"
        );
    }

    fn have_qemu_img() -> bool {
        std::process::Command::new("qemu-img")
            .arg("--version")
            .output()
            .is_ok()
    }

    fn qemu_img(args: &[&str]) {
        let status = std::process::Command::new("qemu-img")
            .args(args)
            .status()
            .unwrap();
        assert!(status.success(), "qemu-img {args:?} failed");
    }

    #[tokio::test]
    async fn qcow2_with_backing_file_is_rejected() {
        if !have_qemu_img() {
            eprintln!("skipped: qemu-img is not installed");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let host_file = dir.path().join("host-secret.raw");
        let image_path = dir.path().join("image.qcow2");
        qemu_img(&[
            "create",
            "-q",
            "-f",
            "raw",
            &host_file.to_string_lossy(),
            "1M",
        ]);
        qemu_img(&[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-b",
            &host_file.to_string_lossy(),
            "-F",
            "raw",
            &image_path.to_string_lossy(),
        ]);
        let base_dir = dir.path().join("_base");
        std::fs::create_dir(&base_dir).unwrap();
        let cache = ImageCache::new(base_dir.clone(), PathBuf::from("qemu-img"));

        let error = cache
            .fetch(&image(image_path, "qcow2"))
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("backing file"), "{error}");
        assert_eq!(
            std::fs::read_dir(&base_dir).unwrap().count(),
            0,
            "the rejected copy must be removed"
        );
    }

    #[tokio::test]
    async fn overlay_is_backed_by_cached_image() {
        if !have_qemu_img() {
            eprintln!("skipped: qemu-img is not installed");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let image_path = dir.path().join("image.qcow2");
        qemu_img(&[
            "create",
            "-q",
            "-f",
            "qcow2",
            &image_path.to_string_lossy(),
            "16M",
        ]);
        let base_dir = dir.path().join("_base");
        std::fs::create_dir(&base_dir).unwrap();
        let cache = ImageCache::new(base_dir.clone(), PathBuf::from("qemu-img"));
        let cached = cache.fetch(&image(image_path, "qcow2")).await.unwrap();
        let disk = dir.path().join("disk");

        create_overlay(Path::new("qemu-img"), &cached, &disk, 1)
            .await
            .unwrap();

        let info = image_info(Path::new("qemu-img"), &disk, "qcow2")
            .await
            .unwrap();
        assert_eq!(info["virtual-size"], 1u64 << 30);
        assert_eq!(
            info["backing-filename"],
            cached.path.to_string_lossy().as_ref()
        );
        assert_eq!(info["backing-filename-format"], "qcow2");
        assert!(!dir.path().join("disk.part").exists());
    }

    #[tokio::test]
    async fn missing_image_fails_without_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ImageCache::new(dir.path().to_owned(), PathBuf::from("qemu-img"));
        let error = cache
            .fetch(&image(dir.path().join("absent"), "raw"))
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("into the image cache failed"), "{error}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
