//! `JWTD_ENV`: which deployment this is. It picks the `config/{env}.toml` layer and, in
//! production, the refusal of weak keys, so a misspelt name must not quietly mean development.

use std::ffi::OsStr;
use std::fmt;
use std::str::FromStr;

use super::ConfigError;

/// The environments jwtd knows. Unset, `JWTD_ENV` means development.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Environment {
    #[default]
    Development,
    Production,
}

impl Environment {
    pub const ALL: [Environment; 2] = [Environment::Development, Environment::Production];

    /// The canonical, lower-case name: also the stem of its `config/{name}.toml` layer.
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Development => "development",
            Environment::Production => "production",
        }
    }

    pub fn is_production(self) -> bool {
        self == Environment::Production
    }

    /// The environment `JWTD_ENV` names (`None`: unset, development). Any letter case is
    /// accepted; anything else, an empty or non-UTF-8 value included, is an error.
    pub fn from_jwtd_env(value: Option<&OsStr>) -> Result<Environment, ConfigError> {
        let Some(value) = value else {
            return Ok(Environment::default());
        };
        value
            .to_str()
            .and_then(|text| text.parse().ok())
            .ok_or_else(|| {
                ConfigError::Invalid(format!(
                    "JWTD_ENV={value:?} is not an environment jwtd knows: set it to development \
                     or production (in any letter case), or leave it unset for development"
                ))
            })
    }
}

/// An unknown environment name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an environment (development or production)")]
pub struct UnknownEnvironment(String);

impl FromStr for Environment {
    type Err = UnknownEnvironment;

    /// `Production`, `PRODUCTION` and ` production ` are all production.
    fn from_str(text: &str) -> Result<Environment, UnknownEnvironment> {
        let name = text.trim();
        Environment::ALL
            .into_iter()
            .find(|environment| environment.as_str().eq_ignore_ascii_case(name))
            .ok_or_else(|| UnknownEnvironment(text.to_owned()))
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_env(value: &str) -> Result<Environment, ConfigError> {
        Environment::from_jwtd_env(Some(OsStr::new(value)))
    }

    #[test]
    fn names_are_read_in_any_letter_case() {
        for name in ["production", "Production", "PRODUCTION", " production\n"] {
            assert_eq!(from_env(name).unwrap(), Environment::Production, "{name:?}");
        }
        for name in ["development", "Development", "DEVELOPMENT"] {
            assert_eq!(
                from_env(name).unwrap(),
                Environment::Development,
                "{name:?}"
            );
        }
        assert_eq!(
            Environment::from_jwtd_env(None).unwrap(),
            Environment::Development
        );
    }

    #[test]
    fn an_unknown_name_is_refused_and_the_known_ones_are_listed() {
        for name in ["prod", "staging", "test", "", "productionn"] {
            let err = from_env(name).unwrap_err().to_string();
            assert!(err.contains(&format!("JWTD_ENV={name:?}")), "{err}");
            assert!(err.contains("development or production"), "{err}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_non_utf8_value_is_refused() {
        use std::os::unix::ffi::OsStrExt;
        let value = OsStr::from_bytes(b"produc\xfftion");
        assert!(Environment::from_jwtd_env(Some(value)).is_err());
    }

    #[test]
    fn the_canonical_name_is_lower_case_and_round_trips() {
        for environment in Environment::ALL {
            assert_eq!(environment.as_str(), environment.as_str().to_lowercase());
            assert_eq!(environment.to_string().parse(), Ok(environment));
        }
    }
}
