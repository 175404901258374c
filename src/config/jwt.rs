//! The `[jwt]` section: algorithm, keys, lifetimes and claim names.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::SigningAlgorithm;
use super::human_duration;

/// The HMAC key shipped in `config/default.toml`; refused in production.
pub const DEVELOPMENT_SIGNING_KEY: &str = "jwtd-insecure-development-key-do-not-use-in-production";

#[derive(Debug, Clone, Deserialize)]
pub struct JwtSettings {
    pub algorithm: SigningAlgorithm,
    pub signing_key: String,
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExtraClaim {
    Username,
    IsStaff,
}
