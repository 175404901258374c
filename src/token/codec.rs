//! Turning claims into signed compact JWS and back: signature, algorithm, `kid`, claim types,
//! expiry (against the injected clock, with the configured leeway), `iss` and `aud`.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use super::TokenError;
use super::claims::{ClaimNames, Claims, TokenType};
use super::header::JoseHeader;
use super::keys::KeySet;
use super::verified::VerifiedTokens;
use crate::clock::{SharedClock, UnixSecs};
use crate::config::JwtSettings;

pub struct TokenCodec {
    keys: KeySet,
    names: ClaimNames,
    issuer: Option<String>,
    audience: Option<String>,
    leeway: Duration,
    max_token_bytes: usize,
    verified: VerifiedTokens,
    clock: SharedClock,
}

#[derive(Debug, thiserror::Error)]
#[error("signing a token failed")]
pub struct SignError(#[from] jsonwebtoken::errors::Error);

impl TokenCodec {
    pub fn new(keys: KeySet, jwt: &JwtSettings, clock: SharedClock) -> TokenCodec {
        TokenCodec {
            keys,
            names: ClaimNames {
                user_id: jwt.user_id_claim.clone(),
                token_type: jwt.token_type_claim.clone(),
            },
            issuer: jwt.issuer.clone(),
            audience: jwt.audience.clone(),
            leeway: jwt.leeway,
            max_token_bytes: jwt.max_token_bytes,
            verified: VerifiedTokens::new(jwt.verified_cache_bytes),
            clock,
        }
    }

    pub fn keys(&self) -> &KeySet {
        &self.keys
    }

    pub fn issuer(&self) -> Option<&str> {
        self.issuer.as_deref()
    }

    pub fn audience(&self) -> Option<&str> {
        self.audience.as_deref()
    }

    pub fn sign(&self, claims: &Claims) -> Result<String, SignError> {
        let payload = serde_json::to_vec(&self.names.wire(claims))
            .map_err(jsonwebtoken::errors::Error::from)?;
        Ok(self.keys.signing().sign(&payload)?)
    }

    /// As [`TokenCodec::decode`], for a token that must be of type `expected`.
    pub fn decode_as(&self, token: &str, expected: TokenType) -> Result<Claims, TokenError> {
        let claims = self.decode(token)?;
        if claims.token_type != expected {
            return Err(TokenError::WrongType);
        }
        Ok(claims)
    }

    /// Verifies `token` and returns its claims; does not consult the revocation store. An
    /// access token checked before is taken from the cache of verified tokens; its expiry is
    /// checked again.
    pub fn decode(&self, token: &str) -> Result<Claims, TokenError> {
        if let Some(claims) = self.verified.get(token) {
            return self.unexpired(claims);
        }
        let claims = self.unexpired(self.check(token)?)?;
        if claims.token_type == TokenType::Access {
            self.verified.insert(token, &claims);
        }
        Ok(claims)
    }

    /// The `exp` of a token this request has just issued, or checked in full, read without
    /// checking it again: the refresh cookie lives as long as its token, and decoding it a
    /// second time cost the cookie refresh a signature check (40 µs with EdDSA).
    pub fn expiry_of_checked(&self, token: &str) -> Result<UnixSecs, TokenError> {
        #[derive(serde::Deserialize)]
        struct Expiry {
            exp: i64,
        }
        let payload = token.split('.').nth(1).ok_or(TokenError::Invalid)?;
        let json = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| TokenError::Invalid)?;
        let Expiry { exp } = serde_json::from_slice(&json).map_err(|_| TokenError::Invalid)?;
        Ok(UnixSecs(exp))
    }

    /// Valid through its `exp` second (and the leeway), as SimpleJWT's are.
    fn unexpired(&self, claims: Claims) -> Result<Claims, TokenError> {
        if self.clock.now().secs() > claims.exp + self.leeway {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }

    /// The token's claims once its signature, `kid`, algorithm, claim types, `iss` and `aud`
    /// are checked (not its expiry).
    ///
    /// The steps of `jsonwebtoken::decode`, each done once: it parses the header twice and the
    /// claims twice, and this is every verify's hot path. The signature is checked with the key
    /// the `kid` names, in its algorithm only (`VerifyingKey::verifies`).
    fn check(&self, token: &str) -> Result<Claims, TokenError> {
        if token.len() > self.max_token_bytes {
            return Err(TokenError::Invalid);
        }
        // Exactly three parts: `header.payload.signature`.
        let mut parts = token.split('.');
        let (Some(encoded_header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Invalid);
        };
        let header = JoseHeader::read(encoded_header)?;
        let key = self
            .keys
            .verifying(&header.kid)
            .ok_or(TokenError::Invalid)?;
        if header.alg != key.algorithm {
            return Err(TokenError::Invalid);
        }
        let signed = &token[..encoded_header.len() + 1 + payload.len()];
        if !key.verifies(signature, signed.as_bytes()) {
            return Err(TokenError::Invalid);
        }
        let json = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| TokenError::Invalid)?;
        let (claims, audience) = self.names.read(&json)?;
        self.check_issuer_and_audience(&claims, audience.as_ref())?;
        Ok(claims)
    }

    fn check_issuer_and_audience(
        &self,
        claims: &Claims,
        aud: Option<&Value>,
    ) -> Result<(), TokenError> {
        if let Some(issuer) = &self.issuer
            && claims.iss.as_deref() != Some(issuer.as_str())
        {
            return Err(TokenError::Invalid);
        }
        if let Some(audience) = &self.audience {
            let matches = match aud {
                Some(Value::String(aud)) => aud == audience,
                Some(Value::Array(list)) => list.iter().any(|aud| aud.as_str() == Some(audience)),
                _ => false,
            };
            if !matches {
                return Err(TokenError::Invalid);
            }
        }
        Ok(())
    }
}

/// The token parser under arbitrary input: it refuses everything but intact tokens of ours, and
/// never panics, whatever the header, payload or signature hold.
#[cfg(test)]
mod properties {
    use std::sync::Arc;

    use jsonwebtoken::{Header, encode};
    use proptest::prelude::*;
    use serde_json::{Map, Value, json};

    use super::TokenCodec;
    use crate::clock::{SystemClock, UnixSecs};
    use crate::config::Settings;
    use crate::token::KeySet;
    use crate::token::claims::Claims;

    fn codec() -> TokenCodec {
        let jwt = Settings::defaults().jwt;
        TokenCodec::new(
            KeySet::from_settings(&jwt).unwrap(),
            &jwt,
            Arc::new(SystemClock),
        )
    }

    fn valid_token(codec: &TokenCodec) -> String {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims::sample_access(UnixSecs(now));
        codec.sign(&claims).unwrap()
    }

    /// Any JSON, nested a little: what a forger may put in a payload.
    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            ".{0,40}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(".{0,12}", inner, 0..6)
                    .prop_map(|map| Value::Object(map.into_iter().collect())),
            ]
        })
    }

    /// A payload that has every claim name jwtd reads, each with a value of any type.
    fn claim_shaped_payload() -> impl Strategy<Value = Map<String, Value>> {
        let names = [
            "token_type",
            "exp",
            "iat",
            "jti",
            "user_id",
            "sub",
            "sid",
            "scope",
        ];
        prop::collection::vec(any_json(), names.len()).prop_map(move |values| {
            names
                .iter()
                .map(|name| name.to_string())
                .zip(values)
                .collect()
        })
    }

    /// A token signed correctly with our key and algorithm, but whose header names another
    /// algorithm, is refused: the header must name the key's own.
    #[test]
    fn a_header_naming_another_algorithm_is_refused() {
        use base64::Engine;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;

        let codec = codec();
        let token = valid_token(&codec);
        let key = codec.keys().signing();
        let payload = token.split('.').nth(1).unwrap();
        let header = |alg: &str| {
            let json = json!({"alg": alg, "typ": "JWT", "kid": key.kid});
            URL_SAFE_NO_PAD.encode(json.to_string())
        };
        let resigned = |alg: &str| {
            let message = format!("{}.{payload}", header(alg));
            let signature =
                jsonwebtoken::crypto::sign(message.as_bytes(), &key.key, key.algorithm).unwrap();
            format!("{message}.{signature}")
        };
        assert!(codec.decode(&resigned("HS256")).is_ok());
        for alg in ["HS384", "HS512", "RS256", "EdDSA"] {
            assert!(codec.decode(&resigned(alg)).is_err(), "{alg}");
        }
    }

    #[test]
    fn the_expiry_of_a_checked_token_is_its_exp() {
        let codec = codec();
        let token = valid_token(&codec);
        let exp = codec.decode(&token).unwrap().exp;
        assert_eq!(codec.expiry_of_checked(&token).unwrap(), exp);
        assert!(codec.expiry_of_checked("a.b.c").is_err());
        assert!(codec.expiry_of_checked("no dots").is_err());
    }

    /// Once a token is in the cache of verified tokens, any other text (here each payload
    /// character changed in turn) is still checked in full, and refused.
    #[test]
    fn a_cached_token_changed_anywhere_is_refused() {
        let codec = codec();
        let token = valid_token(&codec);
        assert!(codec.decode(&token).is_ok());
        assert!(codec.decode(&token).is_ok());
        let payload = token.find('.').unwrap() + 1..token.rfind('.').unwrap();
        for at in payload {
            let mut forged = token.clone().into_bytes();
            forged[at] = if forged[at] == b'A' { b'B' } else { b'A' };
            let forged = String::from_utf8(forged).unwrap();
            assert!(codec.decode(&forged).is_err(), "changed at {at}");
        }
        assert!(codec.decode(&token).is_ok());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn arbitrary_text_is_refused(text in "\\PC{0,400}") {
            prop_assert!(codec().decode(&text).is_err());
        }

        #[test]
        fn three_base64url_segments_of_garbage_are_refused(
            header in "[A-Za-z0-9_-]{0,120}",
            payload in "[A-Za-z0-9_-]{0,300}",
            signature in "[A-Za-z0-9_-]{0,100}",
        ) {
            let token = format!("{header}.{payload}.{signature}");
            prop_assert!(codec().decode(&token).is_err());
        }

        #[test]
        fn a_valid_token_with_one_character_changed_is_refused(
            at in any::<prop::sample::Index>(),
            replacement in "[A-Za-z0-9_.=+/-]",
        ) {
            let codec = codec();
            let token = valid_token(&codec);
            prop_assert!(codec.decode(&token).is_ok());
            let at = at.index(token.len());
            let mut changed = token.clone();
            changed.replace_range(at..=at, &replacement);
            prop_assume!(changed != token);
            prop_assert!(codec.decode(&changed).is_err(), "{changed}");
        }

        /// Correctly signed, with our key and `kid`, but any payload: refused unless it holds
        /// every claim with its type, never a panic.
        #[test]
        fn a_signed_payload_of_any_shape_is_read_or_refused(
            payload in prop_oneof![
                any_json().prop_map(|value| json!({ "claims": value })),
                claim_shaped_payload().prop_map(Value::Object),
            ],
        ) {
            let codec = codec();
            let key = codec.keys().signing();
            let mut header = Header::new(key.algorithm);
            header.kid = Some(key.kid.clone());
            let token = encode(&header, &payload, &key.key).unwrap();
            if let Ok(claims) = codec.decode(&token) {
                prop_assert_eq!(Some(&json!(claims.jti)), payload.get("jti"));
                prop_assert!(payload["exp"].is_i64());
            }
        }
    }
}
