//! X.509 keypairs (keypair `type` "x509", 2.2+): checking an imported PEM
//! certificate, Nova's SHA-1 certificate fingerprint, and generating a
//! self-signed certificate with its RSA key.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rsa::pkcs1::{EncodeRsaPrivateKey, LineEnding};
use rsa::pkcs8::EncodePublicKey;
use rsa::Pkcs1v15Sign;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::sshkey::GeneratedKey;

const PEM_BEGIN: &str = "-----BEGIN CERTIFICATE-----";
const PEM_END: &str = "-----END CERTIFICATE-----";

/// The DER prefix of a PKCS#1 v1.5 SHA-256 DigestInfo (RFC 8017 §9.2).
const SHA256_DIGEST_INFO: &[u8] = &[
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

/// sha256WithRSAEncryption (1.2.840.113549.1.1.11) with NULL parameters.
const SHA256_WITH_RSA: &[u8] = &[
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05, 0x00,
];

/// Returns the colon-separated lower-case hex SHA-1 of a DER certificate,
/// the fingerprint Nova stores for X.509 keypairs.
pub fn fingerprint(der: &[u8]) -> String {
    let digest = Sha1::digest(der);
    let pairs: Vec<String> = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    pairs.join(":")
}

/// Reads the length of the DER element at the start of `data` and returns
/// (header length, content length).
fn der_header(data: &[u8]) -> Option<(usize, usize)> {
    let first = *data.get(1)?;
    if first < 0x80 {
        return Some((2, usize::from(first)));
    }
    let count = usize::from(first & 0x7f);
    if count == 0 || count > 4 || data.len() < 2 + count {
        return None;
    }
    let length = data[2..2 + count]
        .iter()
        .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
    Some((2 + count, length))
}

/// Decodes a PEM certificate and checks its outer DER structure: a
/// SEQUENCE spanning the whole data that starts with the to-be-signed
/// SEQUENCE. Returns the DER bytes.
// NOTE: the signature and the fields inside are not checked, so a
// well-framed but meaningless certificate is accepted.
pub fn parse_pem(text: &str) -> Result<Vec<u8>, String> {
    let text = text.trim();
    let body = text
        .strip_prefix(PEM_BEGIN)
        .and_then(|rest| rest.strip_suffix(PEM_END))
        .ok_or("an x509 keypair must be a PEM certificate")?;
    let encoded: String = body.split_whitespace().collect();
    let der = STANDARD
        .decode(encoded)
        .map_err(|_| "the certificate is not valid base64".to_owned())?;
    let (header, length) = der_header(&der).ok_or("the certificate is not valid DER")?;
    if der[0] != 0x30 || header + length != der.len() {
        return Err("the certificate is not a DER SEQUENCE".into());
    }
    if der.get(header) != Some(&0x30) {
        return Err("the certificate has no to-be-signed part".into());
    }
    Ok(der)
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let length = content.len();
    if length < 0x80 {
        out.push(length as u8);
    } else {
        let bytes: Vec<u8> = length
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend_from_slice(&bytes);
    }
    out.extend_from_slice(content);
    out
}

fn name(common_name: &str) -> Vec<u8> {
    let attribute = [
        tlv(0x06, &[0x55, 0x04, 0x03]),
        tlv(0x0c, common_name.as_bytes()),
    ]
    .concat();
    tlv(0x30, &tlv(0x31, &tlv(0x30, &attribute)))
}

/// Encodes a time as UTCTime, or GeneralizedTime from 2050 (RFC 5280 §4.1.2.5).
fn time(at: chrono::DateTime<chrono::Utc>) -> Vec<u8> {
    use chrono::Datelike;
    if at.year() < 2050 {
        tlv(0x17, at.format("%y%m%d%H%M%SZ").to_string().as_bytes())
    } else {
        tlv(0x18, at.format("%Y%m%d%H%M%SZ").to_string().as_bytes())
    }
}

/// Generates a 2048-bit RSA key and a self-signed certificate for it,
/// valid for ten years, with `common_name` as subject and issuer.
pub fn generate(common_name: &str) -> Result<GeneratedKey, String> {
    let mut rng = rand::thread_rng();
    let private = rsa::RsaPrivateKey::new(&mut rng, 2048).map_err(|e| e.to_string())?;
    let public_info = private
        .to_public_key()
        .to_public_key_der()
        .map_err(|e| e.to_string())?;

    let mut serial: [u8; 16] = rand::random();
    // A positive, non-zero INTEGER: clear the sign bit and set a low bit.
    serial[0] = (serial[0] & 0x7f) | 0x01;
    let now = chrono::Utc::now();
    let validity = [time(now), time(now + chrono::Duration::days(3650))].concat();
    let to_be_signed = tlv(
        0x30,
        &[
            tlv(0xa0, &tlv(0x02, &[0x02])),
            tlv(0x02, &serial),
            SHA256_WITH_RSA.to_vec(),
            name(common_name),
            tlv(0x30, &validity),
            name(common_name),
            public_info.as_bytes().to_vec(),
        ]
        .concat(),
    );

    let digest = Sha256::digest(&to_be_signed);
    let digest_info = [SHA256_DIGEST_INFO, digest.as_slice()].concat();
    let signature = private
        .sign(Pkcs1v15Sign::new_unprefixed(), &digest_info)
        .map_err(|e| e.to_string())?;
    let bit_string = [&[0u8][..], &signature].concat();
    let der = tlv(
        0x30,
        &[
            to_be_signed,
            SHA256_WITH_RSA.to_vec(),
            tlv(0x03, &bit_string),
        ]
        .concat(),
    );

    let encoded = STANDARD.encode(&der);
    let lines: Vec<&str> = encoded
        .as_bytes()
        .chunks(64)
        .map(|chunk| std::str::from_utf8(chunk).unwrap_or_default())
        .collect();
    let public_key = format!("{PEM_BEGIN}\n{}\n{PEM_END}\n", lines.join("\n"));
    let private_key = private
        .to_pkcs1_pem(LineEnding::LF)
        .map_err(|e| e.to_string())?
        .to_string();
    Ok(GeneratedKey {
        public_key,
        private_key,
        fingerprint: fingerprint(&der),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_certificate_parses_back() {
        let key = generate("demo-user").unwrap();
        let der = parse_pem(&key.public_key).unwrap();
        assert_eq!(fingerprint(&der), key.fingerprint);
        assert_eq!(key.fingerprint.len(), 59, "20 bytes as colon-separated hex");
    }

    #[test]
    fn ssh_key_is_not_a_certificate() {
        assert!(parse_pem("ssh-ed25519 AAAA test").is_err());
        assert!(parse_pem(&format!("{PEM_BEGIN}\nAAAA\n{PEM_END}")).is_err());
    }
}
