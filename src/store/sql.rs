//! The SQL revocation store (SQLite or PostgreSQL through SeaORM): the embedded default.
//! A rotation is a compare-and-set of the session's record; expired rows are purged
//! periodically; concurrent lookups are read together ([`Lookups`]). The throttling counters,
//! in the same database, are in `counters`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction,
    EntityTrait, QueryFilter, QueryTrait, Statement, TransactionTrait,
};

use super::entities::revocation::{ActiveModel, Column, Entity};
use super::entities::throttle_counter as counter;
use super::feed::{FeedEntry, FeedKind};
use super::lookups::{LookupStats, Lookups, ReadEntries};
use super::revocation::{
    JtiState, REVOKED, RevocationEntries, RevocationStore, Rotation, RotationOutcome,
    RotationRecord, RotationStep, TokenKeys, decide_rotation, jti_key, parse_jti_state,
    parse_user_before, rotation_key, session_key, user_key, user_version_key,
};
use super::sql_feed::{self, SqlFeed};
use crate::clock::{SharedClock, UnixMillis, UnixSecs};
use crate::outage::Outage;

mod counters;
mod leases;

/// Reads and compare-and-sets one rotation may take: a lost race is decided by the next read
/// (the winner's record), so more than two means the record is changing under heavy reuse.
const ROTATION_ATTEMPTS: usize = 3;

#[derive(Clone)]
pub struct SqlRevocationStore {
    db: DatabaseConnection,
    clock: SharedClock,
    lookups: Lookups,
    feed: SqlFeed,
    /// This instance's `revocation.lease`: its writes wait at least that long.
    lease: Duration,
    /// When this instance last stored the registration of a lease (ms), by its monotonic clock.
    registered: Arc<Mutex<HashMap<u64, Instant>>>,
}

impl SqlRevocationStore {
    /// Starts the tasks that read lookups (on the current tokio runtime); they stop when the
    /// last clone of the store is dropped.
    pub fn new(db: DatabaseConnection, clock: SharedClock) -> SqlRevocationStore {
        let lookups = Lookups::start(SqlEntries {
            db: db.clone(),
            clock: clock.clone(),
            statements: Default::default(),
        });
        let feed = SqlFeed::new(super::feed::retention(
            Duration::from_secs(30 * 24 * 3600),
            Duration::ZERO,
        ));
        SqlRevocationStore {
            db,
            clock,
            lookups,
            feed,
            lease: Duration::ZERO,
            registered: Arc::default(),
        }
    }

    /// The instance's `revocation.lease`, which its own writes wait out at least.
    pub fn with_lease(mut self, lease: Duration) -> SqlRevocationStore {
        self.lease = lease;
        self
    }

    /// How long the feed keeps entries (`store::feed::retention`; 30 days unless set).
    pub fn with_feed_retention(mut self, retention: Duration) -> SqlRevocationStore {
        self.feed.retention = retention;
        self
    }

    pub(super) fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    pub(super) fn now(&self) -> UnixMillis {
        self.clock.now()
    }

    pub(super) fn feed(&self) -> &SqlFeed {
        &self.feed
    }

    /// Publishes `entry` in `txn` (begun by `sql_feed::begin_publishing`, holding the
    /// revocation it describes) and commits both at once; wakes the feed's readers after.
    async fn publish_and_commit(
        &self,
        txn: DatabaseTransaction,
        entry: FeedEntry,
    ) -> Result<(), Outage> {
        sql_feed::publish(&txn, &entry, self.clock.now()).await?;
        self.commit_bumped(txn).await?;
        self.feed.signal.bump();
        Ok(())
    }

    /// How many token lookups were asked for, and how many queries answered them.
    pub fn lookup_stats(&self) -> &LookupStats {
        self.lookups.stats()
    }

    /// Deletes entries whose tokens have all expired, and counters whose window and lock have
    /// ended; returns how many.
    pub async fn purge_expired(&self) -> Result<u64, Outage> {
        let now = self.clock.now();
        let revocations = Entity::delete_many()
            .filter(Column::ExpiresAt.lt(now.secs().0))
            .exec(&self.db)
            .await?;
        let counters = counter::Entity::delete_many()
            .filter(counter::Column::ExpiresAtMs.lte(now.0))
            .filter(counter::Column::LockedUntilMs.lte(now.0))
            .exec(&self.db)
            .await?;
        let feed = sql_feed::purge(&self.db, now, self.feed.retention).await?;
        Ok(revocations.rows_affected + counters.rows_affected + feed)
    }

    /// Purges every `interval` for as long as the process runs.
    pub fn spawn_purger(self, interval: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            loop {
                ticker.tick().await;
                match self.purge_expired().await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(purged = n, "expired revocations purged"),
                    Err(err) => tracing::warn!(error = %err, "purging expired revocations failed"),
                }
            }
        })
    }

    /// Stores the first rotation record of a session, unless a live one exists (an expired
    /// one not yet purged is replaced). Whether this call stored it.
    async fn create_rotation(&self, rotation: &Rotation<'_>) -> Result<bool, Outage> {
        let token = rotation.token;
        let key = rotation_key(token.user_id, token.sid);
        let value = RotationRecord::after(rotation).encode();
        let now = self.clock.now().secs().0;
        let on_conflict = OnConflict::column(Column::Key)
            .update_columns([Column::Value, Column::ExpiresAt])
            .action_and_where(Expr::col((Entity, Column::ExpiresAt)).lt(now))
            .to_owned();
        let stored = Entity::insert(entry(key, value, rotation.until))
            .on_conflict(on_conflict)
            .exec_without_returning(&self.db)
            .await?;
        Ok(stored > 0)
    }

    /// Replaces the session's rotation record if it is still `stored`. Whether it was.
    async fn replace_rotation(
        &self,
        rotation: &Rotation<'_>,
        stored: &str,
    ) -> Result<bool, Outage> {
        let token = rotation.token;
        let replaced = Entity::update_many()
            .col_expr(
                Column::Value,
                Expr::value(RotationRecord::after(rotation).encode()),
            )
            .col_expr(Column::ExpiresAt, Expr::value(rotation.until.0))
            .filter(Column::Key.eq(rotation_key(token.user_id, token.sid)))
            .filter(Column::Value.eq(stored))
            .exec(&self.db)
            .await?;
        Ok(replaced.rows_affected == 1)
    }

    async fn live_value(&self, key: String) -> Result<Option<String>, Outage> {
        let row = Entity::find_by_id(key)
            .filter(Column::ExpiresAt.gte(self.clock.now().secs().0))
            .one(&self.db)
            .await?;
        Ok(row.map(|row| row.value))
    }
}

/// What the lookup readers query with.
struct SqlEntries {
    db: DatabaseConnection,
    clock: SharedClock,
    /// The query's text for 2^i keys, built once: building it with sea-query for every lookup
    /// cost a tenth of a verify on SQLite (callgrind).
    statements: [OnceLock<String>; 16],
}

#[async_trait]
impl ReadEntries for SqlEntries {
    /// One query. The key list is padded to a power of two, so the statements the pool's
    /// connections prepare and cache are few.
    async fn read_entries(&self, keys: &[&str]) -> Result<HashMap<String, String>, Outage> {
        let Some(&first) = keys.first() else {
            return Ok(HashMap::new());
        };
        let padded = keys.len().next_power_of_two();
        let values = (0..padded)
            .map(|i| keys.get(i).copied().unwrap_or(first).into())
            .chain([self.clock.now().secs().0.into()]);
        let backend = self.db.get_database_backend();
        let statement = Statement::from_sql_and_values(backend, self.query(padded), values);
        let rows = Entity::find().from_raw_sql(statement).all(&self.db).await?;
        Ok(rows.into_iter().map(|row| (row.key, row.value)).collect())
    }
}

impl SqlEntries {
    /// The live entries among `keys` keys (a power of two), then the time now (s).
    fn query(&self, keys: usize) -> &str {
        self.statements[keys.trailing_zeros() as usize].get_or_init(|| {
            Entity::find()
                .filter(Column::Key.is_in(vec![""; keys]))
                .filter(Column::ExpiresAt.gte(0))
                .build(self.db.get_database_backend())
                .sql
        })
    }
}

async fn upsert(
    db: &impl ConnectionTrait,
    key: String,
    value: String,
    until: UnixSecs,
) -> Result<(), Outage> {
    Entity::insert(entry(key, value, until))
        .on_conflict(
            OnConflict::column(Column::Key)
                .update_columns([Column::Value, Column::ExpiresAt])
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    Ok(())
}

fn entry(key: String, value: String, until: UnixSecs) -> ActiveModel {
    ActiveModel {
        key: Set(key),
        value: Set(value),
        expires_at: Set(until.0),
    }
}

/// The cut-off of a user's (or client's) sessions, in one statement, so atomic: it only moves
/// forward, by at least a millisecond (see [`RevocationStore::revoke_user`]), and its expiry
/// never shortens. Answers the cut-off stored, which is what the feed publishes.
async fn move_cutoff_forward(
    db: &impl ConnectionTrait,
    subject: &str,
    before: UnixMillis,
    until: UnixSecs,
) -> Result<UnixMillis, Outage> {
    let existing = |column| Expr::col((Entity, column));
    let stored = existing(Column::Value).cast_as("BIGINT");
    let next = stored.clone().add(1);
    let on_conflict = OnConflict::column(Column::Key)
        .value(
            Column::Value,
            Expr::case(stored.lt(before.0), before.0.to_string()).finally(next.cast_as("TEXT")),
        )
        .value(
            Column::ExpiresAt,
            Expr::case(existing(Column::ExpiresAt).lt(until.0), until.0)
                .finally(existing(Column::ExpiresAt)),
        )
        .to_owned();
    let row = Entity::insert(entry(user_key(subject), before.0.to_string(), until))
        .on_conflict(on_conflict)
        .exec_with_returning(db)
        .await?;
    Ok(parse_user_before(&row.value))
}

impl SqlRevocationStore {
    async fn revoke_subject(
        &self,
        kind: FeedKind,
        subject: &str,
        before: UnixMillis,
        until: UnixSecs,
    ) -> Result<(), Outage> {
        let txn = sql_feed::begin_publishing(&self.db).await?;
        let cutoff = move_cutoff_forward(&txn, subject, before, until).await?;
        self.publish_and_commit(txn, FeedEntry::subject(kind, subject, cutoff, until))
            .await
    }
}

#[async_trait]
impl RevocationStore for SqlRevocationStore {
    async fn entries(&self, token: TokenKeys<'_>) -> Result<RevocationEntries, Outage> {
        self.lookups.entries(token).await
    }

    async fn jti_state(&self, user_id: &str, jti: &str) -> Result<Option<JtiState>, Outage> {
        let value = self.live_value(jti_key(user_id, jti)).await?;
        Ok(value.as_deref().map(parse_jti_state))
    }

    async fn user_revoked_before(&self, user_id: &str) -> Result<Option<UnixMillis>, Outage> {
        let value = self.live_value(user_key(user_id)).await?;
        Ok(value.as_deref().map(parse_user_before))
    }

    async fn revoke_token(&self, user_id: &str, jti: &str, until: UnixSecs) -> Result<(), Outage> {
        let txn = sql_feed::begin_publishing(&self.db).await?;
        upsert(&txn, jti_key(user_id, jti), REVOKED.into(), until).await?;
        self.publish_and_commit(txn, FeedEntry::token(jti, until))
            .await
    }

    async fn revoke_session(
        &self,
        user_id: &str,
        sid: &str,
        until: UnixSecs,
    ) -> Result<(), Outage> {
        let txn = sql_feed::begin_publishing(&self.db).await?;
        upsert(&txn, session_key(user_id, sid), REVOKED.into(), until).await?;
        self.publish_and_commit(txn, FeedEntry::session(sid, until))
            .await
    }

    async fn revoke_user(
        &self,
        user_id: &str,
        before: UnixMillis,
        until: UnixSecs,
    ) -> Result<(), Outage> {
        self.revoke_subject(FeedKind::User, user_id, before, until)
            .await
    }

    async fn revoke_client(
        &self,
        client_id: &str,
        before: UnixMillis,
        until: UnixSecs,
    ) -> Result<(), Outage> {
        self.revoke_subject(FeedKind::Client, client_id, before, until)
            .await
    }

    /// The entries and the session's record in one (batched) read, then a compare-and-set:
    /// a create that does nothing if a live record appeared meanwhile, or a replace that
    /// matches only the record it read. A call that loses reads again and then finds the
    /// winner's record, in which its token is the previous one (grace or reuse).
    async fn rotate(&self, rotation: &Rotation<'_>) -> Result<RotationOutcome, Outage> {
        for _ in 0..ROTATION_ATTEMPTS {
            let entries = self.lookups.entries_for_rotation(rotation.token).await?;
            let won = match decide_rotation(rotation, &entries) {
                RotationStep::Answer(outcome) => return Ok(outcome),
                RotationStep::Create => self.create_rotation(rotation).await?,
                RotationStep::Replace { stored } => {
                    self.replace_rotation(rotation, &stored).await?
                }
            };
            if won {
                return Ok(RotationOutcome::Rotated);
            }
        }
        Err(Outage::busy("the session's rotation record kept changing"))
    }

    async fn mark_user_changed(
        &self,
        user_id: &str,
        version: &str,
        until: UnixSecs,
    ) -> Result<(), Outage> {
        let txn = self.db.begin().await?;
        upsert(&txn, user_version_key(user_id), version.to_owned(), until).await?;
        self.commit_bumped(txn).await
    }

    fn keeps_revision(&self) -> bool {
        true
    }

    async fn poll_revision(&self, lease: Duration) -> Result<Option<u64>, Outage> {
        self.poll_lease(lease).await
    }

    async fn ping(&self) -> Result<(), Outage> {
        Ok(self.db.ping().await?)
    }
}
