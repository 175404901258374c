//! Layered configuration: the compiled-in defaults, `config/default.toml`,
//! `config/{JWTD_ENV}.toml`, then `JWTD__SECTION__KEY` environment variables.
//!
//! Closed sets are enums ([`Environment`], [`SigningAlgorithm`], …), secrets are
//! [`SecretString`](secrecy::SecretString)s that never print, and everything is checked at load
//! ([`Settings::validate`]), so a wrong setting stops the start instead of a request.

mod algorithm;
mod browser;
mod email;
mod environment;
mod jwt;
mod public_url;
mod sections;
mod validate;

use std::path::Path;
use std::time::Duration;

use ::config::{Config, File, FileFormat};
use serde::{Deserialize, Deserializer};

pub use algorithm::{SigningAlgorithm, UnsupportedAlgorithm};
pub use browser::{CookieSettings, CorsSettings};
pub use email::{EmailBackend, EmailSettings};
pub use environment::{Environment, UnknownEnvironment};
pub use jwt::{DEVELOPMENT_SIGNING_KEY, ExtraClaim, JwtSettings};
pub use public_url::{InvalidPublicUrl, PublicUrl};
pub use sections::{
    Argon2Settings, DatabaseSettings, LogFormat, LogSettings, PasswordSettings, RedisSettings,
    RevocationBackend, RevocationSettings, ServerSettings, ThrottleSettings, UserSettings,
    parse_ip_block,
};

/// The base layer, so the binary runs with no configuration files at all.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    // The config crate's message already names the key and the cause: shown, not chained, so
    // that a printed chain does not say it twice.
    #[error("configuration: {0}")]
    Load(::config::ConfigError),
    #[error("configuration: {0}")]
    Invalid(String),
}

impl From<::config::ConfigError> for ConfigError {
    fn from(err: ::config::ConfigError) -> ConfigError {
        ConfigError::Load(err)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    /// From `JWTD_ENV`, never from the files.
    #[serde(skip)]
    pub environment: Environment,
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub revocation: RevocationSettings,
    pub redis: RedisSettings,
    pub jwt: JwtSettings,
    pub password: PasswordSettings,
    pub users: UserSettings,
    pub throttle: ThrottleSettings,
    pub email: EmailSettings,
    pub log: LogSettings,
    pub cookies: CookieSettings,
    pub cors: CorsSettings,
}

fn human_duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    humantime::parse_duration(text.trim())
        .map_err(|e| serde::de::Error::custom(format!("{text:?} is not a duration ({e})")))
}

impl Settings {
    /// Reads the layers from `config_dir` and the process environment.
    pub fn load(config_dir: &Path) -> Result<Settings, ConfigError> {
        let environment = Environment::from_jwtd_env(std::env::var_os("JWTD_ENV").as_deref())?;
        Self::load_from(
            config_dir,
            environment,
            ::config::Environment::with_prefix("JWTD"),
        )
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
        environment: Environment,
        variables: ::config::Environment,
    ) -> Result<Settings, ConfigError> {
        let layer = config_dir.join(format!("{environment}.toml"));
        let mut settings: Settings = Config::builder()
            .add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml))
            .add_source(File::from(config_dir.join("default.toml")).required(false))
            .add_source(File::from(layer).required(false))
            // `prefix_separator` must be set explicitly: with `separator("__")` alone the prefix
            // separator becomes "__" too and JWTD_X__Y would be silently ignored.
            .add_source(
                variables
                    .prefix_separator("__")
                    .separator("__")
                    .ignore_empty(true)
                    .try_parsing(true)
                    .list_separator(",")
                    .with_list_parse_key("jwt.previous_public_key_files")
                    .with_list_parse_key("jwt.access_token_extra_claims")
                    .with_list_parse_key("server.trusted_proxies")
                    .with_list_parse_key("cors.allowed_origins"),
            )
            .build()?
            .try_deserialize()?;
        settings.environment = environment;
        settings.validate()?;
        Ok(settings)
    }

    pub fn is_production(&self) -> bool {
        self.environment.is_production()
    }
}

/// Loads as `jwtd` would with `JWTD_ENV=jwtd_env` (`None`: unset) and `vars` as the only
/// environment variables, from the compiled-in defaults and `config_dir`.
#[cfg(test)]
fn load_with_dir(
    config_dir: &Path,
    jwtd_env: Option<&str>,
    vars: &[(&str, &str)],
) -> Result<Settings, ConfigError> {
    let environment = Environment::from_jwtd_env(jwtd_env.map(std::ffi::OsStr::new))?;
    let source = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let variables = ::config::Environment::with_prefix("JWTD").source(Some(source));
    Settings::load_from(config_dir, environment, variables)
}

#[cfg(test)]
fn load_with(jwtd_env: Option<&str>, vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    load_with_dir(Path::new("/nonexistent"), jwtd_env, vars)
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn by_default_the_signing_key_is_unset_and_hmac_signs_with_the_development_key() {
        let settings = load_with(None, &[]).unwrap();
        assert_eq!(settings.environment, Environment::Development);
        assert_eq!(settings.jwt.algorithm, SigningAlgorithm::HS256);
        assert!(settings.jwt.signing_key.is_none());
        assert_eq!(
            settings.jwt.hmac_secret(),
            DEVELOPMENT_SIGNING_KEY.as_bytes()
        );
        assert!(Settings::defaults().jwt.signing_key.is_none());
    }

    #[test]
    fn environment_variables_override_nested_keys() {
        let settings = load_with(
            Some("development"),
            &[
                ("JWTD__JWT__ACCESS_TOKEN_LIFETIME", "10m"),
                ("JWTD__JWT__ROTATE_REFRESH_TOKENS", "false"),
                ("JWTD__JWT__PREVIOUS_PUBLIC_KEY_FILES", "a.pem,b.pem"),
                ("JWTD__JWT__ACCESS_TOKEN_EXTRA_CLAIMS", "username,is_staff"),
                ("JWTD__SERVER__TRUSTED_PROXIES", "10.0.0.0/8,192.168.1.7"),
                ("JWTD__JWT__ALGORITHM", "HS512"),
                ("JWTD__JWT__SIGNING_KEY", "an operator's key"),
                ("JWTD__DATABASE__URL", "postgres://jwtd:pw@db/jwtd"),
            ],
        )
        .unwrap();
        assert_eq!(settings.jwt.access_token_lifetime, Duration::from_secs(600));
        assert!(!settings.jwt.rotate_refresh_tokens);
        assert_eq!(settings.jwt.previous_public_key_files.len(), 2);
        assert_eq!(
            settings.server.trusted_proxies,
            [
                "10.0.0.0/8".parse().unwrap(),
                "192.168.1.7/32".parse().unwrap()
            ]
        );
        assert_eq!(
            settings.jwt.access_token_extra_claims,
            [ExtraClaim::Username, ExtraClaim::IsStaff]
        );
        assert_eq!(settings.jwt.algorithm, SigningAlgorithm::HS512);
        assert_eq!(settings.jwt.hmac_secret(), b"an operator's key");
        assert_eq!(
            settings.database.url.expose_secret(),
            "postgres://jwtd:pw@db/jwtd"
        );
    }

    #[test]
    fn the_environment_layer_is_found_under_its_canonical_name_in_any_letter_case() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("production.toml"),
            "[server]\npublic_url = \"https://auth.example.com\"\nmetrics_bind = \"127.0.0.1:9100\"\n\
             [jwt]\nalgorithm = \"HS384\"\n",
        )
        .unwrap();
        let key = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKL";
        let vars = [("JWTD__JWT__SIGNING_KEY", key)];
        for name in ["production", "Production", "PRODUCTION"] {
            let settings = load_with_dir(dir.path(), Some(name), &vars).unwrap();
            assert!(settings.is_production());
            assert_eq!(settings.jwt.algorithm, SigningAlgorithm::HS384, "{name}");
        }
    }

    #[test]
    fn an_unknown_environment_is_refused() {
        let err = load_with(Some("staging"), &[]).unwrap_err().to_string();
        assert!(err.contains("JWTD_ENV=\"staging\""), "{err}");
        assert!(err.contains("development or production"), "{err}");
    }

    #[test]
    fn an_unknown_algorithm_is_a_configuration_error_naming_it() {
        for name in ["none", "hs256"] {
            let err = load_with(None, &[("JWTD__JWT__ALGORITHM", name)])
                .unwrap_err()
                .to_string();
            assert!(err.contains(&format!("{name:?} is not supported")), "{err}");
            assert!(err.contains("jwt.algorithm"), "{err}");
        }
    }

    #[test]
    fn a_bad_trusted_proxy_is_a_configuration_error_naming_it() {
        let err = load_with(None, &[("JWTD__SERVER__TRUSTED_PROXIES", "10.0.0.0/33")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"10.0.0.0/33\" is not an IP address"),
            "{err}"
        );
    }

    #[test]
    fn secrets_never_print_in_debug() {
        let key = "a-signing-key-that-must-stay-out-of-the-logs";
        let settings = load_with(
            None,
            &[
                ("JWTD__JWT__SIGNING_KEY", key),
                (
                    "JWTD__DATABASE__URL",
                    "postgres://jwtd:db-password-1@db/jwtd",
                ),
                ("JWTD__REDIS__URL", "redis://:redis-password-2@cache:6379"),
            ],
        )
        .unwrap();
        let printed = format!("{settings:?} {settings:#?}");
        for secret in [key, "db-password-1", "redis-password-2"] {
            assert!(!printed.contains(secret), "{secret} printed in {printed}");
        }
        assert!(printed.contains("[REDACTED]"), "{printed}");
    }

    #[test]
    fn clashing_claim_names_are_refused() {
        let err = load_with(None, &[("JWTD__JWT__USER_ID_CLAIM", "sub")]).unwrap_err();
        assert!(err.to_string().contains("clashes"), "{err}");
    }

    #[test]
    fn a_bad_duration_names_the_value() {
        let err = load_with(None, &[("JWTD__JWT__LEEWAY", "soon")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("soon"), "{err}");
    }
}
