//! Counters with a time window, kept in the revocation store's backend (Redis, or SQL in the
//! embedded mode) so that every instance shares them: login throttling counts attempts per
//! client address and failures per account here.

use std::time::Duration;

use async_trait::async_trait;

use crate::clock::UnixMillis;
use crate::outage::Outage;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counter {
    pub count: i64,
    /// When the counter's window ends and it is gone.
    pub expires_at: UnixMillis,
}

/// How failures lock a record, for [`CounterStore::reserve`] to apply in one atomic step. The
/// stores apply it as given; what the numbers are is the throttle's policy (`src/throttle.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockRule {
    /// Failures are forgotten this long after the first one.
    pub window: Duration,
    /// How many failures lock nothing.
    pub free_failures: i64,
    /// The lock after failure `free_failures + 1`, `+ 2`, …, in whole milliseconds; past the
    /// end, the last one again. Never empty.
    pub locks: Vec<Duration>,
}

impl LockRule {
    /// How long the `failures`-th failure of a window locks the record (zero: not at all).
    pub fn lock_after(&self, failures: i64) -> Duration {
        let past_free = failures.saturating_sub(self.free_failures);
        let Ok(index) = usize::try_from(past_free.saturating_sub(1)) else {
            return Duration::ZERO;
        };
        let last = self.locks.len().saturating_sub(1);
        self.locks
            .get(index.min(last))
            .copied()
            .unwrap_or(Duration::ZERO)
    }
}

/// A record of failures: how many in the window, when they are forgotten, and until when the
/// record is locked (a moment in the past when it is not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failures {
    pub count: i64,
    pub window_ends: UnixMillis,
    pub locked_until: UnixMillis,
}

/// What [`CounterStore::reserve`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// Counted as one more failure (and the lock it earns set) before the caller checks
    /// anything: `failures` is the count with it.
    Admitted { failures: i64 },
    /// The record is locked: nothing was counted.
    Locked,
}

#[async_trait]
pub trait CounterStore: Send + Sync + 'static {
    /// Atomically adds one to the counter `key`. A counter that does not exist (or has
    /// expired) starts at 1 with a window ending `window` from now; increments keep the end.
    async fn increment(&self, key: &str, window: Duration) -> Result<Counter, Outage>;

    /// In one atomic step on the store (one statement, one script): refuses while the failures
    /// record `key` is locked; otherwise counts one more failure (the first of a new window
    /// when the last one has ended) and locks the record for what `rule` says that failure
    /// earns. However many arrive at once, each sees the ones before it.
    async fn reserve(&self, key: &str, rule: &LockRule) -> Result<Reservation, Outage>;

    /// The failures record `key`, if it is still kept (its window or its lock not over).
    async fn failures(&self, key: &str) -> Result<Option<Failures>, Outage>;

    async fn delete_counters(&self, keys: &[&str]) -> Result<(), Outage>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_free_failures_lock_nothing_then_each_lock_in_turn_and_the_last_repeats() {
        let rule = LockRule {
            window: Duration::from_secs(3600),
            free_failures: 2,
            locks: vec![Duration::from_secs(1), Duration::from_secs(2)],
        };
        let locks: Vec<u64> = (0..=5)
            .map(|failures| rule.lock_after(failures).as_secs())
            .collect();
        assert_eq!(locks, [0, 0, 0, 1, 2, 2]);
    }
}
