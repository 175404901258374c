//! `[email]`: how activation and password-reset mails are built, queued and sent (see `email`).

use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::{ConfigError, human_duration};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmailBackend {
    /// Mails are written to the log, as Django's console backend: nothing to run.
    Console,
    /// Mails are sent to `email.smtp_url`.
    Smtp,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EmailSettings {
    pub backend: EmailBackend,
    /// Secret: it may carry the SMTP password.
    pub smtp_url: SecretString,
    pub from: String,
    /// The link in an activation mail, with `{uid}` and `{token}`.
    pub activation_url: String,
    /// The link in a password-reset mail, with `{uid}` and `{token}`.
    pub password_reset_url: String,
    /// How long a link works (activation and reset alike, as Django's PASSWORD_RESET_TIMEOUT).
    #[serde(deserialize_with = "human_duration")]
    pub password_reset_lifetime: Duration,
    /// The key links are signed with; unset, one derived from the JWT signing key.
    #[serde(default)]
    pub link_secret: Option<SecretString>,
    /// Files here replace the compiled-in templates of the same name.
    pub templates_dir: PathBuf,
    #[serde(deserialize_with = "human_duration")]
    pub smtp_timeout: Duration,
    /// How often the sender looks for due mail (a mail queued here wakes it at once).
    #[serde(deserialize_with = "human_duration")]
    pub poll_interval: Duration,
    /// The first wait after a failed delivery; each further failure doubles it.
    #[serde(deserialize_with = "human_duration")]
    pub retry_backoff: Duration,
    #[serde(deserialize_with = "human_duration")]
    pub retry_backoff_max: Duration,
    /// How long a sender's claim on a mail holds before another instance may take it over.
    #[serde(deserialize_with = "human_duration")]
    pub claim_lease: Duration,
    /// Mails to one address per `mail_window`; past it requests are answered alike and send
    /// nothing.
    pub mails_per_address: u32,
    #[serde(deserialize_with = "human_duration")]
    pub mail_window: Duration,
    /// `reset_password` / `resend_activation` requests one client address may make per
    /// `request_window`; past it, 429. 0 turns the limit off.
    pub requests_per_client: u32,
    #[serde(deserialize_with = "human_duration")]
    pub request_window: Duration,
}

impl EmailSettings {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |message: String| Err(ConfigError::Invalid(message));
        for (key, template) in [
            ("activation_url", &self.activation_url),
            ("password_reset_url", &self.password_reset_url),
        ] {
            if !template.contains("{uid}") || !template.contains("{token}") {
                return invalid(format!("email.{key} must contain {{uid}} and {{token}}"));
            }
        }
        if self.from.parse::<lettre::message::Mailbox>().is_err() {
            return invalid(format!("email.from {:?} is not an address", self.from));
        }
        if self.backend == EmailBackend::Smtp {
            let url = self.smtp_url.expose_secret();
            // The parser's message is not shown: it may quote the URL, password included.
            if lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(url).is_err() {
                return invalid(
                    "email.smtp_url is not an SMTP URL (smtp://, smtps://, ?tls=required)".into(),
                );
            }
        }
        if self.password_reset_lifetime.is_zero() || self.poll_interval.is_zero() {
            return invalid("email.password_reset_lifetime and poll_interval must be > 0s".into());
        }
        // A claim that ends while its sender is still talking to the server would let another
        // instance send the same mail.
        if self.claim_lease <= self.smtp_timeout.saturating_mul(2) {
            return invalid(
                "email.claim_lease must be longer than twice email.smtp_timeout".into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::load_with;

    fn refused(vars: &[(&str, &str)]) -> String {
        load_with(None, vars).unwrap_err().to_string()
    }

    #[test]
    fn links_without_uid_and_token_are_refused_naming_the_key() {
        let err = refused(&[("JWTD__EMAIL__PASSWORD_RESET_URL", "https://app/reset/{uid}")]);
        assert!(err.contains("email.password_reset_url"), "{err}");
    }

    #[test]
    fn a_bad_sender_or_smtp_url_is_refused_without_printing_the_url() {
        assert!(refused(&[("JWTD__EMAIL__FROM", "not an address")]).contains("email.from"));
        let err = refused(&[
            ("JWTD__EMAIL__BACKEND", "smtp"),
            ("JWTD__EMAIL__SMTP_URL", "http://user:hunter2@mail"),
        ]);
        assert!(err.contains("email.smtp_url"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn a_claim_that_could_end_mid_send_is_refused() {
        let err = refused(&[
            ("JWTD__EMAIL__SMTP_TIMEOUT", "10s"),
            ("JWTD__EMAIL__CLAIM_LEASE", "20s"),
        ]);
        assert!(err.contains("claim_lease"), "{err}");
    }

    #[test]
    fn smtp_urls_with_tls_or_starttls_load() {
        for url in [
            "smtps://u:p@mail:465",
            "smtp://mail:587?tls=required",
            "smtp://mail",
        ] {
            let vars = [
                ("JWTD__EMAIL__BACKEND", "smtp"),
                ("JWTD__EMAIL__SMTP_URL", url),
            ];
            assert!(load_with(None, &vars).is_ok(), "{url}");
        }
    }
}
