//! Tests of the payload layouts. The expected bytes were produced by Python
//! msgpack 1.0 packing the tuples that Keystone's `*Payload.assemble`
//! methods build from the same inputs.

use chrono::TimeZone;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

const USER: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
const PROJECT: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
const APPLICATION_CREDENTIAL: &str = "11112222333344445555666677778888";
/// 16 bytes 0x00..=0x0f in url-safe base64 without padding.
const AUDIT_ID: &str = "AAECAwQFBgcICQoLDA0ODw";

const GOLDEN_UNSCOPED: &str = "950092c3c4100f1e2d3c4b5a69788796a5b4c3d2e1f002cb41dc3755496b731d91c410000102030405060708090a0b0c0d0e0f";
const GOLDEN_DOMAIN_DEFAULT: &str = "960192c2a96c6461702d7573657206a764656661756c74cb41dc3755496b731d91c410000102030405060708090a0b0c0d0e0f";
const GOLDEN_DOMAIN_UUID: &str = "960192c3c4100f1e2d3c4b5a69788796a5b4c3d2e1f002c410a1b2c3d4e5f60718293a4b5c6d7e8f90cb41dc3755496b731d91c410000102030405060708090a0b0c0d0e0f";
const GOLDEN_PROJECT: &str = "960292c3c4100f1e2d3c4b5a69788796a5b4c3d2e1f00292c3c410a1b2c3d4e5f60718293a4b5c6d7e8f90cb41dc3755496b731d92c410000102030405060708090a0b0c0d0e0fc410000102030405060708090a0b0c0d0e0f";
const GOLDEN_SYSTEM: &str = "960892c3c4100f1e2d3c4b5a69788796a5b4c3d2e1f002a3616c6ccb41dc3755496b731d91c410000102030405060708090a0b0c0d0e0f";
const GOLDEN_APPLICATION_CREDENTIAL: &str = "970992c3c4100f1e2d3c4b5a69788796a5b4c3d2e1f02092c3c410a1b2c3d4e5f60718293a4b5c6d7e8f90cb41dc3755496b731d91c410000102030405060708090a0b0c0d0e0f92c3c41011112222333344445555666677778888";

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

fn expires_at() -> DateTime<Utc> {
    let whole = Utc.with_ymd_and_hms(2030, 1, 2, 3, 4, 5).unwrap();
    whole + chrono::Duration::microseconds(678_901)
}

fn payload(user_id: &str, methods: &[&str], scope: TokenScope) -> TokenPayload {
    TokenPayload {
        user_id: user_id.to_owned(),
        methods: methods.iter().map(|method| (*method).to_owned()).collect(),
        scope,
        expires_at: expires_at(),
        audit_ids: vec![AUDIT_ID.to_owned()],
        application_credential_id: None,
    }
}

fn application_credential_payload() -> TokenPayload {
    TokenPayload {
        application_credential_id: Some(APPLICATION_CREDENTIAL.to_owned()),
        ..payload(
            USER,
            &["application_credential"],
            TokenScope::Project(PROJECT.to_owned()),
        )
    }
}

/// Lists every supported layout with the bytes Keystone produces for it.
fn golden_cases() -> Vec<(&'static str, TokenPayload, &'static str)> {
    let mut rescoped = payload(USER, &["password"], TokenScope::Project(PROJECT.to_owned()));
    rescoped.audit_ids.push(AUDIT_ID.to_owned());
    vec![
        (
            "unscoped",
            payload(USER, &["password"], TokenScope::Unscoped),
            GOLDEN_UNSCOPED,
        ),
        (
            "domain default",
            payload(
                "ldap-user",
                &["token", "password"],
                TokenScope::Domain("default".into()),
            ),
            GOLDEN_DOMAIN_DEFAULT,
        ),
        (
            "domain uuid",
            payload(USER, &["password"], TokenScope::Domain(PROJECT.into())),
            GOLDEN_DOMAIN_UUID,
        ),
        ("project", rescoped, GOLDEN_PROJECT),
        (
            "system",
            payload(USER, &["password"], TokenScope::System),
            GOLDEN_SYSTEM,
        ),
        (
            "application credential",
            application_credential_payload(),
            GOLDEN_APPLICATION_CREDENTIAL,
        ),
    ]
}

#[test]
fn encode_matches_keystone_bytes() {
    for (name, payload, golden) in golden_cases() {
        assert_eq!(encode_payload(&payload), Ok(hex(golden)), "layout {name}");
    }
}

#[test]
fn decode_reads_keystone_bytes() {
    for (name, payload, golden) in golden_cases() {
        assert_eq!(decode_payload(&hex(golden)), Ok(payload), "layout {name}");
    }
}

#[test]
fn decode_accepts_legacy_str_audit_ids() {
    // msgpack before 1.0 wrote Python bytes with the str type.
    let mut bytes = hex(GOLDEN_UNSCOPED);
    let audit_marker = bytes.len() - 18;
    assert_eq!(&bytes[audit_marker..audit_marker + 2], &[0xc4, 0x10]);
    bytes.splice(audit_marker..audit_marker + 2, [0xb0]);
    let decoded = decode_payload(&bytes).unwrap();
    assert_eq!(decoded.audit_ids, vec![AUDIT_ID.to_owned()]);
}

#[test]
fn application_credential_needs_project_scope() {
    let mut payload = application_credential_payload();
    payload.scope = TokenScope::Domain("default".to_owned());
    assert_eq!(
        encode_payload(&payload),
        Err(EncodeError::ApplicationCredentialWithoutProject)
    );
}

#[test]
fn encode_rejects_bad_audit_ids() {
    let mut payload = payload(USER, &["password"], TokenScope::Unscoped);
    payload.audit_ids.clear();
    assert_eq!(encode_payload(&payload), Err(EncodeError::MissingAuditId));
    payload.audit_ids = vec!["not/base64".to_owned()];
    let expected = EncodeError::InvalidAuditId("not/base64".to_owned());
    assert_eq!(encode_payload(&payload), Err(expected));
}

#[test]
fn decode_rejects_unsupported_versions() {
    // Version 3 (trust-scoped) with the field count it would have.
    let mut bytes = hex(GOLDEN_PROJECT);
    bytes[1] = 0x03;
    assert_eq!(
        decode_payload(&bytes),
        Err(PayloadError::UnsupportedVersion(3))
    );
}

#[test]
fn decode_rejects_wrong_field_count() {
    let mut bytes = hex(GOLDEN_UNSCOPED);
    bytes[0] = 0x96;
    let expected = PayloadError::WrongFieldCount {
        version: 0,
        expected: 5,
        found: 6,
    };
    assert_eq!(decode_payload(&bytes), Err(expected));
    assert_eq!(decode_payload(&[0x90]), Err(PayloadError::Truncated));
}

#[test]
fn decode_rejects_trailing_bytes() {
    let mut bytes = hex(GOLDEN_SYSTEM);
    bytes.push(0xc0);
    assert_eq!(decode_payload(&bytes), Err(PayloadError::TrailingBytes(1)));
}

#[test]
fn decode_rejects_other_system_scope() {
    let golden = hex(GOLDEN_SYSTEM);
    let position = golden
        .windows(4)
        .position(|window| window == b"\xa3all")
        .unwrap();
    let mut bytes = golden.clone();
    bytes[position + 1..position + 4].copy_from_slice(b"any");
    assert_eq!(
        decode_payload(&bytes),
        Err(PayloadError::UnknownSystemScope("any".to_owned()))
    );
}

#[test]
fn decode_rejects_non_finite_expiry() {
    let golden = hex(GOLDEN_UNSCOPED);
    let position = golden.iter().position(|byte| *byte == 0xcb).unwrap();
    let mut bytes = golden.clone();
    bytes[position + 1..position + 9].copy_from_slice(&f64::NAN.to_be_bytes());
    assert!(matches!(
        decode_payload(&bytes),
        Err(PayloadError::ExpiryOutOfRange(_))
    ));
    bytes[position + 1..position + 9].copy_from_slice(&1e300f64.to_be_bytes());
    assert!(matches!(
        decode_payload(&bytes),
        Err(PayloadError::ExpiryOutOfRange(_))
    ));
}

#[test]
fn expiry_keeps_every_microsecond() {
    let mut rng = StdRng::seed_from_u64(7);
    for _ in 0..10_000 {
        // 1970 to about 2100, where float64 still resolves well below 1 µs.
        let micros = rng.gen_range(0..4_102_444_800_000_000i64);
        let expires_at = DateTime::from_timestamp_micros(micros).unwrap();
        let seconds = expiry_to_float(expires_at);
        assert_eq!(float_to_expiry(seconds), Ok(expires_at), "micros {micros}");
    }
}

#[test]
fn expiry_drops_nanoseconds() {
    let with_nanos = expires_at() + chrono::Duration::nanoseconds(999);
    let decoded = float_to_expiry(expiry_to_float(with_nanos)).unwrap();
    assert_eq!(decoded, expires_at());
}

#[test]
fn decode_survives_mutated_payloads() {
    let mut rng = StdRng::seed_from_u64(11);
    for (_, _, golden) in golden_cases() {
        let original = hex(golden);
        for length in 0..original.len() {
            let _ = decode_payload(&original[..length]);
        }
        for _ in 0..2_000 {
            let mut mutated = original.clone();
            for _ in 0..rng.gen_range(1..4) {
                let index = rng.gen_range(0..mutated.len());
                mutated[index] = rng.gen();
            }
            let _ = decode_payload(&mutated);
        }
    }
    for _ in 0..2_000 {
        let length = rng.gen_range(0..64);
        let random: Vec<u8> = (0..length).map(|_| rng.gen()).collect();
        let _ = decode_payload(&random);
    }
}
