//! The location of dnsmasq's per-network files.
//!
//! dnsmasq drops root to `nobody` before it reads its hosts file, and reads
//! it again as `nobody` on every SIGHUP. A data directory the operator keeps
//! private (mode 0700, or one under `/root`) would hide that file from it,
//! and every guest would wait for a DHCP offer that never comes. The files
//! therefore live under `/run/oxstack`, which `nobody` can traverse, in a
//! folder named after the data directory. `DATA_DIR/dhcp` links to it, so
//! an operator still finds them beside the rest of the cloud's state. `/run`
//! is emptied at boot together with the dnsmasq processes the files
//! describe, and the agent writes them again on its first pass.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use sha2::{Digest, Sha256};

const RUNTIME_ROOT: &str = "/run/oxstack";

/// Returns the folder dnsmasq's files of `data_dir` go into, creating it
/// (and the `DATA_DIR/dhcp` link to it) when missing.
pub fn prepare(data_dir: &Path) -> anyhow::Result<PathBuf> {
    prepare_under(Path::new(RUNTIME_ROOT), data_dir)
}

/// Returns the folder [`prepare`] uses for `data_dir`, without creating it.
pub fn locate(data_dir: &Path) -> anyhow::Result<PathBuf> {
    locate_under(Path::new(RUNTIME_ROOT), data_dir)
}

/// Removes the folder [`prepare`] made for `data_dir` and the link to it.
/// The dnsmasq processes it describes must be stopped first.
pub fn remove(data_dir: &Path) -> anyhow::Result<()> {
    remove_under(Path::new(RUNTIME_ROOT), data_dir)
}

fn remove_under(root: &Path, data_dir: &Path) -> anyhow::Result<()> {
    let dir = locate_under(root, data_dir)?;
    let Some(own) = dir
        .parent()
        .filter(|parent| parent.starts_with(root) && *parent != root)
    else {
        return Ok(());
    };
    match std::fs::remove_dir_all(own) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => {
            return Err(error).with_context(|| format!("cannot remove {}", own.display()))
        }
    }
    if std::fs::read_link(data_dir.join("dhcp")).is_ok() {
        std::fs::remove_file(data_dir.join("dhcp"))
            .with_context(|| format!("cannot remove the link {}/dhcp", data_dir.display()))?;
    }
    Ok(())
}

fn locate_under(root: &Path, data_dir: &Path) -> anyhow::Result<PathBuf> {
    if let Some(folder) = earlier_folder(data_dir) {
        return Ok(folder);
    }
    let canonical = data_dir
        .canonicalize()
        .with_context(|| format!("cannot resolve the data directory {}", data_dir.display()))?;
    let digest = Sha256::digest(canonical.as_os_str().as_encoded_bytes());
    let name = hex::encode(&digest[..8]);
    Ok(root.join(name).join("dhcp"))
}

/// A real `DATA_DIR/dhcp` folder, written by an earlier version, stays in
/// use: the dnsmasq processes its pid files name may still be running.
fn earlier_folder(data_dir: &Path) -> Option<PathBuf> {
    let folder = data_dir.join("dhcp");
    std::fs::symlink_metadata(&folder)
        .is_ok_and(|meta| meta.is_dir())
        .then_some(folder)
}

fn prepare_under(root: &Path, data_dir: &Path) -> anyhow::Result<PathBuf> {
    let dir = locate_under(root, data_dir)?;
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    if !dir.starts_with(root) {
        return Ok(dir);
    }
    // Each level must be traversable by `nobody` whatever the umask.
    let mut level = dir.as_path();
    while level.starts_with(root) {
        std::fs::set_permissions(level, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("cannot make {} readable by dnsmasq", level.display()))?;
        match level.parent() {
            Some(parent) => level = parent,
            None => break,
        }
    }
    link(&data_dir.join("dhcp"), &dir)?;
    Ok(dir)
}

/// Points `link` at `target`, replacing a link to elsewhere.
fn link(link: &Path, target: &Path) -> anyhow::Result<()> {
    if std::fs::read_link(link).is_ok_and(|current| current == target) {
        return Ok(());
    }
    match std::fs::remove_file(link) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => {
            return Err(error)
                .with_context(|| format!("cannot replace the link {}", link.display()));
        }
    }
    std::os::unix::fs::symlink(target, link)
        .with_context(|| format!("cannot link {} to {}", link.display(), target.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_data_dir_gets_traversable_dhcp_folder() {
        let temp = tempfile::tempdir().unwrap();
        let data_dir = temp.path().join("data");
        std::fs::create_dir(&data_dir).unwrap();
        std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let root = temp.path().join("run");

        let dir = prepare_under(&root, &data_dir).unwrap();

        assert!(dir.starts_with(&root), "{}", dir.display());
        assert!(dir.is_dir(), "{}", dir.display());
        let mut level = dir.as_path();
        while level.starts_with(&root) {
            let mode = std::fs::metadata(level).unwrap().permissions().mode();
            assert_eq!(mode & 0o005, 0o005, "{} is {mode:o}", level.display());
            level = level.parent().unwrap();
        }
        assert_eq!(std::fs::read_link(data_dir.join("dhcp")).unwrap(), dir);
        assert_eq!(
            prepare_under(&root, &data_dir).unwrap(),
            dir,
            "a second start reuses it"
        );

        remove_under(&root, &data_dir).unwrap();
        assert!(!dir.parent().unwrap().exists());
        assert!(std::fs::symlink_metadata(data_dir.join("dhcp")).is_err());
        assert!(root.is_dir(), "other clouds' folders share the root");
    }

    #[test]
    fn each_data_dir_gets_its_own_folder() {
        let temp = tempfile::tempdir().unwrap();
        let root = temp.path().join("run");
        let first = temp.path().join("a");
        let second = temp.path().join("b");
        std::fs::create_dir(&first).unwrap();
        std::fs::create_dir(&second).unwrap();
        assert_ne!(
            locate_under(&root, &first).unwrap(),
            locate_under(&root, &second).unwrap()
        );
        // The same folder reached through a relative path is the same cloud.
        let relative = temp.path().join("a/../a");
        assert_eq!(
            locate_under(&root, &relative).unwrap(),
            locate_under(&root, &first).unwrap()
        );
    }

    #[test]
    fn folder_from_an_earlier_version_is_kept() {
        let temp = tempfile::tempdir().unwrap();
        let data_dir = temp.path().join("data");
        std::fs::create_dir_all(data_dir.join("dhcp")).unwrap();
        let dir = prepare_under(&temp.path().join("run"), &data_dir).unwrap();
        assert_eq!(dir, data_dir.join("dhcp"));
        assert!(!std::fs::symlink_metadata(&dir)
            .unwrap()
            .file_type()
            .is_symlink());
    }
}
