//! The config drive: an ISO 9660 image labelled `config-2` containing the
//! files the compute service passes (`openstack/latest/meta_data.json`,
//! `user_data`, …), built with genisoimage as Nova builds it.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use crate::DriverError;

/// The volume label cloud-init and other guests look for.
pub const VOLUME_LABEL: &str = "config-2";

/// Writes `files` into an ISO 9660 image at `output`, replacing it when it
/// exists. The image is built beside `output` and renamed into place, so
/// a failure leaves no partial image.
pub async fn write_config_drive(
    genisoimage: &Path,
    files: &BTreeMap<String, Vec<u8>>,
    output: &Path,
) -> Result<(), DriverError> {
    let tree = with_suffix(output, ".tree");
    let temporary = with_suffix(output, ".part");
    let result = build(genisoimage, files, &tree, &temporary, output).await;
    let _ = tokio::fs::remove_dir_all(&tree).await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&temporary).await;
    }
    result
}

async fn build(
    genisoimage: &Path,
    files: &BTreeMap<String, Vec<u8>>,
    tree: &Path,
    temporary: &Path,
    output: &Path,
) -> Result<(), DriverError> {
    let _ = tokio::fs::remove_dir_all(tree).await;
    for (name, contents) in files {
        let relative = checked_relative_path(name)?;
        let path = tree.join(relative);
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|error| write_failed(parent, error))?;
        }
        tokio::fs::write(&path, contents)
            .await
            .map_err(|error| write_failed(&path, error))?;
    }
    // An empty drive still needs its root directory.
    tokio::fs::create_dir_all(tree)
        .await
        .map_err(|error| write_failed(tree, error))?;

    let output_arg = temporary.to_string_lossy();
    let tree_arg = tree.to_string_lossy();
    let result = tokio::process::Command::new(genisoimage)
        .args([
            "-quiet",
            "-R",
            "-J",
            "-l",
            "-V",
            VOLUME_LABEL,
            "-input-charset",
            "utf-8",
            "-o",
            &output_arg,
            &tree_arg,
        ])
        .output()
        .await
        .map_err(|error| {
            if error.kind() == std::io::ErrorKind::NotFound {
                DriverError::Failed(format!(
                    "{} not found; install genisoimage to build config drives",
                    genisoimage.display()
                ))
            } else {
                DriverError::Failed(format!("running {} failed: {error}", genisoimage.display()))
            }
        })?;
    if !result.status.success() {
        return Err(DriverError::Failed(format!(
            "genisoimage failed to build the config drive ({}): {}",
            result.status,
            String::from_utf8_lossy(&result.stderr).trim()
        )));
    }
    tokio::fs::rename(temporary, output)
        .await
        .map_err(|error| write_failed(output, error))
}

/// Returns `path` with `suffix` appended to its file name.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn write_failed(path: &Path, error: std::io::Error) -> DriverError {
    DriverError::Failed(format!(
        "writing the config drive at {} failed: {error}",
        path.display()
    ))
}

/// Accepts only relative paths made of normal components, so no file of
/// the drive lands outside its tree.
fn checked_relative_path(name: &str) -> Result<&Path, DriverError> {
    let path = Path::new(name);
    let normal = !name.is_empty()
        && path
            .components()
            .all(|component| matches!(component, Component::Normal(_)));
    if normal {
        Ok(path)
    } else {
        Err(DriverError::Failed(format!(
            "config drive file name {name:?} is invalid; it must be a relative path without '.' or '..' components"
        )))
    }
}

/// Reads the volume label from an ISO 9660 image's primary volume
/// descriptor (sector 16, where the identifier is 32 bytes at offset 40).
pub fn read_volume_label(iso: &[u8]) -> Option<String> {
    const DESCRIPTOR: usize = 16 * 2048;
    let descriptor = iso.get(DESCRIPTOR..DESCRIPTOR + 2048)?;
    if descriptor[0] != 1 || &descriptor[1..6] != b"CD001" {
        return None;
    }
    let label = std::str::from_utf8(&descriptor[40..72]).ok()?;
    Some(label.trim_end().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_are_accepted() {
        assert!(checked_relative_path("openstack/latest/meta_data.json").is_ok());
        assert!(checked_relative_path("ec2/2009-04-04/user-data").is_ok());
    }

    #[test]
    fn escaping_paths_are_rejected() {
        for bad in ["", "/etc/passwd", "../x", "openstack/../../x", "./x"] {
            assert!(
                checked_relative_path(bad).is_err(),
                "{bad:?} must be rejected"
            );
        }
    }

    #[test]
    fn volume_label_needs_a_descriptor() {
        assert_eq!(read_volume_label(&[0u8; 100]), None);
        assert_eq!(read_volume_label(&vec![0u8; 40_000]), None);
    }

    fn have_genisoimage() -> bool {
        std::process::Command::new("genisoimage")
            .arg("--version")
            .output()
            .is_ok()
    }

    #[tokio::test]
    async fn config_drive_has_label_and_files() {
        if !have_genisoimage() {
            eprintln!("skipped: genisoimage is not installed");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let output = dir.path().join("disk.config");
        let mut files = BTreeMap::new();
        files.insert(
            "openstack/latest/meta_data.json".to_owned(),
            br#"{"uuid": "u-1"}"#.to_vec(),
        );
        files.insert(
            "openstack/latest/user_data".to_owned(),
            b"#!/bin/sh\necho hi\n".to_vec(),
        );

        write_config_drive(Path::new("genisoimage"), &files, &output)
            .await
            .unwrap();

        let iso = std::fs::read(&output).unwrap();
        assert_eq!(read_volume_label(&iso).as_deref(), Some("config-2"));
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from("disk.config")]);

        // isoinfo (from genisoimage's package) lists Rock Ridge names.
        let Ok(listing) = std::process::Command::new("isoinfo")
            .args(["-R", "-f", "-i"])
            .arg(&output)
            .output()
        else {
            eprintln!("isoinfo is not installed; file names not checked");
            return;
        };
        let listing = String::from_utf8_lossy(&listing.stdout);
        assert!(
            listing.contains("/openstack/latest/meta_data.json"),
            "{listing}"
        );
        assert!(listing.contains("/openstack/latest/user_data"), "{listing}");

        let extracted = std::process::Command::new("isoinfo")
            .args(["-R", "-x", "/openstack/latest/meta_data.json", "-i"])
            .arg(&output)
            .output()
            .unwrap();
        assert_eq!(extracted.stdout, br#"{"uuid": "u-1"}"#);
    }

    #[tokio::test]
    async fn bad_config_drive_name_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let output = dir.path().join("disk.config");
        let mut files = BTreeMap::new();
        files.insert("../escape".to_owned(), b"x".to_vec());

        let error = write_config_drive(Path::new("genisoimage"), &files, &output)
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("\"../escape\""), "{error}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        assert!(!dir.path().parent().unwrap().join("escape").exists());
    }
}
