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

#[async_trait]
pub trait CounterStore: Send + Sync + 'static {
    /// Atomically adds one to the counter `key`. A counter that does not exist (or has
    /// expired) starts at 1 with a window ending `window` from now; increments keep the end.
    async fn increment(&self, key: &str, window: Duration) -> Result<Counter, Outage>;

    /// The live counter `key`, if any.
    async fn counter(&self, key: &str) -> Result<Option<Counter>, Outage>;

    /// Sets the counter `key` to `count`, ending at `until`, whatever was there.
    async fn set_counter(&self, key: &str, count: i64, until: UnixMillis) -> Result<(), Outage>;

    async fn delete_counters(&self, keys: &[&str]) -> Result<(), Outage>;
}
