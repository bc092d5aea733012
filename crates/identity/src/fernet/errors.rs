//! Errors of issuing and validating Fernet tokens.
//!
//! Validation has two outcomes a caller must tell apart: the token is not
//! ours or is damaged ([`TokenError::Invalid`]), or it is genuine but past
//! its expiry ([`TokenError::Expired`]). The reasons inside `Invalid` are for
//! logs only, because telling a client why a forged token failed helps it.

use chrono::{DateTime, Utc};

/// Failure to issue a token. Each one is a bug or a bad value in the caller.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EncodeError {
    #[error("authentication method {0:?} has no bit in Keystone's method bitmask")]
    UnknownMethod(String),
    #[error("audit id {0:?} is not url-safe base64 without padding")]
    InvalidAuditId(String),
    #[error("a token needs at least one audit id")]
    MissingAuditId,
    #[error("an application credential token must be project-scoped")]
    ApplicationCredentialWithoutProject,
    #[error("issue time {0} is before 1970-01-01 and cannot be stored in a Fernet token")]
    IssuedBeforeEpoch(DateTime<Utc>),
    #[error("token would be {length} characters long, more than the maximum of {max}")]
    TooLong { length: usize, max: usize },
}

/// Failure to validate a token.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TokenError {
    #[error("token is invalid or malformed")]
    Invalid(#[source] InvalidToken),
    #[error("token expired at {expires_at}")]
    Expired { expires_at: DateTime<Utc> },
}

impl From<InvalidToken> for TokenError {
    fn from(reason: InvalidToken) -> Self {
        Self::Invalid(reason)
    }
}

/// Reason a token is invalid, for logs.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum InvalidToken {
    #[error("token is longer than {max} characters")]
    TooLong { max: usize },
    #[error("token is not url-safe base64")]
    NotBase64,
    #[error("token is shorter than the smallest Fernet token")]
    TooShort,
    #[error("Fernet version byte is {0:#04x}, expected 0x80")]
    UnsupportedVersion(u8),
    #[error("ciphertext length is not a multiple of the AES block size")]
    PartialBlock,
    #[error("HMAC signature matches none of the keys")]
    BadSignature,
    #[error("decrypted payload has invalid PKCS#7 padding")]
    BadPadding,
    #[error("issue timestamp {0} is out of range")]
    TimestampOutOfRange(u64),
    #[error("payload is malformed")]
    Payload(#[source] PayloadError),
}

/// Reason a decrypted payload does not match any of Keystone's layouts.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PayloadError {
    #[error("payload ends early")]
    Truncated,
    #[error("expected a msgpack {expected}, found marker byte {marker:#04x}")]
    UnexpectedType { expected: &'static str, marker: u8 },
    #[error("payload has {0} bytes after its end")]
    TrailingBytes(usize),
    #[error("payload version {0} is not one this server issues")]
    UnsupportedVersion(u64),
    #[error("payload version {version} needs {expected} fields, found {found}")]
    WrongFieldCount {
        version: u64,
        expected: u32,
        found: u32,
    },
    #[error("id field is not a (flag, value) pair")]
    MalformedId,
    #[error("UUID field has {0} bytes, expected 16")]
    WrongUuidLength(usize),
    #[error("text field is not valid UTF-8")]
    NotUtf8,
    #[error("method bitmask {0:#x} has bits for no known authentication method")]
    UnknownMethodBits(u64),
    #[error("expiry timestamp {0} is out of range")]
    ExpiryOutOfRange(f64),
    #[error("system scope {0:?} is not \"all\"")]
    UnknownSystemScope(String),
}

impl From<PayloadError> for InvalidToken {
    fn from(error: PayloadError) -> Self {
        Self::Payload(error)
    }
}
