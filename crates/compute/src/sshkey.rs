//! OpenSSH public keys: parsing and checking the `authorized_keys` form that
//! keypair import accepts, Nova's MD5 fingerprint, and RSA key generation
//! for keypair create without a public key.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use md5::{Digest, Md5};
use rsa::pkcs1::{EncodeRsaPrivateKey, LineEnding};
use rsa::traits::PublicKeyParts;

/// The smallest RSA modulus accepted, in bits.
// NOTE: Nova delegates to the `cryptography` package, whose minimum may
// differ; 1024 rejects keys no current ssh-keygen produces.
const MIN_RSA_BITS: usize = 1024;

/// A checked public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    /// The algorithm name (`ssh-ed25519`, `ssh-rsa`, `ecdsa-sha2-nistp256`).
    pub algorithm: String,
    /// The decoded key blob, what fingerprints are computed over.
    pub blob: Vec<u8>,
}

impl PublicKey {
    /// Returns the MD5 fingerprint in colon-separated lower-case hex, the
    /// form Nova stores and `ssh-keygen -l -E md5` prints after `MD5:`.
    pub fn md5_fingerprint(&self) -> String {
        let digest = Md5::digest(&self.blob);
        let pairs: Vec<String> = digest.iter().map(|byte| format!("{byte:02x}")).collect();
        pairs.join(":")
    }
}

/// Reads SSH wire-format fields (RFC 4251 §5) from a key blob.
struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    fn string(&mut self) -> Result<&'a [u8], String> {
        if self.data.len() < 4 {
            return Err("the key data ends early".into());
        }
        let (length, rest) = self.data.split_at(4);
        let length = u32::from_be_bytes([length[0], length[1], length[2], length[3]]) as usize;
        if rest.len() < length {
            return Err("the key data ends early".into());
        }
        let (field, rest) = rest.split_at(length);
        self.data = rest;
        Ok(field)
    }

    /// Reads a positive mpint and returns its length in bits.
    fn positive_mpint_bits(&mut self) -> Result<usize, String> {
        let bytes = self.string()?;
        if bytes.first().is_some_and(|b| b & 0x80 != 0) {
            return Err("the key contains a negative integer".into());
        }
        let significant: Vec<u8> = bytes.iter().copied().skip_while(|b| *b == 0).collect();
        let Some(first) = significant.first() else {
            return Err("the key contains a zero integer".into());
        };
        Ok(significant.len() * 8 - first.leading_zeros() as usize)
    }
}

/// Parses and checks one public key line (`ssh-ed25519 AAAA… comment`).
/// The error names what is wrong, for the 400 message.
pub fn parse(text: &str) -> Result<PublicKey, String> {
    let mut words = text.split_whitespace();
    let algorithm = words.next().ok_or("the key is empty")?;
    let encoded = words
        .next()
        .ok_or("the key has no base64 data after its type")?;
    let blob = STANDARD
        .decode(encoded)
        .map_err(|_| "the key data is not valid base64".to_owned())?;
    let mut reader = Reader { data: &blob };
    let inner = reader.string()?;
    if inner != algorithm.as_bytes() {
        return Err(format!("the key data is not a {algorithm} key"));
    }
    match algorithm {
        "ssh-ed25519" => {
            if reader.string()?.len() != 32 {
                return Err("an ed25519 key must be 32 bytes".into());
            }
        }
        "ssh-rsa" => {
            reader.positive_mpint_bits()?;
            let bits = reader.positive_mpint_bits()?;
            if bits < MIN_RSA_BITS {
                return Err(format!(
                    "the RSA key has {bits} bits; at least {MIN_RSA_BITS} are required"
                ));
            }
        }
        "ssh-dss" => {
            for _ in 0..4 {
                reader.positive_mpint_bits()?;
            }
        }
        "ecdsa-sha2-nistp256" | "ecdsa-sha2-nistp384" | "ecdsa-sha2-nistp521" => {
            let curve = &algorithm["ecdsa-sha2-".len()..];
            if reader.string()? != curve.as_bytes() {
                return Err(format!("the key data does not name curve {curve}"));
            }
            let coordinate = match curve {
                "nistp256" => 32,
                "nistp384" => 48,
                _ => 66,
            };
            let point = reader.string()?;
            if point.len() != 1 + 2 * coordinate || point[0] != 0x04 {
                return Err(format!("the key does not contain a valid {curve} point"));
            }
        }
        other => return Err(format!("key type {other} is not supported")),
    }
    if !reader.data.is_empty() {
        return Err("the key data has trailing bytes".into());
    }
    Ok(PublicKey {
        algorithm: algorithm.to_owned(),
        blob,
    })
}

/// A generated keypair: the public key (an OpenSSH line, or a PEM
/// certificate for X.509 keypairs), the PKCS#1 PEM private key and the
/// fingerprint Nova shows for it.
pub struct GeneratedKey {
    pub public_key: String,
    pub private_key: String,
    pub fingerprint: String,
}

fn put_string(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(data);
}

fn put_mpint(out: &mut Vec<u8>, big_endian: &[u8]) {
    let trimmed: Vec<u8> = big_endian.iter().copied().skip_while(|b| *b == 0).collect();
    let mut data = Vec::with_capacity(trimmed.len() + 1);
    if trimmed.first().is_some_and(|b| b & 0x80 != 0) {
        data.push(0);
    }
    data.extend_from_slice(&trimmed);
    put_string(out, &data);
}

/// Generates a 2048-bit RSA keypair, as Nova does. Slow (about a second in
/// debug builds), so callers run it on a blocking thread.
pub fn generate_rsa() -> Result<GeneratedKey, String> {
    let mut rng = rand::thread_rng();
    let private = rsa::RsaPrivateKey::new(&mut rng, 2048).map_err(|e| e.to_string())?;
    let mut blob = Vec::new();
    put_string(&mut blob, b"ssh-rsa");
    put_mpint(&mut blob, &private.e().to_bytes_be());
    put_mpint(&mut blob, &private.n().to_bytes_be());
    let public_key = format!("ssh-rsa {} Generated-by-Nova", STANDARD.encode(&blob));
    let private_key = private
        .to_pkcs1_pem(LineEnding::LF)
        .map_err(|e| e.to_string())?
        .to_string();
    let fingerprint = PublicKey {
        algorithm: "ssh-rsa".into(),
        blob,
    }
    .md5_fingerprint();
    Ok(GeneratedKey {
        public_key,
        private_key,
        fingerprint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_parses_back() {
        let key = generate_rsa().unwrap();
        let parsed = parse(&key.public_key).unwrap();
        assert_eq!(parsed.algorithm, "ssh-rsa");
        assert_eq!(parsed.md5_fingerprint(), key.fingerprint);
        assert!(key
            .private_key
            .starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    }

    #[test]
    fn mismatched_type_rejected() {
        let key = generate_rsa().unwrap();
        let data = key.public_key.split_whitespace().nth(1).unwrap();
        let error = parse(&format!("ssh-ed25519 {data}")).unwrap_err();
        assert!(error.contains("not a ssh-ed25519 key"), "{error}");
    }

    #[test]
    fn garbage_rejected() {
        assert!(parse("ssh-rsa not-base64!").is_err());
        assert!(parse("").is_err());
        assert!(parse("ssh-foo AAAAB3NzaC1yc2E=").is_err());
    }
}
