//! New asymmetric key pairs for `jwtd keys generate`, as PEM: a PKCS#8 private key and an SPKI
//! public key, the formats `jwt.private_key_file` and `jwt.previous_public_key_files` read.

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair,
    KeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::Algorithm;

use super::keys::{Family, algorithm_family, is_hmac};

#[derive(Debug, thiserror::Error)]
pub enum KeygenError {
    #[error("{0:?} is an HMAC algorithm: its key is a random secret, not a key pair")]
    Hmac(Algorithm),
    #[error("RSA keys must be 2048, 3072 or 4096 bits, not {0}")]
    RsaSize(u32),
    #[error("generating the key pair failed")]
    Crypto,
}

impl From<aws_lc_rs::error::Unspecified> for KeygenError {
    fn from(_: aws_lc_rs::error::Unspecified) -> KeygenError {
        KeygenError::Crypto
    }
}

pub struct GeneratedKeyPair {
    pub private_pem: String,
    pub public_pem: String,
}

/// A fresh key pair for `algorithm`; `rsa_bits` applies to RS* and PS* only.
pub fn generate_key_pair(
    algorithm: Algorithm,
    rsa_bits: u32,
) -> Result<GeneratedKeyPair, KeygenError> {
    if is_hmac(algorithm) {
        return Err(KeygenError::Hmac(algorithm));
    }
    let (private_der, public_der) = match algorithm_family(algorithm) {
        // PKCS#8 v1 (no embedded public key): the form jsonwebtoken and OpenSSL read.
        Family::Ed => {
            let pair = Ed25519KeyPair::generate()?;
            let private: Pkcs8V1Der = pair.as_der()?;
            let public: PublicKeyX509Der = pair.public_key().as_der()?;
            (private.as_ref().to_vec(), public.as_ref().to_vec())
        }
        Family::Ec => {
            let curve = if algorithm == Algorithm::ES384 {
                &ECDSA_P384_SHA384_FIXED_SIGNING
            } else {
                &ECDSA_P256_SHA256_FIXED_SIGNING
            };
            let pair = EcdsaKeyPair::generate(curve)?;
            let private = pair.to_pkcs8v1()?;
            let public: PublicKeyX509Der = pair.public_key().as_der()?;
            (private.as_ref().to_vec(), public.as_ref().to_vec())
        }
        Family::Rsa => {
            let size = match rsa_bits {
                2048 => KeySize::Rsa2048,
                3072 => KeySize::Rsa3072,
                4096 => KeySize::Rsa4096,
                other => return Err(KeygenError::RsaSize(other)),
            };
            let pair = RsaKeyPair::generate(size)?;
            let private: Pkcs8V1Der = pair.as_der()?;
            let public: PublicKeyX509Der = pair.public_key().as_der()?;
            (private.as_ref().to_vec(), public.as_ref().to_vec())
        }
    };
    Ok(GeneratedKeyPair {
        private_pem: pem("PRIVATE KEY", &private_der),
        public_pem: pem("PUBLIC KEY", &public_der),
    })
}

/// RFC 7468 text encoding: base64 in 64-character lines between the labels.
fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut text = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        text.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        text.push('\n');
    }
    text.push_str(&format!("-----END {label}-----\n"));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_lines_are_64_characters() {
        let text = pem("PUBLIC KEY", &[7u8; 100]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "-----BEGIN PUBLIC KEY-----");
        assert_eq!(lines[1].len(), 64);
        assert_eq!(lines.last().copied(), Some("-----END PUBLIC KEY-----"));
    }

    #[test]
    fn hmac_has_no_key_pair() {
        assert!(matches!(
            generate_key_pair(Algorithm::HS256, 2048),
            Err(KeygenError::Hmac(_))
        ));
    }
}
