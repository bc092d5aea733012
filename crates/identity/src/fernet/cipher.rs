//! The Fernet token format, version 0x80 (github.com/fernet/spec, Spec.md):
//!
//! ```text
//! version (1 byte, 0x80) ‖ timestamp (8 bytes, big-endian seconds)
//!   ‖ IV (16 bytes) ‖ AES-128-CBC ciphertext, PKCS#7 padded ‖ HMAC-SHA256 (32 bytes)
//! ```
//!
//! The HMAC covers every byte before it and uses the first half of the key;
//! AES uses the second half. The whole is url-safe base64. Like Keystone
//! (keystone/token/token_formatters.py, `TokenFormatter.pack`), tokens are
//! issued without `=` padding, and padding is optional when reading them.

use aes::Aes128;
use base64::alphabet::URL_SAFE;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::errors::InvalidToken;
use super::key::FernetKey;

type HmacSha256 = Hmac<Sha256>;

const VERSION: u8 = 0x80;
const TIMESTAMP_LEN: usize = 8;
pub(super) const IV_LEN: usize = 16;
const BLOCK_LEN: usize = 16;
const HMAC_LEN: usize = 32;
const HEADER_LEN: usize = 1 + TIMESTAMP_LEN + IV_LEN;
const MIN_TOKEN_BYTES: usize = HEADER_LEN + BLOCK_LEN + HMAC_LEN;

/// Maximum token length accepted or issued, in characters. By estimate, an
/// application credential token whose three ids are 64-character strings is
/// about 420 characters. This bound only stops oversized input before any
/// base64 or HMAC work is spent on it.
pub(super) const MAX_TOKEN_CHARS: usize = 2048;

const TOKEN_ENGINE: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A token whose signature and padding were verified.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct OpenedToken {
    pub(super) plaintext: Vec<u8>,
    /// Seconds since the Unix epoch when the token was issued.
    pub(super) timestamp: u64,
}

/// Encrypts and signs `plaintext`, returning the token without `=` padding.
/// The IV must be unique per token, so callers pass fresh random bytes;
/// it is a parameter only so that tests can reproduce published vectors.
pub(super) fn seal(key: &FernetKey, plaintext: &[u8], timestamp: u64, iv: [u8; IV_LEN]) -> String {
    let ciphertext = cbc::Encryptor::<Aes128>::new(key.encryption_key().into(), &iv.into())
        .encrypt_padded_vec_mut::<Pkcs7>(plaintext);

    let mut token = Vec::with_capacity(HEADER_LEN + ciphertext.len() + HMAC_LEN);
    token.push(VERSION);
    token.extend_from_slice(&timestamp.to_be_bytes());
    token.extend_from_slice(&iv);
    token.extend_from_slice(&ciphertext);

    let signature = new_mac(key).chain_update(&token).finalize().into_bytes();
    token.extend_from_slice(&signature);
    TOKEN_ENGINE.encode(token)
}

/// Verifies `token` against each key in turn and decrypts it with the first
/// key whose HMAC matches. Malformed input gives an error, never a panic.
pub(super) fn open(keys: &[FernetKey], token: &str) -> Result<OpenedToken, InvalidToken> {
    if token.len() > MAX_TOKEN_CHARS {
        return Err(InvalidToken::TooLong {
            max: MAX_TOKEN_CHARS,
        });
    }
    let bytes = TOKEN_ENGINE
        .decode(token)
        .map_err(|_| InvalidToken::NotBase64)?;
    if bytes.len() < MIN_TOKEN_BYTES {
        return Err(InvalidToken::TooShort);
    }
    if bytes[0] != VERSION {
        return Err(InvalidToken::UnsupportedVersion(bytes[0]));
    }

    let (signed, signature) = bytes.split_at(bytes.len() - HMAC_LEN);
    let ciphertext = &signed[HEADER_LEN..];
    if ciphertext.len() % BLOCK_LEN != 0 {
        return Err(InvalidToken::PartialBlock);
    }

    // verify_slice compares in constant time, so a forger learns nothing
    // from how long a rejection takes.
    let key = keys
        .iter()
        .find(|key| {
            new_mac(key)
                .chain_update(signed)
                .verify_slice(signature)
                .is_ok()
        })
        .ok_or(InvalidToken::BadSignature)?;

    let timestamp_bytes: [u8; TIMESTAMP_LEN] = signed[1..1 + TIMESTAMP_LEN]
        .try_into()
        .expect("slice has TIMESTAMP_LEN bytes");
    let iv: [u8; IV_LEN] = signed[1 + TIMESTAMP_LEN..HEADER_LEN]
        .try_into()
        .expect("slice has IV_LEN bytes");
    let plaintext = cbc::Decryptor::<Aes128>::new(key.encryption_key().into(), &iv.into())
        .decrypt_padded_vec_mut::<Pkcs7>(ciphertext)
        .map_err(|_| InvalidToken::BadPadding)?;

    Ok(OpenedToken {
        plaintext,
        timestamp: u64::from_be_bytes(timestamp_bytes),
    })
}

fn new_mac(key: &FernetKey) -> HmacSha256 {
    <HmacSha256 as Mac>::new_from_slice(key.signing_key()).expect("HMAC accepts keys of any length")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// First entry of fernet/spec generate.json: "hello" sealed at
    /// 1985-10-26T01:20:00-07:00 with IV 0..=15.
    const SPEC_KEY: &str = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";
    const SPEC_TOKEN: &str = "gAAAAAAdwJ6wAAECAwQFBgcICQoLDA0ODy021cpGVWKZ_eEwCGM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqDA==";
    const SPEC_TIMESTAMP: u64 = 499_162_800;
    const SPEC_IV: [u8; IV_LEN] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];

    fn spec_key() -> FernetKey {
        FernetKey::from_base64(SPEC_KEY).unwrap()
    }

    #[test]
    fn seal_matches_spec_vector_without_padding() {
        let token = seal(&spec_key(), b"hello", SPEC_TIMESTAMP, SPEC_IV);
        assert_eq!(token, SPEC_TOKEN.trim_end_matches('='));
    }

    #[test]
    fn open_reads_spec_vector_with_and_without_padding() {
        let expected = OpenedToken {
            plaintext: b"hello".to_vec(),
            timestamp: SPEC_TIMESTAMP,
        };
        let keys = [spec_key()];
        assert_eq!(open(&keys, SPEC_TOKEN), Ok(expected));
        let unpadded = open(&keys, SPEC_TOKEN.trim_end_matches('=')).unwrap();
        assert_eq!(unpadded.plaintext, b"hello");
    }

    #[test]
    fn open_tries_every_key() {
        let keys = [FernetKey::generate(), spec_key(), FernetKey::generate()];
        assert_eq!(open(&keys, SPEC_TOKEN).unwrap().plaintext, b"hello");
    }

    #[test]
    fn open_rejects_unknown_key() {
        let keys = [FernetKey::generate()];
        assert_eq!(open(&keys, SPEC_TOKEN), Err(InvalidToken::BadSignature));
    }

    #[test]
    fn open_rejects_each_flipped_bit() {
        let keys = [spec_key()];
        let bytes = TOKEN_ENGINE.decode(SPEC_TOKEN).unwrap();
        for index in 0..bytes.len() {
            let mut tampered = bytes.clone();
            tampered[index] ^= 0x01;
            let result = open(&keys, &TOKEN_ENGINE.encode(&tampered));
            assert!(
                result.is_err(),
                "flipping a bit of byte {index} went unnoticed"
            );
        }
    }

    #[test]
    fn open_rejects_wrong_version_byte() {
        let mut bytes = TOKEN_ENGINE.decode(SPEC_TOKEN).unwrap();
        bytes[0] = 0x81;
        let result = open(&[spec_key()], &TOKEN_ENGINE.encode(&bytes));
        assert_eq!(result, Err(InvalidToken::UnsupportedVersion(0x81)));
    }

    #[test]
    fn open_rejects_short_and_partial_block_tokens() {
        let keys = [spec_key()];
        let bytes = TOKEN_ENGINE.decode(SPEC_TOKEN).unwrap();
        let short = TOKEN_ENGINE.encode(&bytes[..MIN_TOKEN_BYTES - 1]);
        assert_eq!(open(&keys, &short), Err(InvalidToken::TooShort));

        let mut partial = bytes.clone();
        partial.insert(HEADER_LEN, 0);
        assert_eq!(
            open(&keys, &TOKEN_ENGINE.encode(&partial)),
            Err(InvalidToken::PartialBlock)
        );
    }

    #[test]
    fn open_rejects_bad_padding_under_valid_signature() {
        // Sign a ciphertext that decrypts to a block ending in byte 0, which
        // no PKCS#7 padding can produce; only a key holder could make this.
        let key = spec_key();
        let mut block = [0u8; BLOCK_LEN];
        cbc::Encryptor::<Aes128>::new(key.encryption_key().into(), &SPEC_IV.into())
            .encrypt_padded_mut::<cbc::cipher::block_padding::NoPadding>(&mut block, BLOCK_LEN)
            .unwrap();
        let mut token = vec![VERSION];
        token.extend_from_slice(&SPEC_TIMESTAMP.to_be_bytes());
        token.extend_from_slice(&SPEC_IV);
        token.extend_from_slice(&block);
        let signature = new_mac(&key).chain_update(&token).finalize().into_bytes();
        token.extend_from_slice(&signature);

        let result = open(&[key], &TOKEN_ENGINE.encode(&token));
        assert_eq!(result, Err(InvalidToken::BadPadding));
    }

    #[test]
    fn open_rejects_non_base64_and_oversized_input() {
        let keys = [spec_key()];
        assert_eq!(open(&keys, "%%%%%%%%"), Err(InvalidToken::NotBase64));
        assert_eq!(open(&keys, "gAAA AAAd"), Err(InvalidToken::NotBase64));
        let huge = "A".repeat(MAX_TOKEN_CHARS + 1);
        assert_eq!(
            open(&keys, &huge),
            Err(InvalidToken::TooLong {
                max: MAX_TOKEN_CHARS
            })
        );
    }
}
