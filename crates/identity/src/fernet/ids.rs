//! Keystone's compact encodings of ids and audit ids inside token payloads
//! (keystone/token/token_formatters.py, `BasePayload`).
//!
//! Ids are written as a `(is_uuid, value)` pair: `(true, 16 raw bytes)` for a
//! UUID in hex form, `(false, text)` for anything else, such as LDAP or
//! federated user ids. Audit ids are url-safe base64 text without padding,
//! written as the bytes they decode to.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use uuid::Uuid;

use super::errors::{EncodeError, PayloadError};
use super::msgpack::{Raw, Reader, Writer};

/// An id as it is written inside a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PackedId<'a> {
    Uuid([u8; 16]),
    Text(&'a str),
}

/// Chooses the packed form of `id`.
///
/// Only the 32-character lowercase hex form is packed as bytes, because
/// Keystone's `convert_uuid_bytes_to_hex` unpacks bytes to that form
/// (Python's `uuid.UUID.hex`). Keystone also packs ids with hyphens, braces
/// or upper case as bytes, which come back spelled differently. This
/// function packs them as text, so they come back unchanged.
pub(super) fn pack_id(id: &str) -> PackedId<'_> {
    let is_hex_uuid = id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    match Uuid::try_parse(id) {
        Ok(uuid) if is_hex_uuid => PackedId::Uuid(uuid.into_bytes()),
        _ => PackedId::Text(id),
    }
}

/// Writes an id as Keystone's `attempt_convert_uuid_hex_to_bytes` pair.
pub(super) fn write_id_pair(writer: &mut Writer, id: &str) {
    writer.array(2);
    match pack_id(id) {
        PackedId::Uuid(bytes) => {
            writer.bool(true);
            writer.bin(&bytes);
        }
        PackedId::Text(text) => {
            writer.bool(false);
            writer.str(text);
        }
    }
}

/// Reads an id pair, as Keystone's `_convert_or_decode` does.
pub(super) fn read_id_pair(reader: &mut Reader<'_>) -> Result<String, PayloadError> {
    if reader.array()? != 2 {
        return Err(PayloadError::MalformedId);
    }
    let is_uuid = reader.bool()?;
    let value = reader.raw()?.bytes();
    if is_uuid {
        uuid_hex(value)
    } else {
        utf8(value)
    }
}

/// Writes a domain id the way Keystone's domain-scoped payload does: bare,
/// not in a pair. A UUID is 16 bin bytes and anything else (Keystone's
/// default domain id is `default`) is a str.
pub(super) fn write_bare_id(writer: &mut Writer, id: &str) {
    match pack_id(id) {
        PackedId::Uuid(bytes) => writer.bin(&bytes),
        PackedId::Text(text) => writer.str(text),
    }
}

/// Reads a bare domain id. The msgpack type (bin or str) distinguishes the two forms.
pub(super) fn read_bare_id(reader: &mut Reader<'_>) -> Result<String, PayloadError> {
    match reader.raw()? {
        Raw::Bin(bytes) => uuid_hex(bytes),
        Raw::Str(bytes) => utf8(bytes),
    }
}

/// Generates an audit id as Keystone's `random_urlsafe_str` does: the 16
/// bytes of a random UUID in url-safe base64 without padding (22 characters).
pub fn new_audit_id() -> String {
    URL_SAFE_NO_PAD.encode(Uuid::new_v4().as_bytes())
}

pub(super) fn audit_id_to_bytes(audit_id: &str) -> Result<Vec<u8>, EncodeError> {
    match URL_SAFE_NO_PAD.decode(audit_id) {
        Ok(bytes) if !bytes.is_empty() => Ok(bytes),
        _ => Err(EncodeError::InvalidAuditId(audit_id.to_owned())),
    }
}

pub(super) fn audit_id_from_bytes(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn uuid_hex(bytes: &[u8]) -> Result<String, PayloadError> {
    let bytes: [u8; 16] = bytes
        .try_into()
        .map_err(|_| PayloadError::WrongUuidLength(bytes.len()))?;
    Ok(Uuid::from_bytes(bytes).simple().to_string())
}

fn utf8(bytes: &[u8]) -> Result<String, PayloadError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| PayloadError::NotUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX_UUID: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";

    #[test]
    fn pack_id_compresses_hex_uuid() {
        let expected = [
            0x0f, 0x1e, 0x2d, 0x3c, 0x4b, 0x5a, 0x69, 0x78, 0x87, 0x96, 0xa5, 0xb4, 0xc3, 0xd2,
            0xe1, 0xf0,
        ];
        assert_eq!(pack_id(HEX_UUID), PackedId::Uuid(expected));
    }

    #[test]
    fn pack_id_keeps_other_spellings_as_text() {
        let hyphenated = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
        let upper = HEX_UUID.to_uppercase();
        for id in [
            "default",
            hyphenated,
            upper.as_str(),
            "",
            "ldap-user@example",
        ] {
            assert_eq!(pack_id(id), PackedId::Text(id), "id {id:?}");
        }
    }

    #[test]
    fn id_pair_round_trips_both_forms() {
        for id in [
            HEX_UUID,
            "default",
            "user with spaces",
            "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
        ] {
            let mut writer = Writer::default();
            write_id_pair(&mut writer, id);
            let bytes = writer.into_bytes();
            let mut reader = Reader::new(&bytes);
            assert_eq!(read_id_pair(&mut reader).as_deref(), Ok(id));
            assert_eq!(reader.finish(), Ok(()));
        }
    }

    #[test]
    fn id_pair_bytes_match_keystone() {
        let mut writer = Writer::default();
        write_id_pair(&mut writer, "default");
        assert_eq!(writer.into_bytes(), b"\x92\xc2\xa7default");

        let mut writer = Writer::default();
        write_id_pair(&mut writer, HEX_UUID);
        let bytes = writer.into_bytes();
        assert_eq!(&bytes[..4], &[0x92, 0xc3, 0xc4, 0x10]);
        assert_eq!(bytes.len(), 4 + 16);
    }

    #[test]
    fn bare_id_types_match_keystone() {
        let mut writer = Writer::default();
        write_bare_id(&mut writer, "default");
        write_bare_id(&mut writer, HEX_UUID);
        let bytes = writer.into_bytes();
        assert_eq!(&bytes[..8], b"\xa7default");
        assert_eq!(&bytes[8..10], &[0xc4, 0x10]);

        let mut reader = Reader::new(&bytes);
        assert_eq!(read_bare_id(&mut reader).as_deref(), Ok("default"));
        assert_eq!(read_bare_id(&mut reader).as_deref(), Ok(HEX_UUID));
    }

    #[test]
    fn uuid_flag_with_wrong_length_is_rejected() {
        // (true, b"abc"): flagged as a UUID but only 3 bytes long.
        let bytes = [0x92, 0xc3, 0xc4, 0x03, b'a', b'b', b'c'];
        let result = read_id_pair(&mut Reader::new(&bytes));
        assert_eq!(result, Err(PayloadError::WrongUuidLength(3)));
    }

    #[test]
    fn audit_id_is_22_chars_of_16_bytes() {
        let audit_id = new_audit_id();
        assert_eq!(audit_id.len(), 22);
        let bytes = audit_id_to_bytes(&audit_id).unwrap();
        assert_eq!(bytes.len(), 16);
        assert_eq!(audit_id_from_bytes(&bytes), audit_id);
        assert_ne!(new_audit_id(), audit_id);
    }

    #[test]
    fn audit_id_rejects_padding_and_bad_text() {
        for bad in [
            "",
            "AAAAAAAAAAAAAAAAAAAAAA==",
            "not base64!",
            "AAAAAAAAAAAAAAAAAAAAAB",
        ] {
            assert!(audit_id_to_bytes(bad).is_err(), "audit id {bad:?}");
        }
    }
}
