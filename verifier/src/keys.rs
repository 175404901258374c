//! jwtd's public keys: the JWKS, fetched at start, every few minutes, and again (rate-limited)
//! when a token names a `kid` not in it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{RwLock, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, crypto};
use serde_json::{Map, Value};
use tokio::sync::Notify;

use crate::claims::{Checks, Claims};
use crate::feed::{Endpoints, back_off};
use crate::{Shared, VerifyError};

pub(crate) struct Keys {
    by_kid: RwLock<HashMap<String, (DecodingKey, Algorithm)>>,
    /// The shared secret, set up once per HMAC algorithm: jsonwebtoken derives the key again for
    /// every token it verifies.
    hmac: Option<HmacKeys>,
    loaded: std::sync::atomic::AtomicBool,
    fetches: AtomicU64,
    /// Asks the JWKS task for a fetch (an unknown `kid`).
    wanted: Notify,
}

impl Keys {
    pub(crate) fn new(hmac_secret: Option<&[u8]>) -> Keys {
        Keys {
            by_kid: RwLock::new(HashMap::new()),
            hmac: hmac_secret.map(HmacKeys::new),
            loaded: false.into(),
            fetches: AtomicU64::new(0),
            wanted: Notify::new(),
        }
    }

    pub(crate) fn loaded(&self) -> bool {
        self.hmac.is_some() || self.loaded.load(Ordering::Acquire)
    }

    pub(crate) fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// Signature, expiry, `iss`/`aud` when configured, the access type; from memory.
    pub(crate) fn decode(&self, token: &str, checks: &Checks) -> Result<Claims, VerifyError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Invalid)?;
        let payload = match header.alg {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
                let keys = self.hmac.as_ref().ok_or(VerifyError::UnknownKey)?;
                decode(token, &Signer::Hmac(keys.of(header.alg)), checks)?
            }
            alg => {
                let kid = header.kid.ok_or(VerifyError::Invalid)?;
                let keys = self.by_kid.read().unwrap_or_else(|e| e.into_inner());
                let Some((key, key_alg)) = keys.get(&kid) else {
                    self.wanted.notify_one();
                    return Err(VerifyError::UnknownKey);
                };
                if *key_alg != alg {
                    return Err(VerifyError::Invalid);
                }
                decode(token, &Signer::Public(key, alg), checks)?
            }
        };
        Claims::read(payload, checks)
    }

    fn install(&self, set: JwkSet) {
        let keys = set
            .keys
            .iter()
            .filter_map(|jwk| {
                let kid = jwk.common.key_id.clone()?;
                let alg = jwk.common.key_algorithm?.to_string().parse().ok()?;
                Some((kid, (DecodingKey::from_jwk(jwk).ok()?, alg)))
            })
            .collect();
        *self.by_kid.write().unwrap_or_else(|e| e.into_inner()) = keys;
        self.loaded.store(true, Ordering::Release);
    }
}

/// The HMAC keys of one secret, for each algorithm a token may name.
struct HmacKeys([hmac::Key; 3]);

impl HmacKeys {
    fn new(secret: &[u8]) -> HmacKeys {
        let key = |algorithm| hmac::Key::new(algorithm, secret);
        HmacKeys([
            key(hmac::HMAC_SHA256),
            key(hmac::HMAC_SHA384),
            key(hmac::HMAC_SHA512),
        ])
    }

    fn of(&self, alg: Algorithm) -> &hmac::Key {
        match alg {
            Algorithm::HS384 => &self.0[1],
            Algorithm::HS512 => &self.0[2],
            _ => &self.0[0],
        }
    }
}

/// What checks a token's signature.
enum Signer<'a> {
    Hmac(&'a hmac::Key),
    Public(&'a DecodingKey, Algorithm),
}

impl Signer<'_> {
    /// In constant time for HMAC.
    fn signed(&self, signature: &str, signed: &[u8]) -> bool {
        match self {
            Signer::Hmac(key) => URL_SAFE_NO_PAD
                .decode(signature)
                .is_ok_and(|tag| hmac::verify(key, signed, &tag).is_ok()),
            Signer::Public(key, alg) => {
                crypto::verify(signature, signed, key, *alg).unwrap_or(false)
            }
        }
    }
}

/// The steps of `jsonwebtoken::decode` (which parses the header and the claims twice each),
/// each done once: the signature with the key the header named, the claims, then the
/// registered claims jsonwebtoken's `Validation` would check (`exp` with no leeway, `iss` and
/// `aud` when configured).
fn decode(
    token: &str,
    signer: &Signer,
    checks: &Checks,
) -> Result<Map<String, Value>, VerifyError> {
    let (signed, signature) = token.rsplit_once('.').ok_or(VerifyError::Invalid)?;
    let (_, payload) = signed.split_once('.').ok_or(VerifyError::Invalid)?;
    if payload.contains('.') {
        return Err(VerifyError::Invalid);
    }
    if !signer.signed(signature, signed.as_bytes()) {
        return Err(VerifyError::Invalid);
    }
    let claims: Map<String, Value> = URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|json| serde_json::from_slice(&json).ok())
        .ok_or(VerifyError::Invalid)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    if registered_claims_hold(&claims, checks, now) {
        Ok(claims)
    } else {
        Err(VerifyError::Invalid)
    }
}

/// Unexpired at `now` (valid through its `exp` second), from the configured issuer, for the
/// configured audience (one of a list will do).
fn registered_claims_hold(claims: &Map<String, Value>, checks: &Checks, now: u64) -> bool {
    let unexpired = claims
        .get("exp")
        .and_then(Value::as_u64)
        .is_some_and(|exp| now <= exp);
    let issuer_matches = checks
        .issuer
        .as_deref()
        .is_none_or(|issuer| claims.get("iss").and_then(Value::as_str) == Some(issuer));
    let audience_matches =
        checks
            .audience
            .as_deref()
            .is_none_or(|audience| match claims.get("aud") {
                Some(Value::String(aud)) => aud == audience,
                Some(Value::Array(list)) => list.iter().any(|aud| aud.as_str() == Some(audience)),
                _ => false,
            });
    unexpired && issuer_matches && audience_matches
}

/// The JWKS task: fetches at start (retrying with back-off), every `refresh`, and when asked
/// for an unknown `kid`, never twice within `min_interval`.
pub(crate) async fn follow_jwks(
    shared: Weak<Shared>,
    endpoints: Endpoints,
    refresh: Duration,
    min_interval: Duration,
) {
    let mut failures = 0;
    let mut last_fetch: Option<Instant> = None;
    loop {
        let Some(strong) = shared.upgrade() else {
            return;
        };
        if let Some(at) = last_fetch {
            let earliest = at + min_interval;
            tokio::time::sleep_until(earliest.into()).await;
        }
        last_fetch = Some(Instant::now());
        strong.keys.fetches.fetch_add(1, Ordering::Relaxed);
        match endpoints.jwks().await {
            Ok(set) => {
                failures = 0;
                strong.keys.install(set);
                strong.report();
                // The task holds the verifier while it waits: it is aborted with the last clone.
                let wanted = strong.keys.wanted.notified();
                let _ = tokio::time::timeout(refresh, wanted).await;
            }
            Err(err) => {
                tracing::warn!(error = %err, "fetching jwtd's JWKS failed");
                drop(strong);
                failures += 1;
                back_off(failures).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    use super::*;

    const SECRET: &[u8] = b"a secret of some thirty-two bytes!";

    fn checks(issuer: Option<&str>, audience: Option<&str>) -> Checks {
        Checks {
            issuer: issuer.map(str::to_owned),
            audience: audience.map(str::to_owned),
            user_id_claim: "user_id".into(),
            token_type_claim: "token_type".into(),
        }
    }

    fn now() -> i64 {
        let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        i64::try_from(since.as_secs()).unwrap()
    }

    fn signed(claims: &Value) -> String {
        encode(
            &Header::default(),
            claims,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap()
    }

    fn verdict(token: &str, checks: &Checks) -> Result<(), VerifyError> {
        let keys = HmacKeys::new(SECRET);
        decode(token, &Signer::Hmac(keys.of(Algorithm::HS256)), checks).map(|_| ())
    }

    #[test]
    fn the_claims_jsonwebtoken_validated_are_still_checked() {
        let none = checks(None, None);
        let live = signed(&json!({"exp": now() + 60, "iss": "jwtd", "aud": ["a", "b"]}));
        assert!(verdict(&live, &none).is_ok());
        assert!(verdict(&live, &checks(Some("jwtd"), Some("b"))).is_ok());
        assert!(verdict(&live, &checks(Some("other"), None)).is_err());
        assert!(verdict(&live, &checks(None, Some("c"))).is_err());
        let one_audience = signed(&json!({"exp": now() + 60, "aud": "a"}));
        assert!(verdict(&one_audience, &checks(None, Some("a"))).is_ok());
        assert!(verdict(&one_audience, &checks(Some("jwtd"), None)).is_err());
        // Valid through its `exp` second, not after; `exp` is required.
        assert!(verdict(&signed(&json!({"exp": now() + 1})), &none).is_ok());
        assert!(verdict(&signed(&json!({"exp": now() - 1})), &none).is_err());
        assert!(verdict(&signed(&json!({"exp": "soon"})), &none).is_err());
        assert!(verdict(&signed(&json!({"sub": "1"})), &none).is_err());
    }

    #[test]
    fn each_hmac_algorithm_verifies_with_its_own_key_only() {
        let keys = HmacKeys::new(SECRET);
        let claims = json!({"exp": now() + 60});
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            let token = encode(
                &Header::new(alg),
                &claims,
                &EncodingKey::from_secret(SECRET),
            );
            let token = token.unwrap();
            let verdict =
                |key_alg| decode(&token, &Signer::Hmac(keys.of(key_alg)), &checks(None, None));
            assert!(verdict(alg).is_ok(), "{alg:?}");
            let other = if alg == Algorithm::HS256 {
                Algorithm::HS512
            } else {
                Algorithm::HS256
            };
            assert!(verdict(other).is_err(), "{alg:?}");
        }
    }

    #[test]
    fn a_token_altered_or_of_other_than_three_parts_is_refused() {
        let none = checks(None, None);
        let token = signed(&json!({"exp": now() + 60, "sub": "1"}));
        let (head, rest) = token.split_once('.').unwrap();
        let (_, signature) = rest.split_once('.').unwrap();
        let forged_payload = URL_SAFE_NO_PAD.encode(br#"{"exp":9999999999,"sub":"2"}"#);
        assert!(verdict(&format!("{head}.{forged_payload}.{signature}"), &none).is_err());
        assert!(verdict(&format!("{token}.x"), &none).is_err());
        assert!(verdict(&format!("{head}.{signature}"), &none).is_err());
        assert!(verdict(&token, &none).is_ok());
    }
}
