//! The Fernet key repository: a directory of key files named by integers,
//! laid out and rotated as Keystone does (keystone/common/fernet_utils.py),
//! so that `keystone-manage fernet_rotate` and this code agree on it.
//!
//! - `0` is the staged key. It decrypts but never encrypts, so it can be
//!   copied to every node before any node starts issuing tokens with it.
//! - The highest number is the primary key, which encrypts new tokens.
//! - Every other number is a secondary key that still decrypts.
//!
//! Every key file is written under a temporary name, synced and renamed,
//! so a crash never leaves a partly written key. Files whose names are not
//! integers, such as those temporary files, are ignored when loading.
//!
//! NOTE: nothing locks the directory. Two processes rotating at once could
//! both promote the same staged key, so rotations must be serialized by the
//! caller, as with `keystone-manage`.

use std::collections::BTreeMap;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::key::{FernetKey, KeyError};

/// Keystone's default `[fernet_tokens] max_active_keys`.
pub const DEFAULT_MAX_ACTIVE_KEYS: usize = 3;

const STAGED_KEY: u64 = 0;

/// Failure to read or change a key repository.
#[derive(Debug, thiserror::Error)]
pub enum KeyRepositoryError {
    #[error("failed to {action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("Fernet key repository {dir} contains no keys; create it first")]
    NoKeys { dir: PathBuf },
    #[error("Fernet key repository {dir} has no staged key 0; create it first")]
    MissingStagedKey { dir: PathBuf },
    #[error("Fernet key file {path} does not contain a valid key")]
    InvalidKey {
        path: PathBuf,
        #[source]
        source: KeyError,
    },
    #[error(
        "max_active_keys is {0} but must be at least 2, for the staged key and the primary key"
    )]
    MaxActiveKeysTooSmall(usize),
}

/// A key together with the number it is stored under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberedKey {
    pub number: u64,
    pub key: FernetKey,
}

/// Result of a rotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotateReport {
    /// Number of the new primary key, formerly the staged key.
    pub new_primary: u64,
    /// Numbers of the keys deleted because they exceeded `max_active_keys`.
    pub purged: Vec<u64>,
}

/// A key repository directory. Opening it touches nothing on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRepository {
    dir: PathBuf,
}

impl KeyRepository {
    pub fn open(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Creates the directory (mode 0700) and keys 1 (primary) and 0
    /// (staged), unless a staged key exists already. Returns whether
    /// anything was written.
    ///
    /// When numbered keys exist but key 0 does not, only a new key 0 is
    /// written. That state is left by a crash in the middle of a rotation,
    /// after the staged key was promoted and before its successor was
    /// renamed into place.
    pub fn create_if_missing(&self) -> Result<bool, KeyRepositoryError> {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|source| io_error("create directory", &self.dir, source))?;

        let numbers = self.key_files()?;
        if numbers.contains_key(&STAGED_KEY) {
            return Ok(false);
        }
        // The primary key goes first so that a crash between the two writes
        // leaves a usable repository that the next call completes.
        if numbers.is_empty() {
            self.write_key(1, &FernetKey::generate())?;
        }
        self.write_key(STAGED_KEY, &FernetKey::generate())?;
        tracing::info!(dir = %self.dir.display(), "created Fernet key repository");
        Ok(true)
    }

    /// Promotes the staged key to primary under the next free number,
    /// stages a new key 0, and deletes the oldest secondary keys so that
    /// `max_active_keys` keys remain, the staged key included.
    pub fn rotate(&self, max_active_keys: usize) -> Result<RotateReport, KeyRepositoryError> {
        if max_active_keys < 2 {
            return Err(KeyRepositoryError::MaxActiveKeysTooSmall(max_active_keys));
        }
        let mut numbers: Vec<u64> = self.key_files()?.into_keys().collect();
        if !numbers.contains(&STAGED_KEY) {
            return Err(KeyRepositoryError::MissingStagedKey {
                dir: self.dir.clone(),
            });
        }
        let current_primary = numbers.iter().copied().max().unwrap_or(STAGED_KEY);
        let new_primary = current_primary + 1;

        // Writing the successor before renaming anything means a crash here
        // leaves the repository as it was, plus an ignored temporary file.
        let next_staged = self.write_temporary(STAGED_KEY, &FernetKey::generate())?;
        self.rename(&self.key_path(STAGED_KEY), &self.key_path(new_primary))?;
        self.rename(&next_staged, &self.key_path(STAGED_KEY))?;

        numbers.retain(|number| *number != STAGED_KEY);
        numbers.push(new_primary);
        numbers.sort_unstable_by(|a, b| b.cmp(a));
        let purged = numbers.split_off((max_active_keys - 1).min(numbers.len()));
        for number in &purged {
            let path = self.key_path(*number);
            fs::remove_file(&path).map_err(|source| io_error("delete", &path, source))?;
        }
        self.sync_dir()?;

        tracing::info!(
            dir = %self.dir.display(),
            new_primary,
            purged = ?purged,
            "rotated Fernet keys"
        );
        Ok(RotateReport {
            new_primary,
            purged,
        })
    }

    /// Loads every key, primary (highest number) first and staged key 0 last.
    /// Empty key files are skipped with a warning, as Keystone does.
    pub fn keys(&self) -> Result<Vec<NumberedKey>, KeyRepositoryError> {
        self.warn_if_world_accessible();
        let mut keys = Vec::new();
        for (number, path) in self.key_files()?.into_iter().rev() {
            let text = Zeroizing::new(
                fs::read_to_string(&path).map_err(|source| io_error("read", &path, source))?,
            );
            let key =
                FernetKey::from_base64(&text).map_err(|source| KeyRepositoryError::InvalidKey {
                    path: path.clone(),
                    source,
                })?;
            keys.push(NumberedKey { number, key });
        }
        if keys.is_empty() {
            return Err(KeyRepositoryError::NoKeys {
                dir: self.dir.clone(),
            });
        }
        Ok(keys)
    }

    /// Lists the non-empty regular files named by a canonical decimal number.
    fn key_files(&self) -> Result<BTreeMap<u64, PathBuf>, KeyRepositoryError> {
        let entries =
            fs::read_dir(&self.dir).map_err(|source| io_error("list", &self.dir, source))?;
        let mut files = BTreeMap::new();
        for entry in entries {
            let entry = entry.map_err(|source| io_error("list", &self.dir, source))?;
            let Some(number) = key_number(&entry.file_name().to_string_lossy()) else {
                continue;
            };
            let path = entry.path();
            // fs::metadata follows symlinks, as Python's os.path.isfile does.
            let metadata =
                fs::metadata(&path).map_err(|source| io_error("inspect", &path, source))?;
            if !metadata.is_file() {
                continue;
            }
            if metadata.len() == 0 {
                tracing::warn!(path = %path.display(), "ignoring empty Fernet key file");
                continue;
            }
            files.insert(number, path);
        }
        Ok(files)
    }

    /// Writes `key` as key `number`, atomically.
    fn write_key(&self, number: u64, key: &FernetKey) -> Result<(), KeyRepositoryError> {
        let temporary = self.write_temporary(number, key)?;
        self.rename(&temporary, &self.key_path(number))?;
        self.sync_dir()
    }

    /// Writes `key` to `<number>.tmp` with mode 0600 and syncs it to disk.
    fn write_temporary(&self, number: u64, key: &FernetKey) -> Result<PathBuf, KeyRepositoryError> {
        let path = self.dir.join(format!("{number}.tmp"));
        // A leftover from a crash may have another owner or mode. Deleting it
        // lets create_new below guarantee a fresh file with mode 0600.
        match fs::remove_file(&path) {
            Err(source) if source.kind() != io::ErrorKind::NotFound => {
                return Err(io_error("delete", &path, source));
            }
            _ => {}
        }
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|source| io_error("create", &path, source))?;
        file.write_all(key.to_base64().as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|source| io_error("write", &path, source))?;
        Ok(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<(), KeyRepositoryError> {
        fs::rename(from, to).map_err(|source| io_error("rename", from, source))
    }

    /// Makes renames and deletions durable.
    fn sync_dir(&self) -> Result<(), KeyRepositoryError> {
        File::open(&self.dir)
            .and_then(|dir| dir.sync_all())
            .map_err(|source| io_error("sync", &self.dir, source))
    }

    fn key_path(&self, number: u64) -> PathBuf {
        self.dir.join(number.to_string())
    }

    fn warn_if_world_accessible(&self) {
        if let Ok(metadata) = fs::metadata(&self.dir) {
            if metadata.permissions().mode() & 0o005 != 0 {
                tracing::warn!(
                    dir = %self.dir.display(),
                    "Fernet key repository is readable by other users; set its mode to 0700"
                );
            }
        }
    }
}

fn io_error(action: &'static str, path: &Path, source: io::Error) -> KeyRepositoryError {
    KeyRepositoryError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Parses a key file name. Only canonical numbers count, so that `01` and
/// `1` cannot both claim to be key 1.
fn key_number(name: &str) -> Option<u64> {
    let number: u64 = name.parse().ok()?;
    (number.to_string() == name).then_some(number)
}

#[cfg(test)]
#[path = "repository_tests.rs"]
mod tests;
