//! Layered configuration: the compiled-in defaults, `config/default.toml`,
//! `config/{JWTD_ENV}.toml`, then `JWTD__SECTION__KEY` environment variables.

use std::path::{Path, PathBuf};
use std::time::Duration;

use config::{Config, Environment, File, FileFormat};
use serde::{Deserialize, Deserializer};

/// The base layer, so the binary runs with no configuration files at all.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");
/// The HMAC key shipped in `config/default.toml`; refused in production.
pub const DEVELOPMENT_SIGNING_KEY: &str = "jwtd-insecure-development-key-do-not-use-in-production";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("configuration: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    /// `JWTD_ENV`, e.g. "development" or "production" (not read from the files).
    #[serde(default = "default_environment")]
    pub environment: String,
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub revocation: RevocationSettings,
    pub redis: RedisSettings,
    pub jwt: JwtSettings,
    pub password: PasswordSettings,
    pub users: UserSettings,
    pub throttle: ThrottleSettings,
    pub log: LogSettings,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ServerSettings {
    pub bind: String,
    pub max_body_bytes: usize,
    /// The request line and headers together; more gets 431 `headers_too_large`.
    pub max_header_bytes: usize,
    /// The whole request, body included; a slower one gets 408 `request_timeout`.
    #[serde(deserialize_with = "human_duration")]
    pub request_timeout: Duration,
    /// A connection with no traffic for this long is closed.
    #[serde(deserialize_with = "human_duration")]
    pub idle_timeout: Duration,
    /// The URL clients reach jwtd at (behind a proxy), for the OAuth metadata's endpoints.
    #[serde(default)]
    pub public_url: Option<String>,
    /// Proxies (IP addresses or CIDR blocks) whose `X-Forwarded-For` is believed.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
}

/// Login throttling (see `throttle`).
#[derive(Debug, Clone, Deserialize)]
pub struct ThrottleSettings {
    /// Logins one client address may attempt per `client_window`; 0 turns the limit off.
    pub client_attempts: u32,
    #[serde(deserialize_with = "human_duration")]
    pub client_window: Duration,
    /// Failed logins of one account before the back-off starts.
    pub account_free_failures: u32,
    /// The first lock; each further failure doubles it, up to `account_backoff_max`.
    #[serde(deserialize_with = "human_duration")]
    pub account_backoff: Duration,
    #[serde(deserialize_with = "human_duration")]
    pub account_backoff_max: Duration,
    /// Failures are forgotten this long after the first one (or at a successful login).
    #[serde(deserialize_with = "human_duration")]
    pub account_window: Duration,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    pub url: String,
    pub max_connections: u32,
    #[serde(deserialize_with = "human_duration")]
    pub acquire_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RevocationBackend {
    Database,
    Redis,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RevocationSettings {
    pub store: RevocationBackend,
    #[serde(deserialize_with = "human_duration")]
    pub purge_interval: Duration,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RedisSettings {
    pub url: String,
    pub cluster: bool,
    pub key_prefix: String,
    #[serde(deserialize_with = "human_duration")]
    pub connect_timeout: Duration,
    #[serde(deserialize_with = "human_duration")]
    pub response_timeout: Duration,
}

#[derive(Debug, Clone, Deserialize)]
pub struct JwtSettings {
    pub algorithm: String,
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

#[derive(Debug, Clone, Deserialize)]
pub struct PasswordSettings {
    pub argon2: Argon2Settings,
    pub max_concurrent_hashes: usize,
    #[serde(deserialize_with = "human_duration")]
    pub hash_queue_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Argon2Settings {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct UserSettings {
    pub allow_registration: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LogSettings {
    pub level: String,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

fn default_environment() -> String {
    "development".into()
}

fn human_duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    humantime::parse_duration(text.trim())
        .map_err(|e| serde::de::Error::custom(format!("{text:?} is not a duration ({e})")))
}

impl Settings {
    /// Reads the layers from `config_dir` and the process environment.
    pub fn load(config_dir: &Path) -> Result<Settings, ConfigError> {
        let environment = std::env::var("JWTD_ENV").unwrap_or_else(|_| default_environment());
        Self::load_from(config_dir, &environment, Environment::with_prefix("JWTD"))
    }

    /// The compiled-in defaults only, ignoring files and the environment (tests start from here).
    pub fn defaults() -> Settings {
        Config::builder()
            .add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml))
            .build()
            .and_then(Config::try_deserialize)
            .expect("the compiled-in config/default.toml is valid")
    }

    fn load_from(
        config_dir: &Path,
        environment: &str,
        env: Environment,
    ) -> Result<Settings, ConfigError> {
        let settings: Settings = Config::builder()
            .add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml))
            .add_source(File::from(config_dir.join("default.toml")).required(false))
            .add_source(File::from(config_dir.join(format!("{environment}.toml"))).required(false))
            // `prefix_separator` must be set explicitly: with `separator("__")` alone the prefix
            // separator becomes "__" too and JWTD_X__Y would be silently ignored.
            .add_source(
                env.prefix_separator("__")
                    .separator("__")
                    .ignore_empty(true)
                    .try_parsing(true)
                    .list_separator(",")
                    .with_list_parse_key("jwt.previous_public_key_files")
                    .with_list_parse_key("jwt.access_token_extra_claims")
                    .with_list_parse_key("server.trusted_proxies"),
            )
            .set_override("environment", environment)?
            .build()?
            .try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    pub fn is_production(&self) -> bool {
        self.environment == "production"
    }

    /// Rejects settings that would run but be wrong; in production, weak keys too.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let jwt = &self.jwt;
        let invalid = |message: String| Err(ConfigError::Invalid(message));
        if jwt.access_token_lifetime.is_zero() || jwt.refresh_token_lifetime.is_zero() {
            return invalid("jwt token lifetimes must be longer than 0s".into());
        }
        if jwt.session_lifetime < jwt.access_token_lifetime {
            return invalid(
                "jwt.session_lifetime must be at least jwt.access_token_lifetime".into(),
            );
        }
        if jwt.user_id_claim.is_empty() || jwt.token_type_claim.is_empty() {
            return invalid("jwt.user_id_claim and jwt.token_type_claim must not be empty".into());
        }
        let mut taken = vec![
            "exp",
            "iat",
            "jti",
            "sub",
            "sid",
            "iss",
            "aud",
            "scope",
            "client_id",
        ];
        if jwt
            .access_token_extra_claims
            .contains(&ExtraClaim::Username)
        {
            taken.push("username");
        }
        if jwt.access_token_extra_claims.contains(&ExtraClaim::IsStaff) {
            taken.push("is_staff");
        }
        for name in [&jwt.user_id_claim, &jwt.token_type_claim] {
            if taken.contains(&name.as_str()) || jwt.user_id_claim == jwt.token_type_claim {
                return invalid(format!(
                    "jwt claim name {name:?} clashes with another claim"
                ));
            }
        }
        if self.is_production() {
            self.validate_production_key()?;
        }
        Ok(())
    }

    fn validate_production_key(&self) -> Result<(), ConfigError> {
        let Some(hash_bytes) = hmac_output_bytes(&self.jwt.algorithm) else {
            return Ok(());
        };
        let key = &self.jwt.signing_key;
        let fix = format!(
            "set JWTD__JWT__SIGNING_KEY to a random secret of at least {hash_bytes} bytes, e.g. \
             the output of `openssl rand -base64 {hash_bytes}`"
        );
        if key == DEVELOPMENT_SIGNING_KEY {
            return Err(ConfigError::Invalid(format!(
                "JWTD_ENV=production refuses the development signing key: {fix}"
            )));
        }
        if key.len() < hash_bytes {
            return Err(ConfigError::Invalid(format!(
                "JWTD_ENV=production refuses a {}-byte signing key for {}: {fix}",
                key.len(),
                self.jwt.algorithm
            )));
        }
        Ok(())
    }
}

/// The output size of the HMAC hash, which is also the shortest acceptable key (RFC 7518 §3.2).
pub fn hmac_output_bytes(algorithm: &str) -> Option<usize> {
    match algorithm {
        "HS256" => Some(32),
        "HS384" => Some(48),
        "HS512" => Some(64),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_with(environment: &str, vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let source = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let env = Environment::with_prefix("JWTD").source(Some(source));
        Settings::load_from(Path::new("/nonexistent"), environment, env)
    }

    #[test]
    fn the_shipped_default_key_is_the_development_key() {
        assert_eq!(
            Settings::defaults().jwt.signing_key,
            DEVELOPMENT_SIGNING_KEY
        );
    }

    #[test]
    fn environment_variables_override_nested_keys() {
        let settings = load_with(
            "development",
            &[
                ("JWTD__JWT__ACCESS_TOKEN_LIFETIME", "10m"),
                ("JWTD__JWT__ROTATE_REFRESH_TOKENS", "false"),
                ("JWTD__JWT__PREVIOUS_PUBLIC_KEY_FILES", "a.pem,b.pem"),
                ("JWTD__JWT__ACCESS_TOKEN_EXTRA_CLAIMS", "username,is_staff"),
                ("JWTD__SERVER__TRUSTED_PROXIES", "10.0.0.0/8,192.168.1.7"),
            ],
        )
        .unwrap();
        assert_eq!(settings.jwt.access_token_lifetime, Duration::from_secs(600));
        assert!(!settings.jwt.rotate_refresh_tokens);
        assert_eq!(settings.jwt.previous_public_key_files.len(), 2);
        assert_eq!(
            settings.server.trusted_proxies,
            ["10.0.0.0/8", "192.168.1.7"]
        );
        assert_eq!(
            settings.jwt.access_token_extra_claims,
            [ExtraClaim::Username, ExtraClaim::IsStaff]
        );
    }

    #[test]
    fn production_refuses_the_development_key() {
        let err = load_with("production", &[]).unwrap_err().to_string();
        assert!(err.contains("development signing key"), "{err}");
        assert!(err.contains("JWTD__JWT__SIGNING_KEY"), "{err}");
    }

    #[test]
    fn production_refuses_a_key_shorter_than_the_hash() {
        let err = load_with(
            "production",
            &[
                ("JWTD__JWT__ALGORITHM", "HS512"),
                ("JWTD__JWT__SIGNING_KEY", &"k".repeat(63)),
            ],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("63-byte"), "{err}");
        let ok = load_with(
            "production",
            &[
                ("JWTD__JWT__ALGORITHM", "HS512"),
                ("JWTD__JWT__SIGNING_KEY", &"k".repeat(64)),
            ],
        );
        assert!(ok.is_ok());
    }

    #[test]
    fn clashing_claim_names_are_refused() {
        let err = load_with("development", &[("JWTD__JWT__USER_ID_CLAIM", "sub")]).unwrap_err();
        assert!(err.to_string().contains("clashes"), "{err}");
    }

    #[test]
    fn a_bad_duration_names_the_value() {
        let err = load_with("development", &[("JWTD__JWT__LEEWAY", "soon")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("soon"), "{err}");
    }
}
