//! A key that verifies signatures, in one algorithm only (no algorithm confusion).

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};

pub struct VerifyingKey {
    key: DecodingKey,
    /// The only algorithm this key verifies: a token whose header names another is refused.
    pub algorithm: Algorithm,
    /// An HMAC secret, set up once: jsonwebtoken derives the key again for every token it
    /// verifies (two SHA-256 blocks of the eleven or so a verify hashes).
    hmac: Option<hmac::Key>,
}

impl VerifyingKey {
    /// The key of an HMAC secret (`algorithm` is HS256, HS384 or HS512).
    pub fn hmac(algorithm: Algorithm, secret: &[u8]) -> VerifyingKey {
        VerifyingKey {
            key: DecodingKey::from_secret(secret),
            algorithm,
            hmac: hmac_algorithm(algorithm).map(|hmac| hmac::Key::new(hmac, secret)),
        }
    }

    /// A public key, checked by jsonwebtoken.
    pub fn public(key: DecodingKey, algorithm: Algorithm) -> VerifyingKey {
        VerifyingKey {
            key,
            algorithm,
            hmac: None,
        }
    }

    /// Whether `signature` (base64url, as in the token) signs `signed` with this key, in
    /// constant time.
    pub fn verifies(&self, signature: &str, signed: &[u8]) -> bool {
        match &self.hmac {
            Some(key) => URL_SAFE_NO_PAD
                .decode(signature)
                .is_ok_and(|tag| hmac::verify(key, signed, &tag).is_ok()),
            None => jsonwebtoken::crypto::verify(signature, signed, &self.key, self.algorithm)
                .unwrap_or(false),
        }
    }
}

/// aws-lc's HMAC algorithm for a JWT HMAC algorithm.
pub(super) fn hmac_algorithm(algorithm: Algorithm) -> Option<hmac::Algorithm> {
    match algorithm {
        Algorithm::HS256 => Some(hmac::HMAC_SHA256),
        Algorithm::HS384 => Some(hmac::HMAC_SHA384),
        Algorithm::HS512 => Some(hmac::HMAC_SHA512),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{EncodingKey, Header};

    use super::*;

    const SECRET: &[u8] = b"thirty-two bytes of test secret!";

    /// The key set up once, or (for comparison) jsonwebtoken's own path with the same secret.
    fn key(algorithm: Algorithm, set_up_once: bool) -> VerifyingKey {
        if set_up_once {
            VerifyingKey::hmac(algorithm, SECRET)
        } else {
            VerifyingKey::public(DecodingKey::from_secret(SECRET), algorithm)
        }
    }

    /// `header.payload` and the signature of a token signed by jsonwebtoken.
    fn signed_token(algorithm: Algorithm, sub: &str) -> (String, String) {
        let claims = serde_json::json!({ "sub": sub });
        let token = jsonwebtoken::encode(
            &Header::new(algorithm),
            &claims,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        let (signed, signature) = token.rsplit_once('.').unwrap();
        (signed.to_owned(), signature.to_owned())
    }

    #[test]
    fn the_key_set_up_once_agrees_with_jsonwebtoken_on_every_hmac_algorithm() {
        for algorithm in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            let (signed, signature) = signed_token(algorithm, "1");
            let (other, _) = signed_token(algorithm, "2");
            let truncated = &signature[..signature.len() - 2];
            for set_up_once in [true, false] {
                let key = key(algorithm, set_up_once);
                assert!(key.verifies(&signature, signed.as_bytes()), "{algorithm:?}");
                assert!(!key.verifies(&signature, other.as_bytes()), "{algorithm:?}");
                assert!(!key.verifies(truncated, signed.as_bytes()), "{algorithm:?}");
                let garbled = key.verifies("not base64!", signed.as_bytes());
                assert!(!garbled, "{algorithm:?}");
            }
            // Another algorithm's key refuses the signature.
            let other_algorithm = if algorithm == Algorithm::HS256 {
                Algorithm::HS512
            } else {
                Algorithm::HS256
            };
            assert!(!key(other_algorithm, true).verifies(&signature, signed.as_bytes()));
        }
    }
}
