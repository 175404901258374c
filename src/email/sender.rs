//! The outbox sender, one per running instance: it looks for due mail every
//! `email.poll_interval` (at once when a mail is queued here), claims it (see `store::outbox`:
//! one instance per mail), sends it, and then deletes it, or reschedules it with a back-off that
//! doubles from `email.retry_backoff` up to `email.retry_backoff_max`. Times come from the
//! app's clock, so tests move through the back-off instead of waiting it out.

use std::sync::Arc;
use std::time::Duration;

use lettre::message::Mailbox;
use tokio::sync::Notify;
use uuid::Uuid;

use super::transport::{SendError, Transport};
use crate::clock::SharedClock;
use crate::metrics::Metrics;
use crate::outage::Outage;
use crate::store::outbox::{OutboxRepository, QueuedMail};

/// Mails claimed per look; the rest wait for the next (or another instance).
const BATCH: u64 = 20;

pub struct OutboxSender {
    pub(crate) outbox: OutboxRepository,
    pub(crate) transport: Transport,
    pub(crate) from: Mailbox,
    pub(crate) clock: SharedClock,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) queued: Arc<Notify>,
    pub(crate) poll_interval: Duration,
    pub(crate) retry_backoff: Duration,
    pub(crate) retry_backoff_max: Duration,
    pub(crate) claim_lease: Duration,
}

impl OutboxSender {
    /// Sends due mail until the future is dropped (the app stops).
    pub async fn run(&self) {
        loop {
            if let Err(err) = self.send_due().await {
                tracing::warn!(error = %crate::outage::chain(&err), "email outbox: cannot read it");
            }
            tokio::select! {
                _ = self.queued.notified() => {}
                _ = tokio::time::sleep(self.poll_interval) => {}
            }
        }
    }

    /// One look: claims what is due and tries each; how many were sent.
    pub async fn send_due(&self) -> Result<usize, Outage> {
        self.report_backlog().await?;
        let claim = Uuid::new_v4();
        let now = self.clock.now();
        let mails = self
            .outbox
            .claim_due(claim, now, now + self.claim_lease, BATCH)
            .await?;
        let mut sent = 0;
        for mail in &mails {
            sent += usize::from(self.deliver(claim, mail).await?);
        }
        if !mails.is_empty() {
            self.report_backlog().await?;
        }
        Ok(sent)
    }

    /// Sends one claimed mail and records what happened; whether it was sent.
    async fn deliver(&self, claim: Uuid, mail: &QueuedMail) -> Result<bool, Outage> {
        match self.transport.send(&self.from, mail).await {
            Ok(()) => {
                self.outbox.sent(mail.id, claim).await?;
                self.metrics.email_sent();
                tracing::info!(id = %mail.id, kind = %mail.kind, "email sent");
                Ok(true)
            }
            Err(SendError::Transient(error)) => {
                let wait = backoff(mail.attempts, self.retry_backoff, self.retry_backoff_max);
                let retry_at = self.clock.now() + wait;
                self.outbox
                    .retry_later(mail.id, claim, retry_at, &error)
                    .await?;
                self.metrics.email_failed(false);
                tracing::warn!(id = %mail.id, %error, retry_in = ?wait, "email not sent; will retry");
                Ok(false)
            }
            Err(SendError::Permanent(error)) => {
                self.outbox
                    .failed(mail.id, claim, self.clock.now(), &error)
                    .await?;
                self.metrics.email_failed(true);
                tracing::error!(id = %mail.id, %error, "email refused for good; kept in the outbox");
                Ok(false)
            }
        }
    }

    async fn report_backlog(&self) -> Result<(), Outage> {
        let backlog = self.outbox.backlog().await?;
        let age = backlog.oldest.map_or(Duration::ZERO, |oldest| {
            self.clock.now().saturating_since(oldest)
        });
        self.metrics.email_backlog(backlog.queued, age);
        Ok(())
    }
}

/// The wait after the `failures`-th failure before this one: `first`, doubling, up to `max`.
fn backoff(failures: u32, first: Duration, max: Duration) -> Duration {
    let factor = 2u32.saturating_pow(failures.min(31));
    first.saturating_mul(factor).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_back_off_doubles_up_to_its_maximum() {
        let secs = |failures| backoff(failures, Duration::from_secs(10), Duration::from_secs(60));
        let waits: Vec<u64> = (0..6).map(|n| secs(n).as_secs()).collect();
        assert_eq!(waits, [10, 20, 40, 60, 60, 60]);
        assert_eq!(secs(u32::MAX).as_secs(), 60);
    }
}
