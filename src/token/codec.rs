//! Turning claims into signed compact JWS and back: signature, algorithm, `kid`, claim types,
//! expiry (against the injected clock, with the configured leeway), `iss` and `aud`.

use jsonwebtoken::{Header, decode, decode_header, encode};
use serde_json::{Map, Value};

use super::TokenError;
use super::claims::{ClaimNames, Claims};
use super::keys::KeySet;
use crate::clock::SharedClock;
use crate::config::JwtSettings;

pub struct TokenCodec {
    keys: KeySet,
    names: ClaimNames,
    issuer: Option<String>,
    audience: Option<String>,
    leeway_secs: i64,
    max_token_bytes: usize,
    clock: SharedClock,
}

#[derive(Debug, thiserror::Error)]
#[error("signing a token failed: {0}")]
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
            leeway_secs: jwt.leeway.as_secs() as i64,
            max_token_bytes: jwt.max_token_bytes,
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
        let key = self.keys.signing();
        let mut header = Header::new(key.algorithm);
        header.kid = Some(key.kid.clone());
        Ok(encode(&header, &self.names.wire(claims), &key.key)?)
    }

    /// Verifies `token` and returns its claims; does not consult the revocation store.
    pub fn decode(&self, token: &str) -> Result<Claims, TokenError> {
        if token.len() > self.max_token_bytes {
            return Err(TokenError::Invalid);
        }
        let header = decode_header(token).map_err(|_| TokenError::Invalid)?;
        if header
            .typ
            .as_deref()
            .is_some_and(|typ| !typ.eq_ignore_ascii_case("JWT"))
        {
            return Err(TokenError::Invalid);
        }
        let kid = header.kid.as_deref().ok_or(TokenError::Invalid)?;
        let key = self.keys.verifying(kid).ok_or(TokenError::Invalid)?;
        let mut payload = decode::<Map<String, Value>>(token, &key.key, &key.validation)
            .map_err(|_| TokenError::Invalid)?
            .claims;
        let audience = payload.remove("aud");
        let claims = self.names.read(payload)?;
        self.check_issuer_and_audience(&claims, audience.as_ref())?;
        if self.clock.now_secs() > claims.exp.saturating_add(self.leeway_secs) {
            return Err(TokenError::Expired);
        }
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
