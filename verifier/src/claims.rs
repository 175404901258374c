//! The claims of a verified token, and what `verify` checks beyond the signature.

use serde_json::{Map, Value};

use crate::VerifyError;

/// What `verify` checks besides the signature and the expiry.
pub(crate) struct Checks {
    pub(crate) issuer: Option<String>,
    pub(crate) audience: Option<String>,
    pub(crate) user_id_claim: String,
    pub(crate) token_type_claim: String,
}

/// A verified access token.
#[derive(Debug, Clone, PartialEq)]
pub struct Claims {
    /// The user's id, or a client-credentials token's client id.
    pub sub: String,
    pub jti: String,
    /// The login session (a UUIDv7).
    pub sid: String,
    pub exp: i64,
    pub iat: i64,
    /// A client-credentials token: `sub` is the OAuth client itself.
    pub subject_is_client: bool,
    pub scope: Option<String>,
    pub client_id: Option<String>,
    /// `perms` (when jwtd writes it: `jwt.access_token_extra_claims`).
    pub perms: Vec<String>,
    /// Every claim, as signed.
    pub raw: Map<String, Value>,
}

impl Claims {
    pub(crate) fn read(raw: Map<String, Value>, checks: &Checks) -> Result<Claims, VerifyError> {
        let text = |name: &str| raw.get(name).and_then(Value::as_str).map(str::to_owned);
        let number = |name: &str| raw.get(name).and_then(Value::as_i64);
        if text(&checks.token_type_claim).as_deref() != Some("access") {
            return Err(VerifyError::Invalid);
        }
        let sub = text("sub").ok_or(VerifyError::Invalid)?;
        let subject_is_client = !raw.contains_key(&checks.user_id_claim);
        let perms = match raw.get("perms") {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|p| p.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        Ok(Claims {
            jti: text("jti").ok_or(VerifyError::Invalid)?,
            sid: text("sid").ok_or(VerifyError::Invalid)?,
            exp: number("exp").ok_or(VerifyError::Invalid)?,
            iat: number("iat").ok_or(VerifyError::Invalid)?,
            scope: text("scope"),
            client_id: text("client_id"),
            sub,
            subject_is_client,
            perms,
            raw,
        })
    }

    /// When the session started (ms), from its UUIDv7 `sid`; `None` for anything else.
    pub fn session_started_ms(&self) -> Option<i64> {
        let hex: String = self.sid.chars().filter(|c| *c != '-').collect();
        if hex.len() != 32 || hex.as_bytes()[12] != b'7' {
            return None;
        }
        i64::from_str_radix(&hex[..12], 16).ok()
    }

    /// The permission check: `Ok` when `perms` holds `perm`.
    pub fn require(&self, perm: &str) -> Result<(), VerifyError> {
        if self.perms.iter().any(|p| p == perm) {
            Ok(())
        } else {
            Err(VerifyError::MissingPermission(perm.to_owned()))
        }
    }
}
