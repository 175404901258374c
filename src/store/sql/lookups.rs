//! Coalesced revocation lookups for the SQL store.
//!
//! Every verify reads its token's entries. As one query each, perf showed the queries
//! themselves cheap and the hand-offs around them dear: on SQLite each query wakes the
//! connection's worker thread and is woken back, and those wake-ups and context switches took
//! a third of the server's time under load. So lookups queue here, and a few reader tasks
//! each take whatever has queued (up to [`MAX_BATCH`] tokens) and read it with one
//! `key IN (…)` query. An idle reader takes a lone lookup at once: nothing waits for a batch
//! to fill, and batches grow only while the store is busy.
//!
//! A lookup joins only a query that has not started, so it sees every revocation committed
//! before it was asked for, exactly as a query of its own would.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::clock::SharedClock;
use crate::store::StoreError;
use crate::store::entities::revocation::{Column, Entity, Model};
use crate::store::revocation::{
    RevocationEntries, TokenKeys, jti_key, parse_jti_state, parse_user_before, session_key,
    user_key, user_version_key,
};

/// Tokens read by one query: 256 keys at most, well under SQLite's and PostgreSQL's limits
/// on bound parameters.
const MAX_BATCH: usize = 64;

/// Queries in flight at once. More than one, so a slow round trip (PostgreSQL over a network)
/// does not hold up the lookups queued behind it; each holds one pooled connection.
const READERS: usize = 4;

/// The four keys that can revoke one token.
struct TokenEntryKeys {
    jti: String,
    session: String,
    user: String,
    version: String,
}

impl TokenEntryKeys {
    fn of(token: TokenKeys<'_>) -> TokenEntryKeys {
        TokenEntryKeys {
            jti: jti_key(token.user_id, token.jti),
            session: session_key(token.user_id, token.sid),
            user: user_key(token.user_id),
            version: user_version_key(token.user_id),
        }
    }

    fn all(&self) -> [&str; 4] {
        [&self.jti, &self.session, &self.user, &self.version].map(String::as_str)
    }

    /// This token's entries among the rows a batch read.
    fn entries_in(&self, rows: &HashMap<&str, &Model>) -> RevocationEntries {
        let value = |key: &String| rows.get(key.as_str()).map(|row| row.value.as_str());
        RevocationEntries {
            jti: value(&self.jti).map(parse_jti_state),
            session_revoked: value(&self.session).is_some(),
            user_revoked_before_ms: value(&self.user).map(parse_user_before),
            user_version: value(&self.version).map(str::to_owned),
        }
    }
}

struct Lookup {
    keys: TokenEntryKeys,
    reply: oneshot::Sender<Result<RevocationEntries, StoreError>>,
}

/// How much coalescing happened: lookups asked for, and the queries that answered them.
#[derive(Debug, Default)]
pub struct LookupStats {
    lookups: AtomicU64,
    queries: AtomicU64,
}

impl LookupStats {
    pub fn lookups(&self) -> u64 {
        self.lookups.load(Ordering::Relaxed)
    }

    pub fn queries(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }
}

/// The queue of lookups; its readers run until every clone of it is dropped.
#[derive(Clone)]
pub(super) struct Lookups {
    queue: mpsc::UnboundedSender<Lookup>,
    stats: Arc<LookupStats>,
}

impl Lookups {
    /// Starts the readers (on the current tokio runtime).
    pub(super) fn start(db: DatabaseConnection, clock: SharedClock) -> Lookups {
        let (queue, receiver) = mpsc::unbounded_channel();
        let reader = Arc::new(Reader {
            db,
            clock,
            queue: Mutex::new(receiver),
            stats: Arc::default(),
        });
        let stats = reader.stats.clone();
        for _ in 0..READERS {
            tokio::spawn(reader.clone().run());
        }
        Lookups { queue, stats }
    }

    pub(super) async fn entries(
        &self,
        token: TokenKeys<'_>,
    ) -> Result<RevocationEntries, StoreError> {
        let (reply, answer) = oneshot::channel();
        let lookup = Lookup {
            keys: TokenEntryKeys::of(token),
            reply,
        };
        let stopped = || StoreError::Unavailable("the revocation readers have stopped".into());
        self.queue.send(lookup).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    pub(super) fn stats(&self) -> &LookupStats {
        &self.stats
    }
}

struct Reader {
    db: DatabaseConnection,
    clock: SharedClock,
    queue: Mutex<mpsc::UnboundedReceiver<Lookup>>,
    stats: Arc<LookupStats>,
}

impl Reader {
    async fn run(self: Arc<Reader>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        loop {
            // One reader at a time waits on the queue; it leaves with what has queued by then
            // and the next one waits for what comes after.
            let received = self
                .queue
                .lock()
                .await
                .recv_many(&mut batch, MAX_BATCH)
                .await;
            if received == 0 {
                return; // every sender is gone: the store was dropped
            }
            self.answer(&mut batch).await;
        }
    }

    async fn answer(&self, batch: &mut Vec<Lookup>) {
        let read = self.read(batch).await;
        let rows = read.as_deref().map(by_key);
        for lookup in batch.drain(..) {
            let entries = match &rows {
                Ok(rows) => Ok(lookup.keys.entries_in(rows)),
                Err(err) => Err(StoreError::clone(err)),
            };
            // The asker may have gone (its request timed out or was dropped): nothing to do.
            let _ = lookup.reply.send(entries);
        }
    }

    /// One query for every key of the batch. The key list is padded to a power of two, so
    /// the statements the pool's connections prepare and cache are few.
    async fn read(&self, batch: &[Lookup]) -> Result<Vec<Model>, StoreError> {
        self.stats
            .lookups
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        self.stats.queries.fetch_add(1, Ordering::Relaxed);
        let mut keys: Vec<&str> = batch.iter().flat_map(|l| l.keys.all()).collect();
        keys.sort_unstable();
        keys.dedup();
        keys.resize(keys.len().next_power_of_two(), keys[0]);
        Ok(Entity::find()
            .filter(Column::Key.is_in(keys))
            .filter(Column::ExpiresAt.gte(self.clock.now_secs()))
            .all(&self.db)
            .await?)
    }
}

fn by_key(rows: &[Model]) -> HashMap<&str, &Model> {
    rows.iter().map(|row| (row.key.as_str(), row)).collect()
}
