//! Tests of issuing and validating whole tokens.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{Duration, TimeZone};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::fernet::{new_audit_id, TokenScope};

const USER: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
const PROJECT: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";

fn issued_at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 1, 2, 3, 0, 0).unwrap()
}

fn payload(scope: TokenScope) -> TokenPayload {
    TokenPayload {
        user_id: USER.to_owned(),
        methods: vec!["password".to_owned()],
        scope,
        expires_at: issued_at() + Duration::hours(1),
        audit_ids: vec![new_audit_id()],
        application_credential_id: None,
    }
}

fn every_scope() -> Vec<TokenPayload> {
    let mut rescoped = payload(TokenScope::Project(PROJECT.to_owned()));
    rescoped.methods = vec!["token".to_owned(), "password".to_owned()];
    rescoped.audit_ids.push(new_audit_id());
    let application_credential = TokenPayload {
        methods: vec!["application_credential".to_owned()],
        application_credential_id: Some("11112222333344445555666677778888".to_owned()),
        ..payload(TokenScope::Project(PROJECT.to_owned()))
    };
    vec![
        payload(TokenScope::Unscoped),
        payload(TokenScope::Domain("default".to_owned())),
        payload(TokenScope::Domain(PROJECT.to_owned())),
        payload(TokenScope::Project(PROJECT.to_owned())),
        payload(TokenScope::Project("non-uuid-project".to_owned())),
        payload(TokenScope::System),
        rescoped,
        application_credential,
    ]
}

fn codec() -> TokenCodec {
    TokenCodec::new(vec![FernetKey::generate()]).unwrap()
}

#[test]
fn every_scope_round_trips() {
    let codec = codec();
    for payload in every_scope() {
        let token = codec.encode_at(&payload, issued_at()).unwrap();
        let decoded = codec.decode(&token, issued_at());
        assert_eq!(
            decoded,
            Ok((payload.clone(), issued_at())),
            "scope {:?}",
            payload.scope
        );
    }
}

#[test]
fn tokens_are_unpadded_url_safe_fernet() {
    let codec = codec();
    for payload in every_scope() {
        let token = codec.encode_at(&payload, issued_at()).unwrap();
        assert!(!token.contains('='), "token {token}");
        let bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
        assert_eq!(bytes[0], 0x80);
        assert_eq!(&bytes[1..9], &issued_at().timestamp().to_be_bytes());
    }
}

#[test]
fn project_token_is_under_255_chars() {
    // Keystone's token_formatters.py logs tokens longer than 255 characters,
    // because other systems may store tokens in 255-character columns.
    let codec = codec();
    let mut rescoped = payload(TokenScope::Project(PROJECT.to_owned()));
    rescoped.methods = vec!["token".to_owned(), "password".to_owned()];
    rescoped.audit_ids.push(new_audit_id());
    let token = codec.encode_at(&rescoped, issued_at()).unwrap();
    assert!(
        token.len() < 255,
        "project-scoped token is {} characters",
        token.len()
    );
    // Each token also has a fresh IV, so equal payloads give different tokens.
    assert_ne!(codec.encode_at(&rescoped, issued_at()).unwrap(), token);
}

#[test]
fn expired_token_is_reported_as_expired() {
    let codec = codec();
    let payload = payload(TokenScope::Unscoped);
    let token = codec.encode_at(&payload, issued_at()).unwrap();
    let expired = Err(TokenError::Expired {
        expires_at: payload.expires_at,
    });

    let just_before = payload.expires_at - Duration::microseconds(1);
    assert!(codec.decode(&token, just_before).is_ok());
    assert_eq!(codec.decode(&token, payload.expires_at), expired);
    assert_eq!(
        codec.decode(&token, payload.expires_at + Duration::days(1)),
        expired
    );
}

#[test]
fn tampered_token_is_invalid() {
    let codec = codec();
    let token = codec
        .encode_at(&payload(TokenScope::System), issued_at())
        .unwrap();
    let mut bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    let tampered = URL_SAFE_NO_PAD.encode(&bytes);
    let result = codec.decode(&tampered, issued_at());
    assert_eq!(result, Err(TokenError::Invalid(InvalidToken::BadSignature)));
}

#[test]
fn token_from_other_keys_is_invalid() {
    let token = codec()
        .encode_at(&payload(TokenScope::Unscoped), issued_at())
        .unwrap();
    let result = codec().decode(&token, issued_at());
    assert_eq!(result, Err(TokenError::Invalid(InvalidToken::BadSignature)));
}

#[test]
fn secondary_keys_decrypt_but_do_not_encrypt() {
    let old = FernetKey::generate();
    let new = FernetKey::generate();
    let old_codec = TokenCodec::new(vec![old.clone()]).unwrap();
    let both = TokenCodec::new(vec![new.clone(), old]).unwrap();
    let new_only = TokenCodec::new(vec![new]).unwrap();

    let old_token = old_codec
        .encode_at(&payload(TokenScope::Unscoped), issued_at())
        .unwrap();
    assert!(both.decode(&old_token, issued_at()).is_ok());

    let new_token = both
        .encode_at(&payload(TokenScope::Unscoped), issued_at())
        .unwrap();
    assert!(new_only.decode(&new_token, issued_at()).is_ok());
    assert!(old_codec.decode(&new_token, issued_at()).is_err());
}

#[test]
fn garbage_is_invalid_without_panicking() {
    let codec = codec();
    let valid = codec.encode_at(
        &payload(TokenScope::Project(PROJECT.to_owned())),
        issued_at(),
    );
    let valid = valid.unwrap();
    let mut inputs: Vec<String> = vec![
        String::new(),
        "=".to_owned(),
        "gAAAAA".to_owned(),
        "not a token".to_owned(),
        "é".repeat(100),
        "A".repeat(100_000),
        format!("{valid}==="),
        format!("{valid}A"),
    ];
    inputs.extend((0..valid.len()).map(|length| valid[..length].to_owned()));

    let mut rng = StdRng::seed_from_u64(3);
    for _ in 0..2_000 {
        let length = rng.gen_range(0..300);
        let bytes: Vec<u8> = (0..length).map(|_| rng.gen()).collect();
        inputs.push(URL_SAFE_NO_PAD.encode(&bytes));
        inputs.push(String::from_utf8_lossy(&bytes).into_owned());
    }
    for input in inputs {
        let result = codec.decode(&input, issued_at());
        assert!(
            matches!(result, Err(TokenError::Invalid(_))),
            "input {input:?}: {result:?}"
        );
    }
}

#[test]
fn signed_garbage_payload_is_invalid() {
    // Only a key holder can produce these, but a bug elsewhere could.
    let key = FernetKey::generate();
    let codec = TokenCodec::new(vec![key.clone()]).unwrap();
    let mut rng = StdRng::seed_from_u64(5);
    for _ in 0..500 {
        let length = rng.gen_range(0..80);
        let plaintext: Vec<u8> = (0..length).map(|_| rng.gen()).collect();
        let token = cipher::seal(&key, &plaintext, 0, rng.gen());
        let result = codec.decode(&token, issued_at());
        assert!(
            matches!(result, Err(TokenError::Invalid(_))),
            "plaintext {plaintext:?}"
        );
    }
}

#[test]
fn issue_time_before_epoch_is_rejected() {
    let before_epoch = Utc.with_ymd_and_hms(1969, 12, 31, 23, 59, 59).unwrap();
    let result = codec().encode_at(&payload(TokenScope::Unscoped), before_epoch);
    assert_eq!(result, Err(EncodeError::IssuedBeforeEpoch(before_epoch)));
}

#[test]
fn oversized_token_is_not_issued() {
    let mut payload = payload(TokenScope::Unscoped);
    payload.user_id = "u".repeat(MAX_TOKEN_CHARS);
    let result = codec().encode_at(&payload, issued_at());
    assert!(
        matches!(result, Err(EncodeError::TooLong { .. })),
        "{result:?}"
    );
}

#[test]
fn empty_key_list_is_rejected() {
    assert!(matches!(TokenCodec::new(Vec::new()), Err(NoKeys)));
}

#[test]
fn codec_debug_hides_keys() {
    let key = FernetKey::generate();
    let text = key.to_base64();
    let printed = format!("{:?}", TokenCodec::new(vec![key]).unwrap());
    assert_eq!(printed, "TokenCodec { key_count: 1 }");
    assert!(!printed.contains(text.as_str()));
}
