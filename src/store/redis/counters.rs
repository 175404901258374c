//! The throttling counters on Redis, under `<prefix>:t:<key>`, apart from the revocation
//! entries: a count with a window (`increment`), and an account's failures with their lock
//! (`reserve`, one script).

use std::time::Duration;

use async_trait::async_trait;

use super::RedisRevocationStore;
use super::scripts::RESERVE;
use crate::clock::UnixMillis;
use crate::outage::Outage;
use crate::store::counters::{Counter, CounterStore, Failures, LockRule, Reservation};

impl RedisRevocationStore {
    fn counter_key(&self, key: &str) -> String {
        format!("{}t:{key}", self.redis.prefix)
    }

    /// A counter from its value and `PTTL` (negative when the key has no expiry: `fallback`).
    fn counter_of(&self, count: i64, ttl_ms: i64, fallback: Duration) -> Counter {
        let left = u64::try_from(ttl_ms).map_or(fallback, Duration::from_millis);
        Counter {
            count,
            expires_at: self.clock.now() + left,
        }
    }
}

/// Counters live under `<prefix>:t:<key>`, apart from the revocation entries.
#[async_trait]
impl CounterStore for RedisRevocationStore {
    async fn increment(&self, key: &str, window: Duration) -> Result<Counter, Outage> {
        // MULTI: create with the window only if absent, add one, read what is left of the window.
        let key = self.counter_key(key);
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("SET")
            .arg(&key)
            .arg(0)
            .arg("PX")
            .arg(whole_millis(window))
            .arg("NX")
            .ignore()
            .cmd("INCR")
            .arg(&key)
            .cmd("PTTL")
            .arg(&key);
        // Not retried: a retry after a lost answer would count the attempt twice.
        let mut connection = self.connection().await?;
        let (count, ttl_ms): (i64, i64) = pipe.query_async(&mut connection).await?;
        Ok(self.counter_of(count, ttl_ms, window))
    }

    async fn reserve(&self, key: &str, rule: &LockRule) -> Result<Reservation, Outage> {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(RESERVE)
            .arg(1)
            .arg(self.counter_key(key))
            .arg(self.clock.now().0)
            .arg(whole_millis(rule.window))
            .arg(rule.free_failures);
        for lock in &rule.locks {
            cmd.arg(u64::try_from(lock.as_millis()).unwrap_or(u64::MAX));
        }
        // Not retried: a retry after a lost answer would count the attempt twice.
        let mut connection = self.connection().await?;
        let (admitted, failures): (bool, i64) = cmd.query_async(&mut connection).await?;
        Ok(match admitted {
            true => Reservation::Admitted { failures },
            false => Reservation::Locked,
        })
    }

    async fn failures(&self, key: &str) -> Result<Option<Failures>, Outage> {
        let cmd = redis::cmd("HMGET")
            .arg(self.counter_key(key))
            .arg("n")
            .arg("w")
            .arg("l")
            .to_owned();
        let fields: (Option<i64>, Option<i64>, Option<i64>) = self.idempotent(&cmd).await?;
        let (Some(count), Some(window_ends), Some(locked_until)) = fields else {
            return Ok(None);
        };
        Ok(Some(Failures {
            count,
            window_ends: UnixMillis(window_ends),
            locked_until: UnixMillis(locked_until),
        }))
    }

    async fn delete_counters(&self, keys: &[&str]) -> Result<(), Outage> {
        if keys.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = keys.iter().map(|key| self.counter_key(key)).collect();
        self.idempotent::<()>(redis::cmd("DEL").arg(keys)).await
    }
}

/// A span in whole milliseconds, at least 1 (`PX`).
fn whole_millis(span: Duration) -> u64 {
    u64::try_from(span.as_millis()).unwrap_or(u64::MAX).max(1)
}
