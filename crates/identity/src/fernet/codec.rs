//! Issuing and validating tokens with a fixed set of keys.
//!
//! A codec contains the keys of a key repository as they were when it was
//! built, so after a rotation, build a new codec from the repository.

use std::fmt;

use chrono::{DateTime, Utc};
use rand::rngs::OsRng;
use rand::RngCore;

use super::cipher::{self, IV_LEN, MAX_TOKEN_CHARS};
use super::errors::{EncodeError, InvalidToken, TokenError};
use super::key::FernetKey;
use super::payload::{decode_payload, encode_payload, TokenPayload};
use super::repository::{KeyRepository, KeyRepositoryError};

/// A codec needs at least one key.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("no Fernet keys were given; a token codec needs at least one")]
pub struct NoKeys;

/// Encrypts tokens with the primary key and decrypts them with any key.
/// `Debug` prints only the number of keys.
pub struct TokenCodec {
    /// Primary key first; the rest are only used to decrypt.
    keys: Vec<FernetKey>,
}

impl TokenCodec {
    /// Builds a codec from keys in priority order: the first key encrypts,
    /// and every key is tried when decrypting.
    pub fn new(keys: Vec<FernetKey>) -> Result<Self, NoKeys> {
        if keys.is_empty() {
            return Err(NoKeys);
        }
        Ok(Self { keys })
    }

    /// Loads every key of `repository`, with the highest-numbered as primary.
    pub fn from_repository(repository: &KeyRepository) -> Result<Self, KeyRepositoryError> {
        let keys = repository
            .keys()?
            .into_iter()
            .map(|entry| entry.key)
            .collect();
        Ok(Self { keys })
    }

    /// Issues a token for `payload`, stamped with the current time.
    pub fn encode(&self, payload: &TokenPayload) -> Result<String, EncodeError> {
        self.encode_at(payload, Utc::now())
    }

    /// Issues a token for `payload` stamped with `issued_at`, truncated to
    /// whole seconds as the Fernet format stores it.
    pub fn encode_at(
        &self,
        payload: &TokenPayload,
        issued_at: DateTime<Utc>,
    ) -> Result<String, EncodeError> {
        let timestamp = u64::try_from(issued_at.timestamp())
            .map_err(|_| EncodeError::IssuedBeforeEpoch(issued_at))?;
        let plaintext = encode_payload(payload)?;

        let mut iv = [0u8; IV_LEN];
        OsRng.fill_bytes(&mut iv);
        let token = cipher::seal(self.primary_key(), &plaintext, timestamp, iv);

        // A token that decode would refuse must never be handed out.
        if token.len() > MAX_TOKEN_CHARS {
            return Err(EncodeError::TooLong {
                length: token.len(),
                max: MAX_TOKEN_CHARS,
            });
        }
        Ok(token)
    }

    /// Validates `token` and returns its payload and issue time.
    ///
    /// The token is expired when `now` is at or after its expiry, as in
    /// Keystone, which accepts a token only while the current time is before
    /// `expires_at`. Malformed input gives an error, never a panic (tested
    /// with random, truncated and tampered tokens).
    pub fn decode(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<(TokenPayload, DateTime<Utc>), TokenError> {
        let opened = cipher::open(&self.keys, token)?;
        let issued_at = i64::try_from(opened.timestamp)
            .ok()
            .and_then(|seconds| DateTime::from_timestamp(seconds, 0))
            .ok_or(InvalidToken::TimestampOutOfRange(opened.timestamp))?;
        let payload = decode_payload(&opened.plaintext).map_err(InvalidToken::from)?;

        if now >= payload.expires_at {
            return Err(TokenError::Expired {
                expires_at: payload.expires_at,
            });
        }
        Ok((payload, issued_at))
    }

    fn primary_key(&self) -> &FernetKey {
        self.keys
            .first()
            .expect("constructors reject an empty key list")
    }
}

impl fmt::Debug for TokenCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCodec")
            .field("key_count", &self.keys.len())
            .finish()
    }
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;
