//! Settings that would run but be wrong are refused at load; in production, weak keys too.

use super::{ConfigError, DEVELOPMENT_SIGNING_KEY, ExtraClaim, Settings};

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
        let algorithm = self.jwt.algorithm;
        let Some(hash_bytes) = algorithm.hmac_output_bytes() else {
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
                "JWTD_ENV=production refuses a {}-byte signing key for {algorithm}: {fix}",
                key.len(),
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::load_with;

    fn production_error(jwtd_env: &str, vars: &[(&str, &str)]) -> String {
        load_with(Some(jwtd_env), vars)
            .expect_err("refused")
            .to_string()
    }

    #[test]
    fn production_in_any_letter_case_refuses_the_development_key() {
        for jwtd_env in ["production", "Production", "PRODUCTION"] {
            let err = production_error(jwtd_env, &[]);
            assert!(err.contains("development signing key"), "{err}");
            assert!(err.contains("JWTD__JWT__SIGNING_KEY"), "{err}");
            assert!(err.contains("`openssl rand -base64 32`"), "{err}");
        }
        // The same settings start in development, on the development key.
        assert!(load_with(Some("Development"), &[]).is_ok());
    }

    #[test]
    fn production_refuses_a_key_shorter_than_the_hash() {
        let err = production_error(
            "production",
            &[
                ("JWTD__JWT__ALGORITHM", "HS512"),
                ("JWTD__JWT__SIGNING_KEY", &"k".repeat(63)),
            ],
        );
        assert!(err.contains("63-byte"), "{err}");
        let ok = load_with(
            Some("production"),
            &[
                ("JWTD__JWT__ALGORITHM", "HS512"),
                ("JWTD__JWT__SIGNING_KEY", &"k".repeat(64)),
            ],
        );
        assert!(ok.is_ok());
    }
}
