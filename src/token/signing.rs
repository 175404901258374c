//! The key that signs every token this instance issues, with what is the same for all of them
//! prepared once: the encoded header, and an HMAC secret's key schedule (jsonwebtoken's
//! `encode` serialises the header and sets the secret up again for every token, a sixth of a
//! refresh's instructions with its two tokens, by callgrind).

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};

use super::verifying::hmac_algorithm;

pub struct SigningKey {
    pub kid: String,
    pub algorithm: Algorithm,
    pub key: EncodingKey,
    /// `base64url(header)`: `typ`, `alg` and `kid`, as jsonwebtoken writes them.
    encoded_header: String,
    /// An HMAC secret, set up once.
    hmac: Option<hmac::Key>,
}

impl SigningKey {
    /// The key of an HMAC secret (`algorithm` is HS256, HS384 or HS512).
    pub fn hmac(kid: String, algorithm: Algorithm, secret: &[u8]) -> SigningKey {
        let mut key = SigningKey::new(kid, algorithm, EncodingKey::from_secret(secret));
        key.hmac = hmac_algorithm(algorithm).map(|hmac| hmac::Key::new(hmac, secret));
        key
    }

    /// A private key, used through jsonwebtoken.
    pub fn new(kid: String, algorithm: Algorithm, key: EncodingKey) -> SigningKey {
        let mut header = Header::new(algorithm);
        header.kid = Some(kid.clone());
        let json = serde_json::to_vec(&header).expect("a header serialises");
        SigningKey {
            kid,
            algorithm,
            key,
            encoded_header: URL_SAFE_NO_PAD.encode(json),
            hmac: None,
        }
    }

    /// The compact JWS of `payload` (the claims' JSON): header, payload and signature.
    pub fn sign(&self, payload: &[u8]) -> Result<String, jsonwebtoken::errors::Error> {
        let mut token = String::with_capacity(self.encoded_header.len() + payload.len() * 2);
        token.push_str(&self.encoded_header);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(payload, &mut token);
        let signature = match &self.hmac {
            Some(key) => URL_SAFE_NO_PAD.encode(hmac::sign(key, token.as_bytes())),
            None => jsonwebtoken::crypto::sign(token.as_bytes(), &self.key, self.algorithm)?,
        };
        token.push('.');
        token.push_str(&signature);
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Byte for byte what jsonwebtoken's `encode` makes of the same claims, on every HMAC
    /// algorithm (the asymmetric ones sign through jsonwebtoken itself).
    #[test]
    fn tokens_are_those_jsonwebtoken_would_sign() {
        let claims = serde_json::json!({"sub": "alice", "exp": 2_000_000_000u64, "n": [1, "ü"]});
        let secret = b"a secret of some thirty-two bytes";
        for algorithm in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            let key = SigningKey::hmac("k1".into(), algorithm, secret);
            let mut header = Header::new(algorithm);
            header.kid = Some("k1".into());
            let expected =
                jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(secret)).unwrap();
            let payload = serde_json::to_vec(&claims).unwrap();
            assert_eq!(key.sign(&payload).unwrap(), expected, "{algorithm:?}");
        }
    }
}
