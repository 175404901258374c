//! jwtd's public keys: the JWKS, fetched at start, every few minutes, and again (rate-limited)
//! when a token names a `kid` not in it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{RwLock, Weak};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use tokio::sync::Notify;

use crate::claims::{Checks, Claims};
use crate::feed::{Endpoints, back_off};
use crate::{Shared, VerifyError};

pub(crate) struct Keys {
    by_kid: RwLock<HashMap<String, (DecodingKey, Algorithm)>>,
    hmac: Option<DecodingKey>,
    loaded: std::sync::atomic::AtomicBool,
    fetches: AtomicU64,
    /// Asks the JWKS task for a fetch (an unknown `kid`).
    wanted: Notify,
}

impl Keys {
    pub(crate) fn new(hmac_secret: Option<&[u8]>) -> Keys {
        Keys {
            by_kid: RwLock::new(HashMap::new()),
            hmac: hmac_secret.map(DecodingKey::from_secret),
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
                let key = self.hmac.as_ref().ok_or(VerifyError::UnknownKey)?;
                decode(token, key, header.alg, checks)?
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
                decode(token, key, alg, checks)?
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

fn decode(
    token: &str,
    key: &DecodingKey,
    alg: Algorithm,
    checks: &Checks,
) -> Result<Map<String, Value>, VerifyError> {
    let mut validation = Validation::new(alg);
    // jwtd's own default leeway is 0, like SimpleJWT's; jsonwebtoken's is 60 s.
    validation.leeway = 0;
    validation.set_required_spec_claims(&["exp"]);
    match &checks.issuer {
        Some(iss) => validation.set_issuer(&[iss]),
        None => validation.iss = None,
    }
    match &checks.audience {
        Some(aud) => validation.set_audience(&[aud]),
        None => validation.validate_aud = false,
    }
    jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation)
        .map(|data| data.claims)
        .map_err(|_| VerifyError::Invalid)
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
