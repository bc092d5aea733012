//! Tests of the key repository on real directories under the system
//! temporary directory, each removed when its test ends.

use std::sync::atomic::{AtomicU32, Ordering};

use chrono::{Duration, SubsecRound, Utc};

use super::*;
use crate::fernet::{new_audit_id, TokenCodec, TokenError, TokenPayload, TokenScope};

/// A fresh directory removed on drop, even when the test fails.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "oxstack-fernet-test-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(name);
        fs::create_dir(&path).unwrap();
        Self(path)
    }

    /// Returns a repository in a subdirectory that does not exist yet.
    fn repository(&self) -> KeyRepository {
        KeyRepository::open(self.0.join("fernet-keys"))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn file_names(repository: &KeyRepository) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(repository.dir())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn sample_payload() -> TokenPayload {
    TokenPayload {
        user_id: "0f1e2d3c4b5a69788796a5b4c3d2e1f0".to_owned(),
        methods: vec!["password".to_owned()],
        scope: TokenScope::Project("a1b2c3d4e5f60718293a4b5c6d7e8f90".to_owned()),
        // Tokens store microseconds, so nanoseconds would not round-trip.
        expires_at: (Utc::now() + Duration::hours(1)).trunc_subsecs(6),
        audit_ids: vec![new_audit_id()],
        application_credential_id: None,
    }
}

#[test]
fn create_writes_keys_0_and_1_privately() {
    let temp = TempDir::new();
    let repository = temp.repository();
    assert!(repository.create_if_missing().unwrap());

    assert_eq!(file_names(&repository), ["0", "1"]);
    assert_eq!(mode(repository.dir()), 0o700);
    assert_eq!(mode(&repository.dir().join("0")), 0o600);
    assert_eq!(mode(&repository.dir().join("1")), 0o600);
    let text = fs::read_to_string(repository.dir().join("1")).unwrap();
    assert_eq!(text.len(), 44, "key files hold padded base64 of 32 bytes");
}

#[test]
fn create_leaves_existing_repository_alone() {
    let temp = TempDir::new();
    let repository = temp.repository();
    repository.create_if_missing().unwrap();
    let before = fs::read_to_string(repository.dir().join("1")).unwrap();

    assert!(!repository.create_if_missing().unwrap());
    assert_eq!(file_names(&repository), ["0", "1"]);
    assert_eq!(
        fs::read_to_string(repository.dir().join("1")).unwrap(),
        before
    );
}

#[test]
fn create_restores_missing_staged_key() {
    let temp = TempDir::new();
    let repository = temp.repository();
    repository.create_if_missing().unwrap();
    repository.rotate(DEFAULT_MAX_ACTIVE_KEYS).unwrap();
    // The state a crash between the two renames of a rotation leaves.
    fs::rename(repository.dir().join("0"), repository.dir().join("0.tmp")).unwrap();

    assert!(repository.create_if_missing().unwrap());
    assert_eq!(file_names(&repository), ["0", "1", "2"]);
}

#[test]
fn keys_are_ordered_primary_first() {
    let temp = TempDir::new();
    let repository = temp.repository();
    repository.create_if_missing().unwrap();
    repository.rotate(DEFAULT_MAX_ACTIVE_KEYS).unwrap();

    let numbers: Vec<u64> = repository
        .keys()
        .unwrap()
        .iter()
        .map(|key| key.number)
        .collect();
    assert_eq!(numbers, [2, 1, 0]);
}

#[test]
fn rotate_four_times_keeps_three_newest() {
    let temp = TempDir::new();
    let repository = temp.repository();
    repository.create_if_missing().unwrap();
    let staged = repository.keys().unwrap().pop().unwrap();
    assert_eq!(staged.number, 0);

    let expected = [
        (2, vec![], ["0", "1", "2"]),
        (3, vec![1], ["0", "2", "3"]),
        (4, vec![2], ["0", "3", "4"]),
        (5, vec![3], ["0", "4", "5"]),
    ];
    for (new_primary, purged, files) in expected {
        let report = repository.rotate(3).unwrap();
        assert_eq!(
            report,
            RotateReport {
                new_primary,
                purged
            }
        );
        assert_eq!(file_names(&repository), files);
    }

    // The key staged at creation is the one the first rotation promoted,
    // and it was purged by the third.
    let remaining = repository.keys().unwrap();
    assert!(remaining.iter().all(|entry| entry.key != staged.key));
}

#[test]
fn rotate_promotes_the_staged_key() {
    let temp = TempDir::new();
    let repository = temp.repository();
    repository.create_if_missing().unwrap();
    let staged = fs::read_to_string(repository.dir().join("0")).unwrap();

    repository.rotate(DEFAULT_MAX_ACTIVE_KEYS).unwrap();
    assert_eq!(
        fs::read_to_string(repository.dir().join("2")).unwrap(),
        staged
    );
    assert_ne!(
        fs::read_to_string(repository.dir().join("0")).unwrap(),
        staged
    );
    assert_eq!(mode(&repository.dir().join("0")), 0o600);
}

#[test]
fn token_survives_one_rotation_not_pruning() {
    let temp = TempDir::new();
    let repository = temp.repository();
    repository.create_if_missing().unwrap();
    let payload = sample_payload();
    let token = TokenCodec::from_repository(&repository)
        .unwrap()
        .encode(&payload)
        .unwrap();
    let now = Utc::now();

    // The token is encrypted with key 1, which one rotation makes a secondary key.
    repository.rotate(3).unwrap();
    let codec = TokenCodec::from_repository(&repository).unwrap();
    assert_eq!(codec.decode(&token, now).unwrap().0, payload);

    // The second rotation purges key 1.
    repository.rotate(3).unwrap();
    let codec = TokenCodec::from_repository(&repository).unwrap();
    assert!(matches!(
        codec.decode(&token, now),
        Err(TokenError::Invalid(_))
    ));
}

#[test]
fn token_from_staged_key_decodes_everywhere() {
    // A node that has synced the staged key but not yet rotated must accept
    // tokens from a node that already promoted it.
    let temp = TempDir::new();
    let repository = temp.repository();
    repository.create_if_missing().unwrap();
    let before_rotation = TokenCodec::from_repository(&repository).unwrap();

    repository.rotate(3).unwrap();
    let after_rotation = TokenCodec::from_repository(&repository).unwrap();
    let token = after_rotation.encode(&sample_payload()).unwrap();
    assert!(before_rotation.decode(&token, Utc::now()).is_ok());
}

#[test]
fn rotate_rejects_too_small_max_active_keys() {
    let temp = TempDir::new();
    let repository = temp.repository();
    repository.create_if_missing().unwrap();
    assert!(matches!(
        repository.rotate(1),
        Err(KeyRepositoryError::MaxActiveKeysTooSmall(1))
    ));
    assert!(matches!(
        repository.rotate(0),
        Err(KeyRepositoryError::MaxActiveKeysTooSmall(0))
    ));
    assert_eq!(file_names(&repository), ["0", "1"]);
}

#[test]
fn rotate_needs_staged_key() {
    let temp = TempDir::new();
    let repository = temp.repository();
    fs::create_dir(repository.dir()).unwrap();
    let result = repository.rotate(3);
    assert!(matches!(
        result,
        Err(KeyRepositoryError::MissingStagedKey { .. })
    ));
}

#[test]
fn keys_of_missing_or_empty_repository_fail() {
    let temp = TempDir::new();
    let repository = temp.repository();
    assert!(matches!(
        repository.keys(),
        Err(KeyRepositoryError::Io { action: "list", .. })
    ));
    fs::create_dir(repository.dir()).unwrap();
    assert!(matches!(
        repository.keys(),
        Err(KeyRepositoryError::NoKeys { .. })
    ));
}

#[test]
fn keys_skip_other_and_empty_files() {
    let temp = TempDir::new();
    let repository = temp.repository();
    repository.create_if_missing().unwrap();
    let dir = repository.dir();
    fs::write(dir.join("0.tmp"), "left over").unwrap();
    fs::write(dir.join("README"), "not a key").unwrap();
    fs::write(dir.join("01"), "not canonical").unwrap();
    fs::write(dir.join("7"), "").unwrap();
    fs::create_dir(dir.join("9")).unwrap();

    let numbers: Vec<u64> = repository
        .keys()
        .unwrap()
        .iter()
        .map(|key| key.number)
        .collect();
    assert_eq!(numbers, [1, 0]);
}

#[test]
fn invalid_key_file_error_hides_content() {
    let temp = TempDir::new();
    let repository = temp.repository();
    repository.create_if_missing().unwrap();
    let secret_looking = "c2VjcmV0LWtleS1tYXRlcmlhbC10aGF0LWlzLXRvby1sb25nLXRvLWJlLWEta2V5";
    fs::write(repository.dir().join("5"), secret_looking).unwrap();

    let error = repository.keys().unwrap_err();
    assert!(matches!(error, KeyRepositoryError::InvalidKey { .. }));
    let chain = format!("{error} {:?}", std::error::Error::source(&error));
    assert!(chain.contains("5"), "the error names the file: {chain}");
    assert!(
        !chain.contains(secret_looking),
        "the error leaks the key text: {chain}"
    );
}

#[test]
fn key_number_accepts_only_canonical_names() {
    assert_eq!(key_number("0"), Some(0));
    assert_eq!(key_number("12"), Some(12));
    for name in ["01", "+1", "-1", "1.tmp", "", " 1", "18446744073709551616"] {
        assert_eq!(key_number(name), None, "name {name:?}");
    }
}
