//! Password hashing with bcrypt, off the async runtime, with an optional
//! in-memory cache of passwords already verified.

use std::collections::HashMap;
use std::sync::Mutex;

use oxstack_core::ApiError;
use sha2::{Digest, Sha256};

/// Keystone refuses longer passwords; bcrypt itself reads only 72 bytes.
pub const MAX_PASSWORD_LEN: usize = 4096;

/// user id → (bcrypt hash the password was checked against, keyed digest of
/// that password).
type VerifiedCache = Mutex<HashMap<String, (String, [u8; 32])>>;

pub struct PasswordHasher {
    cost: u32,
    /// An entry is valid only while the stored hash is unchanged, so a
    /// password change invalidates it by itself.
    verified: Option<VerifiedCache>,
    /// Random per-process key, so the digests are useless outside it.
    cache_key: [u8; 32],
}

impl PasswordHasher {
    pub fn new(cost: u32, cache: bool) -> Self {
        PasswordHasher {
            cost,
            verified: cache.then(|| Mutex::new(HashMap::new())),
            cache_key: rand::random(),
        }
    }

    /// Hashes a new password.
    pub async fn hash(&self, password: &str) -> Result<String, ApiError> {
        check_length(password)?;
        let cost = self.cost;
        let password = password.to_owned();
        tokio::task::spawn_blocking(move || bcrypt::hash(password, cost))
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::internal)
    }

    /// Checks `password` for `user_id` against its stored `hash`.
    pub async fn verify(
        &self,
        user_id: &str,
        password: &str,
        hash: &str,
    ) -> Result<bool, ApiError> {
        if password.len() > MAX_PASSWORD_LEN {
            return Ok(false);
        }
        let digest = self.digest(password);
        if let Some(cache) = &self.verified {
            let cache = cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((cached_hash, cached_digest)) = cache.get(user_id) {
                if cached_hash == hash && *cached_digest == digest {
                    return Ok(true);
                }
            }
        }
        let (owned_password, owned_hash) = (password.to_owned(), hash.to_owned());
        let matches =
            tokio::task::spawn_blocking(move || bcrypt::verify(owned_password, &owned_hash))
                .await
                .map_err(ApiError::internal)?
                // A corrupt stored hash cannot match; it is not the caller's fault.
                .unwrap_or(false);
        if matches {
            if let Some(cache) = &self.verified {
                let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
                cache.insert(user_id.to_owned(), (hash.to_owned(), digest));
            }
        }
        Ok(matches)
    }

    fn digest(&self, password: &str) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(self.cache_key);
        hasher.update(password.as_bytes());
        hasher.finalize().into()
    }
}

pub fn check_length(password: &str) -> Result<(), ApiError> {
    if password.len() > MAX_PASSWORD_LEN {
        return Err(ApiError::bad_request(format!(
            "Invalid input for field 'password': longer than {MAX_PASSWORD_LEN} bytes."
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn verify_accepts_right_and_rejects_wrong() {
        let hasher = PasswordHasher::new(4, true);
        let hash = hasher.hash("s3cret").await.unwrap();
        assert!(hasher.verify("u1", "s3cret", &hash).await.unwrap());
        // Second time comes from the cache and must still be right.
        assert!(hasher.verify("u1", "s3cret", &hash).await.unwrap());
        assert!(!hasher.verify("u1", "wrong", &hash).await.unwrap());
    }

    #[tokio::test]
    async fn cache_entry_dies_with_hash_change() {
        let hasher = PasswordHasher::new(4, true);
        let old = hasher.hash("old").await.unwrap();
        assert!(hasher.verify("u1", "old", &old).await.unwrap());
        let new = hasher.hash("new").await.unwrap();
        assert!(!hasher.verify("u1", "old", &new).await.unwrap());
    }

    #[tokio::test]
    async fn corrupt_hash_never_matches() {
        let hasher = PasswordHasher::new(4, false);
        assert!(!hasher.verify("u1", "x", "not-a-bcrypt-hash").await.unwrap());
    }
}
