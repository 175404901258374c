//! The revocation feed on SQL: the `revocation_feed` table, read in id order.
//!
//! Readers follow `id > cursor`, so a row must never become visible after a row with a higher
//! id: PostgreSQL hands out sequence values before commit, and two transactions may commit in
//! the other order, which would let a reader skip the slower one for good. Publishing therefore
//! takes one transaction-scoped advisory lock before anything else and holds it to commit:
//! publications are serialised, and PostgreSQL makes a commit visible before it releases the
//! transaction's locks, so the next publisher's id is drawn after the previous row is visible.
//! Revocations are rare next to verifications, and each such transaction is two short
//! statements, so the serialisation costs little; it needs no clock bound (unlike holding back
//! young rows) and no `xid8` arithmetic. SQLite has one writer at a time: ids are drawn and
//! committed in order already, and `AUTOINCREMENT` never reuses a purged id.

use std::time::Duration;

use async_trait::async_trait;
use sea_orm::sea_query::{Expr, Func};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction,
    DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};

use super::entities::revocation_feed::{ActiveModel, Column, Entity, Model};
use super::feed::{FeedEntry, FeedError, FeedKind, FeedPage, FeedSignal, RevocationFeed};
use super::sql::SqlRevocationStore;
use crate::clock::{UnixMillis, UnixSecs};
use crate::outage::Outage;

/// The advisory lock every publication holds to commit (PostgreSQL); any constant unique to
/// jwtd's schema.
const PUBLISH_LOCK: i64 = 0x6a77_7464_6665_6564; // "jwtdfeed"

/// How often a waiting instance looks for rows other instances published.
const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// The feed's part of the SQL store.
#[derive(Clone)]
pub(super) struct SqlFeed {
    pub(super) signal: FeedSignal,
    pub(super) retention: Duration,
}

impl SqlFeed {
    pub(super) fn new(retention: Duration) -> SqlFeed {
        SqlFeed {
            signal: FeedSignal::default(),
            retention,
        }
    }
}

/// A transaction that may publish: on PostgreSQL it holds the publication lock until it ends.
pub(super) async fn begin_publishing(
    db: &DatabaseConnection,
) -> Result<DatabaseTransaction, Outage> {
    let txn = db.begin().await?;
    if txn.get_database_backend() == DbBackend::Postgres {
        txn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({PUBLISH_LOCK})"))
            .await?;
    }
    Ok(txn)
}

/// Writes `entry` in `txn` (begun by [`begin_publishing`]), stamped with `now`.
pub(super) async fn publish(
    txn: &DatabaseTransaction,
    entry: &FeedEntry,
    now: UnixMillis,
) -> Result<(), Outage> {
    let row = ActiveModel {
        kind: Set(entry.kind.as_str().to_owned()),
        subject: Set(entry.id.clone()),
        not_before_ms: Set(entry.not_before.map(|at| at.0)),
        expires_at: Set(entry.expires_at.0),
        created_ms: Set(now.0),
        ..Default::default()
    };
    Entity::insert(row).exec_without_returning(txn).await?;
    Ok(())
}

/// Deletes the rows older than `retention`, always keeping the newest row so the next
/// snapshot's cursor stays the highest id ever drawn.
pub(super) async fn purge(
    db: &DatabaseConnection,
    now: UnixMillis,
    retention: Duration,
) -> Result<u64, Outage> {
    let Some(newest) = bounds(db).await?.1 else {
        return Ok(0);
    };
    let horizon = horizon(now, retention);
    let deleted = Entity::delete_many()
        .filter(Column::CreatedMs.lt(horizon))
        .filter(Column::Id.lt(newest))
        .exec(db)
        .await?;
    Ok(deleted.rows_affected)
}

fn horizon(now: UnixMillis, retention: Duration) -> i64 {
    let retention = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
    now.0.saturating_sub(retention)
}

/// The lowest and the highest id in the table.
async fn bounds(db: &impl ConnectionTrait) -> Result<(Option<i64>, Option<i64>), Outage> {
    let bounds = Entity::find()
        .select_only()
        .expr(Func::min(Expr::col(Column::Id)))
        .expr(Func::max(Expr::col(Column::Id)))
        .into_tuple::<(Option<i64>, Option<i64>)>()
        .one(db)
        .await?;
    Ok(bounds.unwrap_or((None, None)))
}

fn entry_of(row: Model) -> FeedEntry {
    FeedEntry {
        // An unknown kind cannot be written by this code; read it as the widest, a user's.
        kind: FeedKind::parse(&row.kind).unwrap_or(FeedKind::User),
        id: row.subject,
        not_before: row.not_before_ms.map(UnixMillis),
        expires_at: UnixSecs(row.expires_at),
    }
}

#[async_trait]
impl RevocationFeed for SqlRevocationStore {
    /// The newest id, then every unexpired row up to it: every row up to the newest is
    /// already visible (publications commit in id order), so nothing falls between the two.
    async fn snapshot(&self) -> Result<FeedPage, Outage> {
        let head = bounds(self.db()).await?.1.unwrap_or(0);
        let rows = Entity::find()
            .filter(Column::Id.lte(head))
            .filter(Column::ExpiresAt.gte(self.now().secs().0))
            .order_by_asc(Column::Id)
            .all(self.db())
            .await?;
        Ok(FeedPage {
            cursor: head.to_string(),
            entries: rows.into_iter().map(entry_of).collect(),
        })
    }

    async fn read_after(&self, cursor: &str, limit: usize) -> Result<FeedPage, FeedError> {
        let after: i64 = cursor
            .parse()
            .ok()
            .filter(|id| *id >= 0)
            .ok_or(FeedError::CursorExpired)?;
        let (lowest, highest) = bounds(self.db()).await?;
        // Rows between the cursor and the lowest kept one were purged; a cursor past the
        // highest is not this feed's.
        let purged_since = lowest.is_some_and(|lowest| after < lowest - 1);
        let from_elsewhere = highest.is_some_and(|highest| after > highest);
        if purged_since || from_elsewhere {
            return Err(FeedError::CursorExpired);
        }
        let rows = Entity::find()
            .filter(Column::Id.gt(after))
            .order_by_asc(Column::Id)
            .limit(u64::try_from(limit).unwrap_or(u64::MAX))
            .all(self.db())
            .await
            .map_err(Outage::from)?;
        // The next row is older than the feed keeps: the purge may take it and its neighbours
        // at any moment, so the reader starts again from the snapshot.
        let horizon = horizon(self.now(), self.feed().retention);
        if rows.first().is_some_and(|row| row.created_ms < horizon) {
            return Err(FeedError::CursorExpired);
        }
        let cursor = rows.last().map_or(after, |row| row.id).to_string();
        Ok(FeedPage {
            cursor,
            entries: rows.into_iter().map(entry_of).collect(),
        })
    }

    /// One `max(id)` per poll interval for the whole instance.
    async fn watch(&self, head: &str, patience: Duration) -> Result<String, Outage> {
        tokio::time::sleep(patience.min(POLL_INTERVAL)).await;
        let newest = bounds(self.db()).await?.1;
        Ok(newest.map_or_else(|| head.to_owned(), |id| id.to_string()))
    }

    fn signal(&self) -> &FeedSignal {
        &self.feed().signal
    }
}
