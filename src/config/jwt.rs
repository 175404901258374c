//! The `[jwt]` section: algorithm, keys, lifetimes and claim names.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::SigningAlgorithm;
use super::human_duration;

/// The HMAC key jwtd signs with when `jwt.signing_key` is unset. It is public (it is in the
/// source), so it is refused in production.
pub const DEVELOPMENT_SIGNING_KEY: &str = "jwtd-insecure-development-key-do-not-use-in-production";

#[derive(Debug, Clone, Deserialize)]
pub struct JwtSettings {
    pub algorithm: SigningAlgorithm,
    /// The HMAC secret; unset, [`DEVELOPMENT_SIGNING_KEY`] (see [`JwtSettings::hmac_secret`]).
    #[serde(default)]
    pub signing_key: Option<SecretString>,
    #[serde(default)]
    pub private_key_file: Option<PathBuf>,
    #[serde(default)]
    pub previous_public_key_files: Vec<PathBuf>,
    #[serde(deserialize_with = "human_duration")]
    pub access_token_lifetime: Duration,
    #[serde(deserialize_with = "human_duration")]
    pub refresh_token_lifetime: Duration,
    #[serde(deserialize_with = "human_duration")]
    pub session_lifetime: Duration,
    pub rotate_refresh_tokens: bool,
    pub blacklist_after_rotation: bool,
    #[serde(deserialize_with = "human_duration")]
    pub refresh_reuse_grace: Duration,
    pub update_last_login: bool,
    #[serde(default)]
    pub issuer: Option<String>,
    #[serde(default)]
    pub audience: Option<String>,
    #[serde(deserialize_with = "human_duration")]
    pub leeway: Duration,
    pub user_id_claim: String,
    pub token_type_claim: String,
    pub max_token_bytes: usize,
    /// How long verifiers may cache the JWKS (`Cache-Control: max-age`).
    #[serde(deserialize_with = "human_duration")]
    pub jwks_max_age: Duration,
    /// Claims added to access tokens so other services can authorise without calling back.
    #[serde(default)]
    pub access_token_extra_claims: Vec<ExtraClaim>,
    /// The largest access token issued; a user whose claims would make it longer cannot obtain
    /// or refresh one (a clear 400 and a metric). At most `max_token_bytes`.
    pub max_access_token_bytes: usize,
    /// Bytes of already-checked access tokens kept per instance, so verifying one again skips
    /// its signature and JSON (`token::verified`); 0 turns the cache off.
    pub verified_cache_bytes: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExtraClaim {
    Username,
    IsStaff,
    /// The user's group names.
    Groups,
    /// The user's effective permissions (theirs and their groups').
    Perms,
    /// Each key of the user's `app_metadata`, as a claim of its own.
    AppMetadata,
}

impl ExtraClaim {
    /// The claim's name in the token (`app_metadata` adds its keys instead).
    pub fn name(self) -> &'static str {
        match self {
            ExtraClaim::Username => "username",
            ExtraClaim::IsStaff => "is_staff",
            ExtraClaim::Groups => "groups",
            ExtraClaim::Perms => "perms",
            ExtraClaim::AppMetadata => "app_metadata",
        }
    }
}

impl JwtSettings {
    /// The HMAC key: `jwt.signing_key`, or the development key when it is unset (production
    /// refuses to start that way: `Settings::validate`).
    pub fn hmac_secret(&self) -> &[u8] {
        self.signing_key
            .as_ref()
            .map_or(DEVELOPMENT_SIGNING_KEY, |key| key.expose_secret())
            .as_bytes()
    }
}
