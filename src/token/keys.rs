//! Signing and verification keys, selected by `kid`. One active key signs; every key in the set
//! verifies, so asymmetric keys and rotation slot in here without touching the endpoints.

use std::collections::HashMap;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Validation};
use sha2::{Digest, Sha256};

use crate::config::JwtSettings;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("jwt.algorithm {0:?} is not supported (HS256, HS384, HS512)")]
    UnsupportedAlgorithm(String),
    #[error("jwt.signing_key must not be empty")]
    EmptySecret,
}

pub struct SigningKey {
    pub kid: String,
    pub algorithm: Algorithm,
    pub key: EncodingKey,
}

pub struct VerifyingKey {
    pub key: DecodingKey,
    /// Accepts exactly this key's algorithm. Claims (exp, iss, aud…) are checked by the codec
    /// against the injected clock, so jsonwebtoken's own claim checks are all off.
    pub validation: Validation,
}

pub struct KeySet {
    signing: SigningKey,
    verifying: HashMap<String, VerifyingKey>,
}

impl KeySet {
    pub fn from_settings(jwt: &JwtSettings) -> Result<KeySet, KeyError> {
        let algorithm = Algorithm::from_str(&jwt.algorithm)
            .ok()
            .filter(|alg| matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512))
            .ok_or_else(|| KeyError::UnsupportedAlgorithm(jwt.algorithm.clone()))?;
        if jwt.signing_key.is_empty() {
            return Err(KeyError::EmptySecret);
        }
        Ok(KeySet::hmac(algorithm, jwt.signing_key.as_bytes()))
    }

    fn hmac(algorithm: Algorithm, secret: &[u8]) -> KeySet {
        let kid = hmac_kid(algorithm, secret);
        let verifying = VerifyingKey {
            key: DecodingKey::from_secret(secret),
            validation: claim_free_validation(algorithm),
        };
        KeySet {
            signing: SigningKey {
                kid: kid.clone(),
                algorithm,
                key: EncodingKey::from_secret(secret),
            },
            verifying: HashMap::from([(kid, verifying)]),
        }
    }

    pub fn signing(&self) -> &SigningKey {
        &self.signing
    }

    pub fn verifying(&self, kid: &str) -> Option<&VerifyingKey> {
        self.verifying.get(kid)
    }
}

/// A stable, public id for an HMAC key: a digest of the algorithm and the secret. It reveals
/// nothing a token's own HMAC does not, and changes whenever the key does.
fn hmac_kid(algorithm: Algorithm, secret: &[u8]) -> String {
    let mut digest = Sha256::new();
    digest.update(format!("jwtd-hmac-kid:{algorithm:?}:").as_bytes());
    digest.update(secret);
    URL_SAFE_NO_PAD.encode(&digest.finalize()[..12])
}

fn claim_free_validation(algorithm: Algorithm) -> Validation {
    let mut validation = Validation::new(algorithm);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.leeway = 0;
    validation
}
