//! Where mail goes: the log (`console`, as Django's console backend) or an SMTP server through
//! lettre (`smtp://`, `smtps://` for implicit TLS, `?tls=required` for STARTTLS; rustls).

use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;

use crate::config::{ConfigError, EmailBackend, EmailSettings};
use crate::store::outbox::QueuedMail;

/// Why a delivery failed: worth retrying, or not.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The server could not be reached, or answered with a temporary (4xx) refusal.
    #[error("{0}")]
    Transient(String),
    /// The mail itself is refused (a bad address, a permanent 5xx): retrying cannot help.
    #[error("{0}")]
    Permanent(String),
}

pub enum Transport {
    Console,
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
}

impl Transport {
    pub fn from_settings(settings: &EmailSettings) -> Result<Transport, ConfigError> {
        Ok(match settings.backend {
            EmailBackend::Console => Transport::Console,
            EmailBackend::Smtp => {
                let url = settings.smtp_url.expose_secret();
                let builder =
                    AsyncSmtpTransport::<Tokio1Executor>::from_url(url).map_err(|_| {
                        ConfigError::Invalid("email.smtp_url is not an SMTP URL".into())
                    })?;
                Transport::Smtp(builder.timeout(Some(settings.smtp_timeout)).build())
            }
        })
    }

    pub async fn send(&self, from: &Mailbox, mail: &QueuedMail) -> Result<(), SendError> {
        match self {
            Transport::Console => {
                tracing::info!(
                    target: "jwtd::email",
                    id = %mail.id,
                    to = %mail.recipient,
                    subject = %mail.subject,
                    "mail (console backend, not sent):\n{}",
                    mail.text
                );
                Ok(())
            }
            Transport::Smtp(smtp) => {
                let message = message(from, mail)?;
                smtp.send(message).await.map(drop).map_err(|err| {
                    let text = crate::outage::chain(&err);
                    if err.is_permanent() {
                        SendError::Permanent(text)
                    } else {
                        SendError::Transient(text)
                    }
                })
            }
        }
    }
}

/// The MIME message: plain text and HTML as alternatives.
fn message(from: &Mailbox, mail: &QueuedMail) -> Result<Message, SendError> {
    let to: Mailbox = mail
        .recipient
        .parse()
        .map_err(|err| SendError::Permanent(format!("recipient: {err}")))?;
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(mail.subject.clone())
        .multipart(MultiPart::alternative_plain_html(
            mail.text.clone(),
            mail.html.clone(),
        ))
        .map_err(|err| SendError::Permanent(format!("building the message: {err}")))
}
