//! Login throttling that an attacker cannot talk around.
//!
//! - Per client address: at most `client_attempts` logins per `client_window`; past that the
//!   answer is 429 `throttled` with `Retry-After`. Checked before any password is hashed.
//! - Per account (by normalised username, existing or not, so it reveals nothing): after
//!   `account_free_failures` failures, each further failure locks the account for a back-off
//!   that doubles, from `account_backoff` up to `account_backoff_max`. While locked, every
//!   attempt gets the same 401 as a wrong password (the password is still hashed, so the timing
//!   is the same too), and a wrong password counts as one more failure. A successful login
//!   clears the account's failures; failures are forgotten `account_window` after the first.
//!
//! Counters live in the revocation store's backend, so every instance shares them.

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::accounts::normalize_username;
use crate::clock::SharedClock;
use crate::config::ThrottleSettings;
use crate::outage::Outage;
use crate::store::CounterStore;

#[derive(Debug, thiserror::Error)]
pub enum ThrottleError {
    #[error("too many login attempts from this client; retry in {retry_after_secs}s")]
    Throttled { retry_after_secs: u64 },
    #[error(transparent)]
    Store(#[from] Outage),
}

/// The counters of one account: its failures and its lock.
pub struct AccountKeys {
    failures: String,
    lock: String,
}

pub struct LoginThrottle {
    counters: Arc<dyn CounterStore>,
    clock: SharedClock,
    settings: ThrottleSettings,
}

impl LoginThrottle {
    pub fn new(
        counters: Arc<dyn CounterStore>,
        clock: SharedClock,
        settings: ThrottleSettings,
    ) -> LoginThrottle {
        LoginThrottle {
            counters,
            clock,
            settings,
        }
    }

    /// Counts a login attempt from `client` (an IP address); refuses it past the limit.
    pub async fn admit_client(&self, client: &str) -> Result<(), ThrottleError> {
        if self.settings.client_attempts == 0 {
            return Ok(());
        }
        let key = format!("c:{client}");
        let window = self.settings.client_window;
        let counter = self.counters.increment(&key, window).await?;
        if counter.count <= i64::from(self.settings.client_attempts) {
            return Ok(());
        }
        let left = counter.expires_at.saturating_since(self.clock.now());
        let left_secs = left.as_millis().div_ceil(1000);
        Err(ThrottleError::Throttled {
            retry_after_secs: u64::try_from(left_secs).unwrap_or(1).max(1),
        })
    }

    /// The counter keys of an account. The username is hashed: counters hold no personal data
    /// and keys have a fixed length.
    pub fn account(&self, username: &str) -> AccountKeys {
        let digest = Sha256::digest(normalize_username(username).as_bytes());
        let id: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        AccountKeys {
            failures: format!("f:{id}"),
            lock: format!("l:{id}"),
        }
    }

    pub async fn is_locked(&self, account: &AccountKeys) -> Result<bool, Outage> {
        Ok(self.counters.counter(&account.lock).await?.is_some())
    }

    /// Counts a failure; past the free ones, (re)locks the account for its back-off.
    pub async fn record_failure(&self, account: &AccountKeys) -> Result<i64, Outage> {
        let window = self.settings.account_window;
        let failures = self
            .counters
            .increment(&account.failures, window)
            .await?
            .count;
        if let Some(lock) = self.backoff(failures) {
            let until = self.clock.now() + lock;
            self.counters
                .set_counter(&account.lock, failures, until)
                .await?;
        }
        Ok(failures)
    }

    pub async fn record_success(&self, account: &AccountKeys) -> Result<(), Outage> {
        self.counters
            .delete_counters(&[&account.failures, &account.lock])
            .await
    }

    /// How long the `failures`-th failure locks the account, if at all.
    fn backoff(&self, failures: i64) -> Option<Duration> {
        let free = i64::from(self.settings.account_free_failures);
        if failures <= free {
            return None;
        }
        let doublings = u32::try_from(failures - free - 1)
            .unwrap_or(u32::MAX)
            .min(40);
        // In whole milliseconds, as the lock's end is counted.
        let base = self.settings.account_backoff.as_millis();
        let doubled = u64::try_from(base.saturating_mul(1 << doublings)).unwrap_or(u64::MAX);
        Some(Duration::from_millis(doubled).min(self.settings.account_backoff_max))
    }

    /// An account's failure count (tests and operators).
    pub async fn failures(&self, account: &AccountKeys) -> Result<i64, Outage> {
        let counter = self.counters.counter(&account.failures).await?;
        Ok(counter.map_or(0, |counter| counter.count))
    }
}
