//! Token payloads in Keystone's msgpack layouts
//! (keystone/token/token_formatters.py). Each payload is an array whose
//! first element is the layout version:
//!
//! ```text
//! 0 unscoped:        [0, user, methods, expires_at, audit_ids]
//! 1 domain-scoped:   [1, user, methods, domain_id, expires_at, audit_ids]
//! 2 project-scoped:  [2, user, methods, project, expires_at, audit_ids]
//! 8 system-scoped:   [8, user, methods, "all", expires_at, audit_ids]
//! 9 app credential:  [9, user, methods, project, expires_at, audit_ids, app_cred]
//! ```
//!
//! `user`, `project` and `app_cred` are `(is_uuid, value)` pairs and
//! `domain_id` is bare (see the `ids` module); `methods` is a bitmask (see
//! `methods`); `expires_at` is float seconds since the Unix epoch; audit ids
//! are bin values. Layouts 3 to 7 and 10 (trusts, federation, OAuth) are
//! not issued here and are rejected when read.

use chrono::{DateTime, Utc};

use super::errors::{EncodeError, PayloadError};
use super::ids::{
    audit_id_from_bytes, audit_id_to_bytes, read_bare_id, read_id_pair, write_bare_id,
    write_id_pair,
};
use super::methods::{bitmask_to_methods, methods_to_bitmask};
use super::msgpack::{Reader, Writer};

const UNSCOPED: u64 = 0;
const DOMAIN_SCOPED: u64 = 1;
const PROJECT_SCOPED: u64 = 2;
const SYSTEM_SCOPED: u64 = 8;
const APPLICATION_CREDENTIAL_SCOPED: u64 = 9;

/// The only system scope Keystone defines.
const SYSTEM_ALL: &str = "all";

/// Largest expiry accepted when reading, in seconds (about three million
/// years); it keeps float-to-integer conversions in range.
const MAX_EXPIRY_SECONDS: f64 = 1e14;

/// Scope of a token: the target its roles apply to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenScope {
    Unscoped,
    Domain(String),
    Project(String),
    /// The whole deployment (Keystone's `system: all`).
    System,
}

/// The facts a token carries. Everything else (roles, catalog, names) is
/// looked up when the token is validated, as in Keystone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenPayload {
    pub user_id: String,
    /// Names from [`super::KEYSTONE_AUTH_METHODS`]. A decoded token lists
    /// them highest bit first, as Keystone does.
    pub methods: Vec<String>,
    pub scope: TokenScope,
    /// Stored with microsecond precision; nanoseconds are dropped.
    pub expires_at: DateTime<Utc>,
    /// This token's audit id first, then the audit id of the token it was
    /// rescoped from, if any.
    pub audit_ids: Vec<String>,
    /// Set for tokens issued to an application credential, which are always
    /// project-scoped.
    pub application_credential_id: Option<String>,
}

/// Serializes `payload` in the Keystone layout for its scope.
pub(super) fn encode_payload(payload: &TokenPayload) -> Result<Vec<u8>, EncodeError> {
    let methods = methods_to_bitmask(&payload.methods)?;
    let audit_ids = payload
        .audit_ids
        .iter()
        .map(|audit_id| audit_id_to_bytes(audit_id))
        .collect::<Result<Vec<_>, _>>()?;
    if audit_ids.is_empty() {
        return Err(EncodeError::MissingAuditId);
    }
    let expires_at = expiry_to_float(payload.expires_at);

    let mut writer = Writer::default();
    match (&payload.scope, &payload.application_credential_id) {
        (TokenScope::Project(project_id), Some(application_credential_id)) => {
            write_head(
                &mut writer,
                7,
                APPLICATION_CREDENTIAL_SCOPED,
                &payload.user_id,
                methods,
            );
            write_id_pair(&mut writer, project_id);
            write_tail(&mut writer, expires_at, &audit_ids);
            write_id_pair(&mut writer, application_credential_id);
        }
        (_, Some(_)) => return Err(EncodeError::ApplicationCredentialWithoutProject),
        (TokenScope::Unscoped, None) => {
            write_head(&mut writer, 5, UNSCOPED, &payload.user_id, methods);
            write_tail(&mut writer, expires_at, &audit_ids);
        }
        (TokenScope::Domain(domain_id), None) => {
            write_head(&mut writer, 6, DOMAIN_SCOPED, &payload.user_id, methods);
            write_bare_id(&mut writer, domain_id);
            write_tail(&mut writer, expires_at, &audit_ids);
        }
        (TokenScope::Project(project_id), None) => {
            write_head(&mut writer, 6, PROJECT_SCOPED, &payload.user_id, methods);
            write_id_pair(&mut writer, project_id);
            write_tail(&mut writer, expires_at, &audit_ids);
        }
        (TokenScope::System, None) => {
            write_head(&mut writer, 6, SYSTEM_SCOPED, &payload.user_id, methods);
            writer.str(SYSTEM_ALL);
            write_tail(&mut writer, expires_at, &audit_ids);
        }
    }
    Ok(writer.into_bytes())
}

/// Parses a decrypted payload. Malformed input gives an error, never a panic
/// (tested with truncated, mutated and random payloads).
pub(super) fn decode_payload(bytes: &[u8]) -> Result<TokenPayload, PayloadError> {
    let mut reader = Reader::new(bytes);
    let field_count = reader.array()?;
    if field_count == 0 {
        return Err(PayloadError::Truncated);
    }
    let version = reader.uint()?;
    let expected = match version {
        UNSCOPED => 5,
        DOMAIN_SCOPED | PROJECT_SCOPED | SYSTEM_SCOPED => 6,
        APPLICATION_CREDENTIAL_SCOPED => 7,
        other => return Err(PayloadError::UnsupportedVersion(other)),
    };
    if field_count != expected {
        return Err(PayloadError::WrongFieldCount {
            version,
            expected,
            found: field_count,
        });
    }

    let user_id = read_id_pair(&mut reader)?;
    let methods = bitmask_to_methods(reader.uint()?)?;
    let scope = match version {
        DOMAIN_SCOPED => TokenScope::Domain(read_bare_id(&mut reader)?),
        PROJECT_SCOPED | APPLICATION_CREDENTIAL_SCOPED => {
            TokenScope::Project(read_id_pair(&mut reader)?)
        }
        SYSTEM_SCOPED => read_system_scope(&mut reader)?,
        _ => TokenScope::Unscoped,
    };
    let expires_at = float_to_expiry(reader.float()?)?;
    let audit_ids = read_audit_ids(&mut reader)?;
    let application_credential_id = match version {
        APPLICATION_CREDENTIAL_SCOPED => Some(read_id_pair(&mut reader)?),
        _ => None,
    };
    reader.finish()?;

    Ok(TokenPayload {
        user_id,
        methods,
        scope,
        expires_at,
        audit_ids,
        application_credential_id,
    })
}

fn write_head(writer: &mut Writer, field_count: u32, version: u64, user_id: &str, methods: u64) {
    writer.array(field_count);
    writer.uint(version);
    write_id_pair(writer, user_id);
    writer.uint(methods);
}

fn write_tail(writer: &mut Writer, expires_at: f64, audit_ids: &[Vec<u8>]) {
    writer.f64(expires_at);
    writer.array(u32::try_from(audit_ids.len()).expect("a token has a handful of audit ids"));
    for audit_id in audit_ids {
        writer.bin(audit_id);
    }
}

fn read_system_scope(reader: &mut Reader<'_>) -> Result<TokenScope, PayloadError> {
    let scope = String::from_utf8_lossy(reader.raw()?.bytes()).into_owned();
    if scope == SYSTEM_ALL {
        Ok(TokenScope::System)
    } else {
        Err(PayloadError::UnknownSystemScope(scope))
    }
}

fn read_audit_ids(reader: &mut Reader<'_>) -> Result<Vec<String>, PayloadError> {
    let count = reader.array()?;
    // Each entry is read before it is stored, so a forged count larger than
    // the payload fails on the first missing entry instead of allocating.
    let mut audit_ids = Vec::new();
    for _ in 0..count {
        audit_ids.push(audit_id_from_bytes(reader.raw()?.bytes()));
    }
    Ok(audit_ids)
}

/// Converts to float seconds exactly as Python's
/// `timedelta.total_seconds()` does in Keystone: whole microseconds divided
/// by 10^6, correctly rounded.
fn expiry_to_float(expires_at: DateTime<Utc>) -> f64 {
    expires_at.timestamp_micros() as f64 / 1e6
}

/// Converts float seconds back, rounding to the nearest microsecond as
/// Python's `datetime.fromtimestamp` does. A float64 near today's epoch
/// seconds resolves about 0.24 µs, so every microsecond survives the trip.
fn float_to_expiry(seconds: f64) -> Result<DateTime<Utc>, PayloadError> {
    if !seconds.is_finite() || seconds.abs() > MAX_EXPIRY_SECONDS {
        return Err(PayloadError::ExpiryOutOfRange(seconds));
    }
    let whole = seconds.floor();
    let mut micros = ((seconds - whole) * 1e6).round() as u32;
    let mut whole = whole as i64;
    if micros == 1_000_000 {
        whole += 1;
        micros = 0;
    }
    DateTime::from_timestamp(whole, micros * 1000).ok_or(PayloadError::ExpiryOutOfRange(seconds))
}

#[cfg(test)]
#[path = "payload_tests.rs"]
mod tests;
