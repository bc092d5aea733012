//! One Fernet key: a 128-bit signing key followed by a 128-bit encryption
//! key, stored as url-safe base64 text (the format of Keystone's key files
//! and of Python's `Fernet.generate_key()`).

use std::fmt;

use base64::alphabet::URL_SAFE;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use rand::rngs::OsRng;
use rand::RngCore;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Length of a decoded Fernet key in bytes.
pub const KEY_LEN: usize = 32;

/// Half of a key: the signing key is the first half, the encryption key the second.
const HALF_LEN: usize = KEY_LEN / 2;

/// Writes keys padded, as Python does, and reads them with or without padding.
const KEY_ENGINE: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Failure to parse key text. The messages never include the key text,
/// because a key file with one wrong character is still mostly secret.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("Fernet key is not url-safe base64")]
    NotBase64,
    #[error("Fernet key does not decode to {KEY_LEN} bytes")]
    WrongLength,
}

/// A Fernet key. The bytes are wiped from memory when the value is dropped,
/// and `Debug` prints no key material.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct FernetKey {
    bytes: [u8; KEY_LEN],
}

impl FernetKey {
    /// Generates a key from the operating system's random number generator.
    pub fn generate() -> Self {
        let mut bytes = [0u8; KEY_LEN];
        OsRng.fill_bytes(&mut bytes);
        Self { bytes }
    }

    /// Parses key text as found in a key file. Surrounding whitespace, such
    /// as a trailing newline added by an editor, is ignored.
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        // Decoding into a stack buffer that is wiped afterwards keeps no
        // stray copy of the key on the heap. 48 bytes fit any input whose
        // length could be a valid key, so a longer input fails as too long.
        let mut buffer = [0u8; 48];
        let decoded = KEY_ENGINE.decode_slice(text.trim().as_bytes(), &mut buffer);
        let result = match decoded {
            Ok(KEY_LEN) => {
                let mut bytes = [0u8; KEY_LEN];
                bytes.copy_from_slice(&buffer[..KEY_LEN]);
                Ok(Self { bytes })
            }
            Ok(_) | Err(base64::DecodeSliceError::OutputSliceTooSmall) => {
                Err(KeyError::WrongLength)
            }
            Err(base64::DecodeSliceError::DecodeError(_)) => Err(KeyError::NotBase64),
        };
        buffer.zeroize();
        result
    }

    /// Encodes the key as the text written to key files.
    pub(super) fn to_base64(&self) -> zeroize::Zeroizing<String> {
        zeroize::Zeroizing::new(KEY_ENGINE.encode(self.bytes))
    }

    pub(super) fn signing_key(&self) -> &[u8; HALF_LEN] {
        self.bytes[..HALF_LEN]
            .try_into()
            .expect("a key has two halves of HALF_LEN bytes")
    }

    pub(super) fn encryption_key(&self) -> &[u8; HALF_LEN] {
        self.bytes[HALF_LEN..]
            .try_into()
            .expect("a key has two halves of HALF_LEN bytes")
    }
}

impl fmt::Debug for FernetKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FernetKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The key of the Fernet specification's test vectors (fernet/spec generate.json).
    const SPEC_KEY: &str = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";

    #[test]
    fn key_text_round_trips() {
        let key = FernetKey::from_base64(SPEC_KEY).unwrap();
        assert_eq!(key.to_base64().as_str(), SPEC_KEY);
    }

    #[test]
    fn key_text_accepts_missing_padding_and_newline() {
        let padded = FernetKey::from_base64(SPEC_KEY).unwrap();
        let unpadded = FernetKey::from_base64(SPEC_KEY.trim_end_matches('=')).unwrap();
        let with_newline = FernetKey::from_base64(&format!("{SPEC_KEY}\n")).unwrap();
        assert_eq!(padded, unpadded);
        assert_eq!(padded, with_newline);
    }

    #[test]
    fn key_text_rejects_wrong_length() {
        let long = "A".repeat(88);
        assert_eq!(FernetKey::from_base64("AAAA"), Err(KeyError::WrongLength));
        assert_eq!(FernetKey::from_base64(&long), Err(KeyError::WrongLength));
        assert_eq!(FernetKey::from_base64(""), Err(KeyError::WrongLength));
    }

    #[test]
    fn key_text_rejects_non_base64() {
        let standard_alphabet = SPEC_KEY.replace('_', "/");
        assert_eq!(
            FernetKey::from_base64(&standard_alphabet),
            Err(KeyError::NotBase64)
        );
        assert_eq!(FernetKey::from_base64("%%%%"), Err(KeyError::NotBase64));
    }

    #[test]
    fn key_debug_hides_material() {
        let key = FernetKey::from_base64(SPEC_KEY).unwrap();
        let printed = format!("{key:?}");
        assert_eq!(printed, "FernetKey(<redacted>)");
        assert!(!printed.contains("cw_0x"));
    }

    #[test]
    fn generated_keys_differ_and_split_in_halves() {
        let first = FernetKey::generate();
        let second = FernetKey::generate();
        assert_ne!(first, second);
        assert_eq!(first.signing_key().len(), HALF_LEN);
        assert_eq!(first.encryption_key().len(), HALF_LEN);
        assert_ne!(first.signing_key(), first.encryption_key());
    }
}
