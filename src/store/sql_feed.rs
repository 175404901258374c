//! The revocation feed on SQL: the `revocation_feed` table, read in id order.
//!
//! Readers follow `id > cursor`, so no row may become visible after a reader has passed its
//! id: PostgreSQL hands out sequence values before commit, and two transactions may commit in
//! the other order, which would let a reader skip the slower one for good. So readers only go
//! up to a watermark no in-flight publication can fall below:
//!
//! - each publication's insert takes a transaction-scoped advisory lock in *shared* mode (in the
//!   same statement, before its id is drawn) and holds it to commit: publications never wait
//!   for each other, and their commits (and fsyncs) overlap as usual;
//! - the watermark is read under the same lock in *exclusive* mode, in a transaction of its own:
//!   it is granted once every publication that drew an id has committed or rolled back, so the
//!   highest id then is one below which nothing can still appear. New publications wait behind
//!   it for the length of one `max(id)`.
//!
//! This needs no clock bound (unlike holding back young rows, which a stalled transaction
//! defeats) and, unlike a `pg_snapshot_xmin` watermark, is not held up by unrelated long write
//! transactions elsewhere in the cluster. SQLite has one writer at a time: ids are drawn and
//! committed in order already, and `AUTOINCREMENT` never reuses a purged id.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sea_orm::sea_query::{Expr, Func};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction,
    DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Statement, TransactionTrait,
};
use tokio::sync::Mutex;
use tokio::time::Instant;

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
    /// The last watermark, and when its reading began: readers woken together share one.
    shared_watermark: Arc<Mutex<(i64, Option<Instant>)>>,
}

impl SqlFeed {
    pub(super) fn new(retention: Duration) -> SqlFeed {
        SqlFeed {
            signal: FeedSignal::default(),
            retention,
            shared_watermark: Arc::default(),
        }
    }

    /// A watermark whose reading began after `asked`: everything committed before the caller
    /// asked is below it. Of many readers asking at once, one reads it and the others reuse it.
    async fn watermark_since(
        &self,
        db: &DatabaseConnection,
        asked: Instant,
    ) -> Result<i64, Outage> {
        let mut shared = self.shared_watermark.lock().await;
        if let (value, Some(began)) = *shared
            && began >= asked
        {
            return Ok(value);
        }
        let began = Instant::now();
        let value = watermark(db).await?;
        *shared = (value, Some(began));
        Ok(value)
    }
}

/// A transaction for a revocation and its entry ([`publish`] writes the entry last).
pub(super) async fn begin_publishing(
    db: &DatabaseConnection,
) -> Result<DatabaseTransaction, Outage> {
    Ok(db.begin().await?)
}

/// The PostgreSQL insert: the shared lock is taken by the `FROM` before the row, and its id,
/// exist.
const PUBLISH_SQL: &str = "INSERT INTO revocation_feed \
     (kind, subject, not_before_ms, expires_at, created_ms) \
     SELECT $1, $2, $3, $4, $5 \
     FROM (SELECT pg_advisory_xact_lock_shared($6)) AS publication_lock";

/// Writes `entry` in `txn` (begun by [`begin_publishing`], holding the revocation), stamped
/// with `now`; on PostgreSQL under the publication lock (shared), held until `txn` ends.
pub(super) async fn publish(
    txn: &DatabaseTransaction,
    entry: &FeedEntry,
    now: UnixMillis,
) -> Result<(), Outage> {
    if txn.get_database_backend() == DbBackend::Postgres {
        let values: [sea_orm::Value; 6] = [
            entry.kind.as_str().into(),
            entry.id.clone().into(),
            entry.not_before.map(|at| at.0).into(),
            entry.expires_at.0.into(),
            now.0.into(),
            PUBLISH_LOCK.into(),
        ];
        let statement = Statement::from_sql_and_values(DbBackend::Postgres, PUBLISH_SQL, values);
        txn.execute_raw(statement).await?;
        return Ok(());
    }
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

/// The highest id below which no row can still appear (see the module's notes); 0 for none.
async fn watermark(db: &DatabaseConnection) -> Result<i64, Outage> {
    if db.get_database_backend() != DbBackend::Postgres {
        return Ok(bounds(db).await?.1.unwrap_or(0));
    }
    let txn = db.begin().await?;
    txn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({PUBLISH_LOCK})"))
        .await?;
    let highest = bounds(&txn).await?.1.unwrap_or(0);
    txn.commit().await?;
    Ok(highest)
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
    /// The watermark, then every unexpired row up to it: every row up to it is already
    /// visible, so nothing falls between the two.
    async fn snapshot(&self) -> Result<FeedPage, Outage> {
        let head = self
            .feed()
            .watermark_since(self.db(), Instant::now())
            .await?;
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
        // First the watermark: once it is read no id below it is still in flight, so a gap
        // before the lowest row is a purge, not a publication yet to commit.
        let safe = self
            .feed()
            .watermark_since(self.db(), Instant::now())
            .await?;
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
            .filter(Column::Id.lte(safe))
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
