//! Login throttling that an attacker cannot talk around, however many attempts arrive at once.
//!
//! - Per client address: at most `client_attempts` logins per `client_window`; past that the
//!   answer is 429 `throttled` with `Retry-After`. Checked first, before anything else.
//! - Per account (by normalised username, existing or not, so it reveals nothing): after
//!   `account_free_failures` failures, each further failure locks the account for a back-off
//!   that doubles, from `account_backoff` up to `account_backoff_max`. A successful login
//!   clears the account's failures; failures are forgotten `account_window` after the first.
//! - Registrations per client address: at most `registrations_per_address` per
//!   `registration_window`, answered like the login limit, before anything is looked up or
//!   hashed.
//!
//! A password check first reserves its place ([`LoginThrottle::reserve`]): one atomic step on
//! the store that refuses while the account is locked, and otherwise counts the attempt as a
//! failure, with the lock that failure earns, before any hashing. Attempts that arrive together
//! therefore see each other: N at once get no more checks than N one by one, and the rest are
//! refused without hashing (cheaply: a flood of them costs no argon2 work). A right password
//! then clears the account; a wrong one is already counted. A refused attempt counts nothing,
//! so it cannot lengthen the lock. How a refusal is answered is the caller's: a login answers
//! like a wrong password, the password change 429.
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
use crate::store::counters::{LockRule, Reservation};

#[derive(Debug, thiserror::Error)]
pub enum ThrottleError {
    #[error("too many attempts from this client; retry in {retry_after_secs}s")]
    Throttled { retry_after_secs: u64 },
    #[error(transparent)]
    Store(#[from] Outage),
}

/// The key of one account's failures record (its failures and its lock).
pub struct AccountKey(String);

/// Whether a password check may go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// Go ahead: the attempt is already counted as a failure.
    Admitted,
    /// The account is locked: refuse without checking.
    Locked,
}

pub struct LoginThrottle {
    counters: Arc<dyn CounterStore>,
    clock: SharedClock,
    settings: ThrottleSettings,
    lock_rule: LockRule,
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
            lock_rule: account_lock_rule(&settings),
            settings,
        }
    }

    /// Counts an attempt at a password (a login, a current-password guess) from `client` (an
    /// IP address); refuses it past the limit.
    pub async fn admit_client(&self, client: &str) -> Result<(), ThrottleError> {
        let (limit, window) = (self.settings.client_attempts, self.settings.client_window);
        self.admit(&format!("c:{client}"), limit, window).await
    }

    /// Counts a registration from `client` (an IP address); refuses it past the limit.
    pub async fn admit_registration(&self, client: &str) -> Result<(), ThrottleError> {
        let limit = self.settings.registrations_per_address;
        let window = self.settings.registration_window;
        self.admit(&format!("r:{client}"), limit, window).await
    }

    /// Counts one more under `key`; past `limit` (0: none) in `window`, says when to retry.
    /// Other limits (the email requests') use it with keys of their own prefix.
    pub async fn admit(
        &self,
        key: &str,
        limit: u32,
        window: Duration,
    ) -> Result<(), ThrottleError> {
        if limit == 0 {
            return Ok(());
        }
        let counter = self.counters.increment(key, window).await?;
        if counter.count <= i64::from(limit) {
            return Ok(());
        }
        let left = counter.expires_at.saturating_since(self.clock.now());
        Err(ThrottleError::Throttled {
            retry_after_secs: retry_after_secs(left),
        })
    }

    /// The counter key of an account. The username is hashed: counters hold no personal data
    /// and keys have a fixed length.
    pub fn account(&self, username: &str) -> AccountKey {
        AccountKey(hashed_key("a", &normalize_username(username)))
    }

    /// Reserves a password check of `account`: refused while it is locked; otherwise counted as
    /// a failure (with the lock it earns) until [`LoginThrottle::record_success`] says otherwise.
    pub async fn reserve(&self, account: &AccountKey) -> Result<Attempt, Outage> {
        Ok(
            match self.counters.reserve(&account.0, &self.lock_rule).await? {
                Reservation::Admitted { .. } => Attempt::Admitted,
                Reservation::Locked => Attempt::Locked,
            },
        )
    }

    /// Whole seconds until `account`'s lock ends, at least 1 (a `Retry-After`).
    pub async fn lock_left_secs(&self, account: &AccountKey) -> Result<u64, Outage> {
        let now = self.clock.now();
        let record = self.counters.failures(&account.0).await?;
        let until = record.map_or(now, |record| record.locked_until);
        Ok(retry_after_secs(until.saturating_since(now)))
    }

    /// A right password: the account's failures and lock are forgotten.
    pub async fn record_success(&self, account: &AccountKey) -> Result<(), Outage> {
        self.counters.delete_counters(&[&account.0]).await
    }

    /// An account's failure count in its current window (tests and operators).
    pub async fn failures(&self, account: &AccountKey) -> Result<i64, Outage> {
        let now = self.clock.now();
        let record = self.counters.failures(&account.0).await?;
        let live = record.filter(|record| record.window_ends > now);
        Ok(live.map_or(0, |record| record.count))
    }
}

/// `prefix:` and a digest of `text`: a counter key with no personal data in it, of a fixed length.
pub fn hashed_key(prefix: &str, text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    let id: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}:{id}")
}

/// The back-off as the stores apply it: `account_backoff` in whole milliseconds, doubling up to
/// `account_backoff_max`, after the free failures; failures kept for `account_window`.
fn account_lock_rule(settings: &ThrottleSettings) -> LockRule {
    let max = settings.account_backoff_max;
    let whole_millis = settings.account_backoff.as_millis();
    let first = Duration::from_millis(u64::try_from(whole_millis).unwrap_or(u64::MAX));
    let mut lock = first.min(max);
    let mut locks = vec![lock];
    while !lock.is_zero() && lock < max {
        lock = lock.saturating_mul(2).min(max);
        locks.push(lock);
    }
    LockRule {
        window: settings.account_window,
        free_failures: i64::from(settings.account_free_failures),
        locks,
    }
}

/// A span as `Retry-After` counts it: whole seconds, rounded up, at least 1.
fn retry_after_secs(left: Duration) -> u64 {
    let secs = left.as_millis().div_ceil(1000);
    u64::try_from(secs).unwrap_or(u64::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::config::Settings;
    use crate::store::db;
    use crate::store::sql::SqlRevocationStore;

    /// A throttle over the SQL store on a temporary SQLite file, with a clock the test moves.
    struct Subject {
        throttle: Arc<LoginThrottle>,
        clock: Arc<ManualClock>,
        _dir: tempfile::TempDir,
    }

    /// `free` failures, then locks from `first` to `max` seconds; failures kept `window` seconds.
    async fn subject(free: u32, first: u64, max: u64, window: u64) -> Subject {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = Settings::defaults();
        let url = format!("sqlite://{}/jwtd.db?mode=rwc", dir.path().display());
        settings.database.url = url.into();
        let throttle = &mut settings.throttle;
        throttle.account_free_failures = free;
        throttle.account_backoff = Duration::from_secs(first);
        throttle.account_backoff_max = Duration::from_secs(max);
        throttle.account_window = Duration::from_secs(window);
        let connection = db::connect(&settings.database).await.unwrap();
        db::migrate(&connection).await.unwrap();
        let clock = ManualClock::starting_now();
        let store = SqlRevocationStore::new(connection, clock.clone());
        let throttle = LoginThrottle::new(Arc::new(store), clock.clone(), settings.throttle);
        Subject {
            throttle: Arc::new(throttle),
            clock,
            _dir: dir,
        }
    }

    impl Subject {
        async fn attempts(&self, account: &AccountKey, n: usize) -> Vec<Attempt> {
            let mut attempts = Vec::new();
            for _ in 0..n {
                attempts.push(self.throttle.reserve(account).await.unwrap());
            }
            attempts
        }

        fn advance_secs(&self, secs: u64) {
            self.clock.advance(Duration::from_secs(secs));
        }
    }

    const ADMITTED: Attempt = Attempt::Admitted;
    const LOCKED: Attempt = Attempt::Locked;

    #[test]
    fn the_back_off_doubles_from_the_first_lock_to_the_longest() {
        let rule = account_lock_rule(&Settings::defaults().throttle);
        let secs: Vec<u64> = rule.locks.iter().map(Duration::as_secs).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900]);
        assert_eq!((rule.free_failures, rule.window.as_secs()), (5, 3600));
        let mut settings = Settings::defaults().throttle;
        settings.account_backoff = Duration::ZERO;
        assert_eq!(account_lock_rule(&settings).locks, [Duration::ZERO]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn attempts_at_once_get_the_checks_they_would_get_one_by_one() {
        let subject = subject(3, 60, 600, 3600).await;
        let throttle = &subject.throttle;
        let account = Arc::new(throttle.account("mallory"));
        let racers = (0..40).map(|_| {
            let (throttle, account) = (throttle.clone(), account.clone());
            tokio::spawn(async move { throttle.reserve(&account).await.unwrap() })
        });
        let attempts = futures::future::join_all(racers).await;
        let admitted = attempts
            .into_iter()
            .filter(|attempt| *attempt.as_ref().unwrap() == ADMITTED)
            .count();
        assert_eq!(admitted, 4);
        assert_eq!(throttle.failures(&account).await.unwrap(), 4);
        assert_eq!(throttle.lock_left_secs(&account).await.unwrap(), 60);
    }

    #[tokio::test]
    async fn each_lock_ends_on_time_and_the_next_failure_doubles_it() {
        let subject = subject(1, 10, 35, 3600).await;
        let account = subject.throttle.account("mallory");
        let attempts = subject.attempts(&account, 3).await;
        assert_eq!(attempts, [ADMITTED, ADMITTED, LOCKED]);
        subject.clock.advance(Duration::from_millis(9_999));
        assert_eq!(subject.attempts(&account, 1).await, [LOCKED]);
        subject.clock.advance(Duration::from_millis(1));
        assert_eq!(subject.attempts(&account, 2).await, [ADMITTED, LOCKED]);
        assert_eq!(subject.throttle.lock_left_secs(&account).await.unwrap(), 20);
        subject.advance_secs(20);
        assert_eq!(subject.attempts(&account, 2).await, [ADMITTED, LOCKED]);
        assert_eq!(subject.throttle.lock_left_secs(&account).await.unwrap(), 35);
        subject.advance_secs(35);
        assert_eq!(subject.attempts(&account, 2).await, [ADMITTED, LOCKED]);
        assert_eq!(subject.throttle.lock_left_secs(&account).await.unwrap(), 35);
        // The refused attempts counted nothing and did not lengthen any lock.
        assert_eq!(subject.throttle.failures(&account).await.unwrap(), 5);
    }

    #[tokio::test]
    async fn failures_are_forgotten_a_window_after_the_first() {
        let subject = subject(5, 60, 600, 3600).await;
        let account = subject.throttle.account("mallory");
        subject.attempts(&account, 3).await;
        subject.advance_secs(3599);
        assert_eq!(subject.throttle.failures(&account).await.unwrap(), 3);
        subject.advance_secs(1);
        assert_eq!(subject.throttle.failures(&account).await.unwrap(), 0);
        // A new window: five free failures again.
        assert_eq!(subject.attempts(&account, 6).await, [ADMITTED; 6]);
        assert_eq!(subject.attempts(&account, 1).await, [LOCKED]);
    }

    #[tokio::test]
    async fn a_lock_longer_than_the_window_holds_to_its_end() {
        let subject = subject(0, 600, 600, 60).await;
        let account = subject.throttle.account("mallory");
        assert_eq!(subject.attempts(&account, 1).await, [ADMITTED]);
        subject.advance_secs(60);
        assert_eq!(subject.throttle.failures(&account).await.unwrap(), 0);
        assert_eq!(subject.attempts(&account, 1).await, [LOCKED]);
        subject.advance_secs(540);
        assert_eq!(subject.attempts(&account, 2).await, [ADMITTED, LOCKED]);
        assert_eq!(subject.throttle.failures(&account).await.unwrap(), 1);
    }

    #[tokio::test]
    async fn a_right_password_clears_the_failures_and_the_lock_of_its_account_only() {
        let subject = subject(2, 60, 600, 3600).await;
        let throttle = &subject.throttle;
        let (mallory, other) = (throttle.account("Mallory"), throttle.account("other"));
        assert_eq!(subject.attempts(&mallory, 4).await.last(), Some(&LOCKED));
        assert_eq!(subject.attempts(&other, 4).await.last(), Some(&LOCKED));
        // An admitted check of the right password (here: the last before the lock).
        throttle
            .record_success(&throttle.account("MALLORY"))
            .await
            .unwrap();
        assert_eq!(throttle.failures(&mallory).await.unwrap(), 0);
        assert_eq!(subject.attempts(&mallory, 3).await, [ADMITTED; 3]);
        assert_eq!(subject.attempts(&other, 1).await, [LOCKED]);
    }
}
