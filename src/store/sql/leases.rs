//! The SQL store's side of revocation leases (`store::leases`): the revision every revocation
//! bumps and the instances' registrations, rows of the `revocations` table.
//!
//! The revision is the sum of [`REVISION_SHARDS`] counters, each write bumping one of them in
//! turn: a bump holds its row's lock to the commit, and with one row every revocation on
//! PostgreSQL would queue behind the one before it (500 at once took over the pool's 3 s). A
//! registration bumps them all, so it is ordered with every writer.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{LazyLock, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait, QueryFilter,
    Statement, TransactionTrait,
};

use super::{SqlRevocationStore, entry};
use crate::clock::UnixSecs;
use crate::outage::Outage;
use crate::store::entities::revocation::{Column, Entity};
use crate::store::leases as store_leases;

impl SqlRevocationStore {
    /// Bumps the revision in `txn` (holding a write), reads the longest lease registered,
    /// commits, and waits that lease out (`store::leases`). The bump locks the revision's row
    /// until the commit, and registrations take the same lock: a registration this read misses
    /// commits after the bump, so the poll that follows it reads the new revision. A commit
    /// whose answer is lost may have happened: that waits too.
    pub(super) async fn commit_bumped(&self, txn: DatabaseTransaction) -> Result<(), Outage> {
        let shard = NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % REVISION_SHARDS;
        bump_revision(&txn, shard).await?;
        let longest = Registrations::read(&txn)
            .await?
            .longest(database_millis(&txn).await?);
        let committed = txn.commit().await;
        store_leases::outlast(longest, self.lease).await;
        Ok(committed?)
    }

    /// Stores this instance's registration of `lease_ms` for [`store_leases::REGISTRATION`] by
    /// the database's clock, under every revision counter's lock, taken in order (see
    /// [`SqlRevocationStore::commit_bumped`]).
    async fn register(&self, lease_ms: u64) -> Result<(), Outage> {
        let started = Instant::now();
        let txn = self.db.begin().await?;
        for shard in 0..REVISION_SHARDS {
            bump_revision(&txn, shard).await?;
        }
        let now = database_millis(&txn).await?;
        let mut registrations = Registrations::read(&txn).await?;
        registrations.0.retain(|_, until| *until >= now);
        let until = now.saturating_add(store_leases::millis(store_leases::REGISTRATION));
        registrations.0.insert(lease_ms, until);
        let row = entry(
            LEASES_KEY.into(),
            registrations.encode(),
            UnixSecs(i64::MAX),
        );
        Entity::insert(row)
            .on_conflict(
                OnConflict::column(Column::Key)
                    .update_column(Column::Value)
                    .to_owned(),
            )
            .exec_without_returning(&txn)
            .await?;
        txn.commit().await?;
        self.registrations().insert(lease_ms, started);
        Ok(())
    }

    fn registrations(&self) -> MutexGuard<'_, HashMap<u64, Instant>> {
        self.registered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// One read of the revision and the registrations. The registration of `lease` is stored
    /// again when this instance stored it over half a registration ago (or never, or it is
    /// gone), and then the next poll answers.
    pub(super) async fn poll_lease(&self, lease: Duration) -> Result<Option<u64>, Outage> {
        let lease_ms = store_leases::millis(lease);
        let keys = REVISION_KEYS.iter().map(String::as_str).chain([LEASES_KEY]);
        let rows = Entity::find()
            .filter(Column::Key.is_in(keys))
            .all(&self.db)
            .await?;
        let stored = rows.iter().any(|row| {
            row.key == LEASES_KEY && Registrations::decode(&row.value).0.contains_key(&lease_ms)
        });
        let recent = self
            .registrations()
            .get(&lease_ms)
            .is_some_and(|at| at.elapsed() < store_leases::REGISTRATION / 2);
        if !(stored && recent) {
            self.register(lease_ms).await?;
            return Ok(None);
        }
        let counters = rows
            .iter()
            .filter(|row| row.key.starts_with(REVISION_PREFIX));
        let revision = counters
            .map(|row| row.value.parse::<u64>())
            .sum::<Result<u64, _>>();
        revision
            .map(Some)
            .map_err(|_| Outage::internal("a revocation revision counter is not a number"))
    }
}

/// The revision every write that can revoke a token bumps, and the registered leases
/// ([`Registrations`]). Never purged (they expire in the year 292277026596); no token's key
/// starts with `~`.
const REVISION_PREFIX: &str = "~revision:";
const LEASES_KEY: &str = "~leases";

/// Counters the revision is spread over (see the module's documentation).
const REVISION_SHARDS: usize = 16;

static REVISION_KEYS: LazyLock<Vec<String>> = LazyLock::new(|| {
    (0..REVISION_SHARDS)
        .map(|shard| format!("{REVISION_PREFIX}{shard}"))
        .collect()
});

/// The counter this process bumps next: concurrent writes take different rows.
static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

/// The leases registered (ms), each with when its registration ends (unix ms of the database's
/// clock), stored as `50=1767225600000;200=…` in one row: read by its key, so no `LIKE` and
/// no collation is involved.
#[derive(Default)]
struct Registrations(HashMap<u64, u64>);

impl Registrations {
    async fn read(txn: &DatabaseTransaction) -> Result<Registrations, Outage> {
        let row = Entity::find_by_id(LEASES_KEY).one(txn).await?;
        Ok(row.map_or_else(Registrations::default, |row| {
            Registrations::decode(&row.value)
        }))
    }

    /// Unreadable parts are skipped: only jwtd writes the row.
    fn decode(value: &str) -> Registrations {
        let parse = |part: &str| {
            let (lease, until) = part.split_once('=')?;
            Some((lease.parse().ok()?, until.parse().ok()?))
        };
        Registrations(value.split(';').filter_map(parse).collect())
    }

    fn encode(&self) -> String {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|(l, until)| format!("{l}={until}"))
            .collect();
        parts.join(";")
    }

    /// The longest lease whose registration has not ended at `now`.
    fn longest(&self, now: u64) -> u64 {
        let live = self.0.iter().filter(|(_, until)| **until >= now);
        live.map(|(lease, _)| *lease).max().unwrap_or(0)
    }
}

/// Unix milliseconds by the database's clock: PostgreSQL's (one clock for every instance);
/// SQLite's database is on this machine, whose clock every instance shares.
async fn database_millis(db: &impl ConnectionTrait) -> Result<u64, Outage> {
    if db.get_database_backend() != DbBackend::Postgres {
        let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        return Ok(since_epoch.map_or(0, store_leases::millis));
    }
    let now = Statement::from_string(
        DbBackend::Postgres,
        "SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT) AS now_ms",
    );
    let row = db.query_one_raw(now).await?;
    let millis: i64 = match row {
        Some(row) => row.try_get("", "now_ms")?,
        None => return Err(Outage::internal("PostgreSQL did not tell the time")),
    };
    Ok(u64::try_from(millis).unwrap_or(0))
}

/// Adds one to a revision counter (creating it at 1), holding its row's lock to the commit.
async fn bump_revision(txn: &DatabaseTransaction, shard: usize) -> Result<(), Outage> {
    let stored = Expr::col((Entity, Column::Value)).cast_as("BIGINT");
    let on_conflict = OnConflict::column(Column::Key)
        .value(Column::Value, stored.add(1).cast_as("TEXT"))
        .to_owned();
    let key = REVISION_KEYS[shard].clone();
    Entity::insert(entry(key, "1".into(), UnixSecs(i64::MAX)))
        .on_conflict(on_conflict)
        .exec_without_returning(txn)
        .await?;
    Ok(())
}
