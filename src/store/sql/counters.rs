//! The throttling counters in the SQL database (`throttle_counters`): each operation one
//! statement, so atomic on SQLite and PostgreSQL alike.

use std::time::Duration;

use async_trait::async_trait;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};

use super::SqlRevocationStore;
use crate::clock::UnixMillis;
use crate::outage::Outage;
use crate::store::counters::{Counter, CounterStore, Failures, LockRule, Reservation};
use crate::store::entities::throttle_counter as counter;

#[async_trait]
impl CounterStore for SqlRevocationStore {
    async fn increment(&self, key: &str, window: Duration) -> Result<Counter, Outage> {
        // One statement, so atomic on SQLite and PostgreSQL alike: a new or expired counter
        // restarts at 1 with a new window, a live one counts up and keeps its end.
        let now = self.clock.now();
        let end = now + window;
        let existing = |column| Expr::col((counter::Entity, column));
        let expired = existing(counter::Column::ExpiresAtMs).lte(now.0);
        let on_conflict = OnConflict::column(counter::Column::Key)
            .value(
                counter::Column::Count,
                Expr::case(expired.clone(), 1).finally(existing(counter::Column::Count).add(1)),
            )
            .value(
                counter::Column::ExpiresAtMs,
                Expr::case(expired, end.0).finally(existing(counter::Column::ExpiresAtMs)),
            )
            .to_owned();
        let row = counter::Entity::insert(counter_row(key, 1, end, UnixMillis(0)))
            .on_conflict(on_conflict)
            .exec_with_returning(&self.db)
            .await?;
        Ok(row.into())
    }

    async fn reserve(&self, key: &str, rule: &LockRule) -> Result<Reservation, Outage> {
        // One statement, so atomic on SQLite and PostgreSQL alike: while the row is locked the
        // update is skipped and no row comes back; otherwise the failure is counted (the first
        // of a new window if the last has ended) and its lock set in the same write.
        let now = self.clock.now();
        let old = |column| Expr::col((counter::Entity, column));
        let window_over = old(counter::Column::ExpiresAtMs).lte(now.0);
        let failures: Expr = Expr::case(window_over.clone(), 1)
            .finally(old(counter::Column::Count).add(1))
            .into();
        let window_ends = Expr::case(window_over, (now + rule.window).0)
            .finally(old(counter::Column::ExpiresAtMs));
        let on_conflict = OnConflict::column(counter::Column::Key)
            .value(counter::Column::Count, failures.clone())
            .value(counter::Column::ExpiresAtMs, window_ends)
            .value(
                counter::Column::LockedUntilMs,
                lock_end(failures, rule, now),
            )
            .action_and_where(old(counter::Column::LockedUntilMs).lte(now.0))
            .to_owned();
        let first = counter_row(key, 1, now + rule.window, lock_end_after(1, rule, now));
        let rows = counter::Entity::insert(first)
            .on_conflict(on_conflict)
            .exec_with_returning_many(&self.db)
            .await?;
        Ok(match rows.first() {
            Some(row) => Reservation::Admitted {
                failures: row.count,
            },
            None => Reservation::Locked,
        })
    }

    async fn failures(&self, key: &str) -> Result<Option<Failures>, Outage> {
        let now = self.clock.now().0;
        let kept = counter::Column::ExpiresAtMs
            .gt(now)
            .or(counter::Column::LockedUntilMs.gt(now));
        let row = counter::Entity::find_by_id(key.to_owned())
            .filter(kept)
            .one(&self.db)
            .await?;
        Ok(row.map(|row| Failures {
            count: row.count,
            window_ends: UnixMillis(row.expires_at_ms),
            locked_until: UnixMillis(row.locked_until_ms),
        }))
    }

    async fn delete_counters(&self, keys: &[&str]) -> Result<(), Outage> {
        counter::Entity::delete_many()
            .filter(counter::Column::Key.is_in(keys.iter().copied()))
            .exec(&self.db)
            .await?;
        Ok(())
    }
}

impl From<counter::Model> for Counter {
    fn from(row: counter::Model) -> Counter {
        Counter {
            count: row.count,
            expires_at: UnixMillis(row.expires_at_ms),
        }
    }
}

/// A record's lock end when it is not locked.
const NOT_LOCKED: UnixMillis = UnixMillis(0);

/// When the `failures`th failure's lock ends, or `NOT_LOCKED` for a free failure.
fn lock_end_after(failures: i64, rule: &LockRule, now: UnixMillis) -> UnixMillis {
    match rule.lock_after(failures) {
        Duration::ZERO => NOT_LOCKED,
        lock => now + lock,
    }
}

fn counter_row(
    key: &str,
    count: i64,
    until: UnixMillis,
    locked_until: UnixMillis,
) -> counter::ActiveModel {
    counter::ActiveModel {
        key: Set(key.to_owned()),
        count: Set(count),
        expires_at_ms: Set(until.0),
        locked_until_ms: Set(locked_until.0),
    }
}

/// When the `failures`-th failure's lock ends, as [`LockRule::lock_after`] says, in SQL: now for
/// the free ones, then each lock in turn, the last one for every failure after.
fn lock_end(failures: Expr, rule: &LockRule, now: UnixMillis) -> Expr {
    let end = |lock: Duration| (now + lock).0;
    let (last, earlier) = rule.locks.split_last().unwrap_or((&Duration::ZERO, &[]));
    // Unlocked is the epoch, not `now`: a reservation racing this one with an earlier clock
    // reading (a burst, or another instance's clock) must not find the record locked.
    let mut case = Expr::case(failures.clone().lte(rule.free_failures), NOT_LOCKED.0);
    for (n, lock) in (rule.free_failures + 1..).zip(earlier) {
        case = case.case(failures.clone().eq(n), end(*lock));
    }
    case.finally(end(*last)).into()
}
