//! The mails themselves: subject, plain text and HTML from templates, with the link in them.
//!
//! Each template has a compiled-in default (`src/email/templates/`); a file of the same name in
//! `email.templates_dir` replaces it, read once at start-up. Templates name values in braces:
//! `{username}`, `{email}`, `{link}`, `{lifetime}`; in the HTML ones the values are escaped.

use std::path::Path;
use std::sync::Arc;

use tokio::sync::Notify;

use super::links::{LinkPurpose, LinkTokens, encode_uid};
use crate::config::{ConfigError, EmailSettings};
use crate::store::outbox::NewMail;
use crate::store::users::Credentials;

/// The three templates of one kind of mail.
struct Template {
    subject: String,
    text: String,
    html: String,
}

impl Template {
    /// `name`'s files from `dir` where they exist, else the defaults.
    fn load(dir: &Path, name: &str, defaults: [&str; 3]) -> Result<Template, ConfigError> {
        let [subject, text, html] = [
            (format!("{name}_subject.txt"), defaults[0]),
            (format!("{name}.txt"), defaults[1]),
            (format!("{name}.html"), defaults[2]),
        ]
        .map(|(file, default)| read_or(&dir.join(file), default));
        Ok(Template {
            subject: subject?.trim().to_owned(),
            text: text?,
            html: html?,
        })
    }
}

fn read_or(path: &Path, default: &str) -> Result<String, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(default.to_owned()),
        Err(err) => Err(ConfigError::Invalid(format!(
            "email template {}: {err}",
            path.display()
        ))),
    }
}

/// Builds the mails a user is sent, and wakes the outbox sender when one is queued.
pub struct Mails {
    activation: Template,
    password_reset: Template,
    activation_url: String,
    password_reset_url: String,
    lifetime: String,
    pub(crate) tokens: LinkTokens,
    queued: Arc<Notify>,
}

impl Mails {
    pub fn new(settings: &EmailSettings, tokens: LinkTokens) -> Result<Mails, ConfigError> {
        let dir = &settings.templates_dir;
        Ok(Mails {
            activation: Template::load(
                dir,
                "activation",
                [
                    include_str!("templates/activation_subject.txt"),
                    include_str!("templates/activation.txt"),
                    include_str!("templates/activation.html"),
                ],
            )?,
            password_reset: Template::load(
                dir,
                "password_reset",
                [
                    include_str!("templates/password_reset_subject.txt"),
                    include_str!("templates/password_reset.txt"),
                    include_str!("templates/password_reset.html"),
                ],
            )?,
            activation_url: settings.activation_url.clone(),
            password_reset_url: settings.password_reset_url.clone(),
            lifetime: humantime::format_duration(settings.password_reset_lifetime).to_string(),
            tokens,
            queued: Arc::new(Notify::new()),
        })
    }

    /// The activation mail of `user` (who is inactive).
    pub fn activation(&self, user: &Credentials) -> NewMail {
        self.compose(LinkPurpose::Activation, user)
    }

    /// The password-reset mail of `user`.
    pub fn password_reset(&self, user: &Credentials) -> NewMail {
        self.compose(LinkPurpose::PasswordReset, user)
    }

    /// Tells the sender a mail was queued, so it need not wait for its next look.
    pub fn queued(&self) {
        self.queued.notify_one();
    }

    pub(crate) fn queued_signal(&self) -> Arc<Notify> {
        self.queued.clone()
    }

    fn compose(&self, purpose: LinkPurpose, user: &Credentials) -> NewMail {
        let (template, url, kind) = match purpose {
            LinkPurpose::Activation => (&self.activation, &self.activation_url, "activation"),
            LinkPurpose::PasswordReset => (
                &self.password_reset,
                &self.password_reset_url,
                "password_reset",
            ),
        };
        let link = url
            .replace("{uid}", &encode_uid(user.user.id))
            .replace("{token}", &self.tokens.make(purpose, user));
        let values = [
            ("username", user.user.username.as_str()),
            ("email", user.user.email.as_str()),
            ("link", link.as_str()),
            ("lifetime", self.lifetime.as_str()),
        ];
        NewMail {
            kind,
            recipient: user.user.email.clone(),
            subject: render(&template.subject, &values, |v| v.replace(['\r', '\n'], " ")),
            text: render(&template.text, &values, str::to_owned),
            html: render(&template.html, &values, escape_html),
        }
    }
}

/// `template` with each `{name}` of `values` replaced by its value, through `escape`, in one
/// pass (a value that contains `{link}` stays as it is).
fn render(template: &str, values: &[(&str, &str)], escape: impl Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let value = after.find('}').and_then(|end| {
            let name = &after[..end];
            let value = values.iter().find(|(n, _)| *n == name)?.1;
            Some((value, end))
        });
        match value {
            Some((value, end)) => {
                out.push_str(&escape(value));
                rest = &after[end + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn escape_html(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#x27;"),
            _ => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_fill_their_names_once_and_unknown_braces_stay() {
        let values = [("username", "{link}"), ("link", "https://x/?a=1&b=2")];
        let text = render("Hi {username}, {link} {other} {", &values, str::to_owned);
        assert_eq!(text, "Hi {link}, https://x/?a=1&b=2 {other} {");
        let html = render("<a href=\"{link}\">", &values, escape_html);
        assert_eq!(html, "<a href=\"https://x/?a=1&amp;b=2\">");
    }

    #[test]
    fn a_file_in_the_templates_dir_replaces_the_default_and_the_others_stay() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("password_reset_subject.txt"),
            "Yours: {username}\n",
        )
        .unwrap();
        let template = Template::load(dir.path(), "password_reset", ["a", "b", "c"]).unwrap();
        assert_eq!(template.subject, "Yours: {username}");
        assert_eq!((template.text.as_str(), template.html.as_str()), ("b", "c"));
    }
}
