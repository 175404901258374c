//! Settings that would run but be wrong are refused at load; in production, weak keys too.

use std::time::Duration;

use secrecy::ExposeSecret;

use super::{ConfigError, DEVELOPMENT_SIGNING_KEY, ExtraClaim, Settings};

/// Room for the claims every access token has, signed with the longest signature.
const MIN_ACCESS_TOKEN_BYTES: usize = 1024;

/// Production refuses an HMAC key with fewer distinct bytes: a repeated character or phrase.
/// A base64 key has far more (`openssl rand -base64 32`: about 32 of its 44); a hex key has
/// at most 16, and a quarter of `openssl rand -hex 32` keys lack one of them.
const MIN_DISTINCT_KEY_BYTES: usize = 16;

/// `revocation.lease`, when on: a poll a fifth of it apart must mean something, and every
/// revocation waits it out.
const MIN_LEASE: Duration = Duration::from_millis(1);
const MAX_LEASE: Duration = Duration::from_secs(10);

impl Settings {
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
        if !(MIN_ACCESS_TOKEN_BYTES..=jwt.max_token_bytes).contains(&jwt.max_access_token_bytes) {
            return invalid(format!(
                "jwt.max_access_token_bytes must be between {MIN_ACCESS_TOKEN_BYTES} and \
                 jwt.max_token_bytes ({}): jwtd must be able to read the tokens it issues",
                jwt.max_token_bytes
            ));
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
        taken.extend(
            jwt.access_token_extra_claims
                .iter()
                .filter(|claim| **claim != ExtraClaim::AppMetadata)
                .map(|claim| claim.name()),
        );
        for name in [&jwt.user_id_claim, &jwt.token_type_claim] {
            if taken.contains(&name.as_str()) || jwt.user_id_claim == jwt.token_type_claim {
                return invalid(format!(
                    "jwt claim name {name:?} clashes with another claim"
                ));
            }
        }
        let lease = self.revocation.lease;
        if !lease.is_zero() && !(MIN_LEASE..=MAX_LEASE).contains(&lease) {
            return invalid(format!(
                "revocation.lease must be 0s (off) or between {MIN_LEASE:?} and {MAX_LEASE:?}: \
                 every revocation waits it out"
            ));
        }
        self.email.validate()?;
        if self.is_production() {
            self.validate_production_key()?;
            self.validate_production_server()?;
            self.validate_production_cookies()?;
        }
        Ok(())
    }

    /// Nothing a request sends may choose the issuer the OAuth metadata names, and the metrics
    /// stay off the port the public reaches.
    fn validate_production_server(&self) -> Result<(), ConfigError> {
        let server = &self.server;
        if server.public_url.is_none() {
            return Err(ConfigError::Invalid(
                "JWTD_ENV=production needs server.public_url: set JWTD__SERVER__PUBLIC_URL to the \
                 https:// URL clients reach jwtd at (e.g. https://auth.example.com), which the \
                 OAuth metadata names as its issuer and endpoints instead of following the \
                 request's Host header"
                    .into(),
            ));
        }
        if server.metrics_bind.is_none() {
            return Err(ConfigError::Invalid(
                "JWTD_ENV=production refuses to serve /metrics on the API port: set \
                 JWTD__SERVER__METRICS_BIND (server.metrics_bind) to an address only Prometheus \
                 reaches, e.g. 127.0.0.1:9100"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Without `Secure`, the refresh cookie would travel over plain HTTP to anyone on the path.
    fn validate_production_cookies(&self) -> Result<(), ConfigError> {
        if !self.cookies.secure {
            return Err(ConfigError::Invalid(
                "JWTD_ENV=production refuses cookies.secure = false: the refresh cookie would be \
                 sent over plain HTTP; serve jwtd over HTTPS and unset JWTD__COOKIES__SECURE"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The HMAC key must be set, not the development key, as long as the hash, and not
    /// obviously made by hand.
    fn validate_production_key(&self) -> Result<(), ConfigError> {
        let algorithm = self.jwt.algorithm;
        let Some(hash_bytes) = algorithm.hmac_output_bytes() else {
            return Ok(());
        };
        let refuse = |problem: String| {
            Err(ConfigError::Invalid(format!(
                "JWTD_ENV=production refuses {problem}: set JWTD__JWT__SIGNING_KEY to a random \
                 secret of at least {hash_bytes} bytes, e.g. the output of \
                 `openssl rand -base64 {hash_bytes}`"
            )))
        };
        let Some(key) = &self.jwt.signing_key else {
            return refuse("the development signing key (jwt.signing_key is unset)".into());
        };
        let key = key.expose_secret().as_bytes();
        if key == DEVELOPMENT_SIGNING_KEY.as_bytes() {
            return refuse("the development signing key".into());
        }
        if key.len() < hash_bytes {
            return refuse(format!("a {}-byte signing key for {algorithm}", key.len()));
        }
        let distinct = distinct_bytes(key);
        if distinct < MIN_DISTINCT_KEY_BYTES {
            return refuse(format!(
                "a signing key of only {distinct} distinct bytes (at least \
                 {MIN_DISTINCT_KEY_BYTES}: a base64 key has plenty, a hex one often too few)"
            ));
        }
        Ok(())
    }
}

fn distinct_bytes(key: &[u8]) -> usize {
    let mut seen = [false; 256];
    for &byte in key {
        seen[usize::from(byte)] = true;
    }
    seen.iter().filter(|&&seen| seen).count()
}

#[cfg(test)]
mod tests {
    use super::super::load_with;
    use super::*;

    /// 44 characters of `openssl rand -base64 32`.
    const RANDOM_KEY: &str = "q3Vb0x2mJc8ZtRk5W1sYhN7uLd4PgE9aFoXiTe6CjA0=";

    /// What production needs besides a key: the public URL and the metrics listener.
    const SERVER: [(&str, &str); 2] = [
        ("JWTD__SERVER__PUBLIC_URL", "https://auth.example.com/"),
        ("JWTD__SERVER__METRICS_BIND", "127.0.0.1:9100"),
    ];

    /// Production with `vars` and [`SERVER`].
    fn production(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        load_with(Some("production"), &[vars, &SERVER].concat())
    }

    fn production_error(jwtd_env: &str, vars: &[(&str, &str)]) -> String {
        load_with(Some(jwtd_env), vars)
            .expect_err("refused")
            .to_string()
    }

    #[test]
    fn production_in_any_letter_case_refuses_the_development_key() {
        for jwtd_env in ["production", "Production", "PRODUCTION"] {
            let unset = production_error(jwtd_env, &[]);
            assert!(unset.contains("development signing key"), "{unset}");
            assert!(unset.contains("JWTD__JWT__SIGNING_KEY"), "{unset}");
            assert!(unset.contains("`openssl rand -base64 32`"), "{unset}");
            let spelt_out = production_error(
                jwtd_env,
                &[("JWTD__JWT__SIGNING_KEY", DEVELOPMENT_SIGNING_KEY)],
            );
            assert!(spelt_out.contains("development signing key"), "{spelt_out}");
        }
        // The same settings start in development, on the development key.
        assert!(load_with(Some("Development"), &[]).is_ok());
    }

    #[test]
    fn a_revocation_lease_is_off_or_between_a_millisecond_and_ten_seconds() {
        for lease in ["0s", "1ms", "50ms", "10s"] {
            let loaded = load_with(None, &[("JWTD__REVOCATION__LEASE", lease)]);
            assert!(loaded.is_ok(), "{lease}: {loaded:?}");
        }
        for lease in ["500us", "11s"] {
            let err = production_error("development", &[("JWTD__REVOCATION__LEASE", lease)]);
            assert!(
                err.contains("revocation.lease must be 0s (off)"),
                "{lease}: {err}"
            );
        }
    }

    #[test]
    fn production_refuses_a_key_shorter_than_the_hash() {
        let err = production_error(
            "production",
            &[
                ("JWTD__JWT__ALGORITHM", "HS512"),
                ("JWTD__JWT__SIGNING_KEY", &RANDOM_KEY[..43]),
            ],
        );
        assert!(err.contains("43-byte signing key for HS512"), "{err}");
        assert!(err.contains("`openssl rand -base64 64`"), "{err}");
        let long_enough = RANDOM_KEY.repeat(2);
        let ok = production(&[
            ("JWTD__JWT__ALGORITHM", "HS512"),
            ("JWTD__JWT__SIGNING_KEY", &long_enough),
        ]);
        assert!(ok.is_ok(), "{ok:?}");
    }

    #[test]
    fn production_refuses_a_key_with_too_few_distinct_bytes() {
        for weak in ["k".repeat(64), "abcdefghijklmno".repeat(5)] {
            let err = production_error("production", &[("JWTD__JWT__SIGNING_KEY", &weak)]);
            assert!(err.contains("distinct bytes"), "{err}");
            assert!(err.contains("`openssl rand -base64 32`"), "{err}");
            assert!(!err.contains(&weak), "the key is never echoed: {err}");
            // Development takes it: its tests and demos use such keys.
            assert!(load_with(None, &[("JWTD__JWT__SIGNING_KEY", &weak)]).is_ok());
        }
        let ok = production(&[("JWTD__JWT__SIGNING_KEY", RANDOM_KEY)]);
        assert!(ok.is_ok(), "{ok:?}");
    }

    #[test]
    fn an_asymmetric_production_deployment_needs_no_hmac_key() {
        let settings = production(&[("JWTD__JWT__ALGORITHM", "EdDSA")]);
        assert!(settings.is_ok(), "{settings:?}");
    }

    #[test]
    fn production_refuses_to_start_without_a_public_url() {
        let err = production_error(
            "production",
            &[
                ("JWTD__JWT__SIGNING_KEY", RANDOM_KEY),
                ("JWTD__SERVER__METRICS_BIND", "127.0.0.1:9100"),
            ],
        );
        assert!(err.contains("needs server.public_url"), "{err}");
        assert!(err.contains("JWTD__SERVER__PUBLIC_URL"), "{err}");
        assert!(err.contains("Host header"), "{err}");
        // Development falls back on the request's Host header.
        assert!(load_with(None, &[]).unwrap().server.public_url.is_none());
    }

    #[test]
    fn production_refuses_to_serve_metrics_on_the_api_port() {
        let err = production_error(
            "production",
            &[
                ("JWTD__JWT__SIGNING_KEY", RANDOM_KEY),
                ("JWTD__SERVER__PUBLIC_URL", "https://auth.example.com"),
            ],
        );
        assert!(err.contains("/metrics on the API port"), "{err}");
        assert!(err.contains("JWTD__SERVER__METRICS_BIND"), "{err}");
        let settings = production(&[("JWTD__JWT__SIGNING_KEY", RANDOM_KEY)]).unwrap();
        assert_eq!(
            settings.server.metrics_bind.as_deref(),
            Some("127.0.0.1:9100")
        );
        assert_eq!(
            settings.server.public_url.unwrap().as_str(),
            "https://auth.example.com"
        );
    }

    #[test]
    fn production_refuses_cookies_without_secure_and_development_takes_them() {
        let plain_http = ("JWTD__COOKIES__SECURE", "false");
        let key = ("JWTD__JWT__SIGNING_KEY", RANDOM_KEY);
        let err = production(&[key, plain_http]).unwrap_err().to_string();
        assert!(err.contains("cookies.secure = false"), "{err}");
        assert!(production(&[key]).unwrap().cookies.secure);
        assert!(!load_with(None, &[plain_http]).unwrap().cookies.secure);
    }

    #[test]
    fn cors_origins_load_from_a_comma_separated_variable_and_must_be_exact() {
        let origins = (
            "JWTD__CORS__ALLOWED_ORIGINS",
            "https://a.example.com,http://b.test:8080",
        );
        let settings = load_with(None, &[origins]).unwrap();
        assert_eq!(
            settings.cors.allowed_origins,
            ["https://a.example.com", "http://b.test:8080"]
        );
        let trailing_slash = ("JWTD__CORS__ALLOWED_ORIGINS", "https://a.example.com/");
        let err = load_with(None, &[trailing_slash]).unwrap_err().to_string();
        assert!(err.contains("is not an origin"), "{err}");
    }

    #[test]
    fn a_bad_public_url_is_refused_at_load_naming_the_key() {
        for environment in [None, Some("production")] {
            for bad in [
                "auth.example.com",
                "https://auth.example.com/?x=1",
                "ftp://a.b",
            ] {
                let vars = [
                    ("JWTD__JWT__SIGNING_KEY", RANDOM_KEY),
                    ("JWTD__SERVER__METRICS_BIND", "127.0.0.1:9100"),
                    ("JWTD__SERVER__PUBLIC_URL", bad),
                ];
                let err = load_with(environment, &vars).unwrap_err().to_string();
                assert!(
                    err.contains(&format!("{bad:?} is not a public URL")),
                    "{err}"
                );
                assert!(err.contains("server.public_url"), "{err}");
            }
        }
    }
}
