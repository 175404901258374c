//! Coalesced revocation lookups, for the stores that can read many tokens' entries at once
//! (SQL with one `key IN (…)` query, a single Redis server with one `MGET`).
//!
//! Every verify reads its token's entries. As one query each, perf showed the queries
//! themselves cheap and the hand-offs around them dear: on SQLite each query wakes the
//! connection's worker thread and is woken back, and those wake-ups took a third of the
//! server's time under load; on Redis each command has its own framing, parsing and reply on
//! both sides, and Redis shares the machine's cores. So lookups queue here, and a few reader
//! tasks each take whatever has queued (up to [`MAX_BATCH`] tokens) and read it in one go. An
//! idle reader takes a lone lookup at once: nothing waits for a batch to fill, and batches
//! grow only while the store is busy.
//!
//! A lookup joins only a read that has not started, so it sees every revocation written
//! before it was asked for, exactly as a read of its own would.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::outage::Outage;
use crate::store::revocation::{
    RevocationEntries, TokenKeys, jti_key, parse_jti_state, parse_user_before, rotation_key,
    session_key, user_key, user_version_key,
};

/// Tokens read at once: 256 keys at most, well under SQLite's and PostgreSQL's limits on
/// bound parameters.
const MAX_BATCH: usize = 64;

/// Lookups waiting at most; past this the store is too far behind and a lookup fails at once
/// (503) instead of queueing without bound.
const MAX_QUEUED: usize = 64 * MAX_BATCH;

/// A read that takes longer fails (503) and lets its reader go on: a store that stops
/// answering mid-query (a network black hole) must not hold every verify behind it.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Reads in flight at once. More than one, so a slow round trip (PostgreSQL over a network)
/// does not hold up the lookups queued behind it; each holds one pooled connection.
const READERS: usize = 4;

/// A store's side of it: one read for many keys.
#[async_trait]
pub(crate) trait ReadEntries: Send + Sync + 'static {
    /// The live entries among `keys` (sorted, no duplicates), by key.
    async fn read_entries(&self, keys: &[&str]) -> Result<HashMap<String, String>, Outage>;
}

/// The four keys that can revoke one token, and for a refresh its session's rotation record.
struct TokenEntryKeys {
    jti: String,
    session: String,
    user: String,
    version: String,
    rotation: Option<String>,
}

impl TokenEntryKeys {
    fn of(token: TokenKeys<'_>, with_rotation: bool) -> TokenEntryKeys {
        TokenEntryKeys {
            jti: jti_key(token.user_id, token.jti),
            session: session_key(token.user_id, token.sid),
            user: user_key(token.user_id),
            version: user_version_key(token.user_id),
            rotation: with_rotation.then(|| rotation_key(token.user_id, token.sid)),
        }
    }

    fn all(&self) -> impl Iterator<Item = &str> {
        [&self.jti, &self.session, &self.user, &self.version]
            .into_iter()
            .chain(&self.rotation)
            .map(String::as_str)
    }

    /// This token's entries among those a batch read.
    fn entries_in(&self, found: &HashMap<String, String>) -> RevocationEntries {
        let value = |key: &String| found.get(key).map(String::as_str);
        RevocationEntries {
            jti: value(&self.jti).map(parse_jti_state),
            session_revoked: value(&self.session).is_some(),
            user_revoked_before: value(&self.user).map(parse_user_before),
            user_version: value(&self.version).map(str::to_owned),
            rotation: self.rotation.as_ref().and_then(value).map(str::to_owned),
        }
    }
}

struct Lookup {
    keys: TokenEntryKeys,
    reply: oneshot::Sender<Result<RevocationEntries, Outage>>,
}

/// How much coalescing happened: lookups asked for, and the reads that answered them.
#[derive(Debug, Default)]
pub struct LookupStats {
    lookups: AtomicU64,
    reads: AtomicU64,
}

impl LookupStats {
    pub fn lookups(&self) -> u64 {
        self.lookups.load(Ordering::Relaxed)
    }

    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }
}

/// The queue of lookups; its readers run until every clone of it is dropped.
#[derive(Clone)]
pub(crate) struct Lookups {
    queue: mpsc::Sender<Lookup>,
    stats: Arc<LookupStats>,
}

impl Lookups {
    /// Starts the readers (on the current tokio runtime).
    pub(crate) fn start(store: impl ReadEntries) -> Lookups {
        Lookups::start_with(store, READ_TIMEOUT)
    }

    fn start_with(store: impl ReadEntries, read_timeout: Duration) -> Lookups {
        let (queue, receiver) = mpsc::channel(MAX_QUEUED);
        let reader = Arc::new(Reader {
            store: Box::new(store),
            queue: Mutex::new(receiver),
            read_timeout,
            stats: Arc::default(),
        });
        let stats = reader.stats.clone();
        for _ in 0..READERS {
            tokio::spawn(supervise(reader.clone()));
        }
        Lookups { queue, stats }
    }

    pub(crate) async fn entries(&self, token: TokenKeys<'_>) -> Result<RevocationEntries, Outage> {
        self.lookup(TokenEntryKeys::of(token, false)).await
    }

    /// As [`Lookups::entries`], with the session's rotation record.
    pub(crate) async fn entries_for_rotation(
        &self,
        token: TokenKeys<'_>,
    ) -> Result<RevocationEntries, Outage> {
        self.lookup(TokenEntryKeys::of(token, true)).await
    }

    async fn lookup(&self, keys: TokenEntryKeys) -> Result<RevocationEntries, Outage> {
        let (reply, answer) = oneshot::channel();
        let lookup = Lookup { keys, reply };
        self.queue.try_send(lookup).map_err(|err| match err {
            TrySendError::Full(_) => unavailable("too many revocation lookups queued"),
            TrySendError::Closed(_) => unavailable("the revocation readers have stopped"),
        })?;
        // A dropped reply: the read panicked (its reader is replaced) or the readers stopped.
        answer
            .await
            .map_err(|_| unavailable("the revocation read failed"))?
    }

    pub(crate) fn stats(&self) -> &LookupStats {
        &self.stats
    }
}

fn unavailable(why: &str) -> Outage {
    Outage::unavailable(why.to_owned())
}

/// Runs a reader, and another in its place if it panics: a bug deep in a store driver must not
/// leave lookups unanswered until a restart. Ends when the reader ends (the store was dropped)
/// or the runtime shuts down.
async fn supervise(reader: Arc<Reader>) {
    while let Err(err) = tokio::spawn(reader.clone().run()).await {
        if err.is_cancelled() {
            return;
        }
        tracing::error!(error = %err, "a revocation reader panicked; starting another");
    }
}

struct Reader {
    store: Box<dyn ReadEntries>,
    queue: Mutex<mpsc::Receiver<Lookup>>,
    read_timeout: Duration,
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
        // Askers that have gone (timed out, disconnected) need no read.
        batch.retain(|lookup| !lookup.reply.is_closed());
        if batch.is_empty() {
            return;
        }
        let found = tokio::time::timeout(self.read_timeout, self.read(batch))
            .await
            .unwrap_or_else(|_| Err(unavailable("the revocation read timed out")));
        for lookup in batch.drain(..) {
            let entries = match &found {
                Ok(found) => Ok(lookup.keys.entries_in(found)),
                Err(err) => Err(err.clone()),
            };
            // The asker may have gone (its request timed out or was dropped): nothing to do.
            let _ = lookup.reply.send(entries);
        }
    }

    async fn read(&self, batch: &[Lookup]) -> Result<HashMap<String, String>, Outage> {
        self.stats
            .lookups
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        self.stats.reads.fetch_add(1, Ordering::Relaxed);
        let mut keys: Vec<&str> = batch.iter().flat_map(|l| l.keys.all()).collect();
        keys.sort_unstable();
        keys.dedup();
        self.store.read_entries(&keys).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// More panics than there are readers, so only replaced readers can answer after them.
    const PANICS: u64 = READERS as u64 + 1;

    /// A store read that panics `PANICS` times, then hangs once, then answers.
    #[derive(Default)]
    struct Faulty {
        reads: AtomicU64,
    }

    #[async_trait]
    impl ReadEntries for Faulty {
        async fn read_entries(&self, _: &[&str]) -> Result<HashMap<String, String>, Outage> {
            let read = self.reads.fetch_add(1, Ordering::SeqCst);
            if read < PANICS {
                panic!("a driver bug");
            }
            if read == PANICS {
                std::future::pending::<()>().await;
            }
            Ok(HashMap::new())
        }
    }

    fn token() -> TokenKeys<'static> {
        TokenKeys {
            user_id: "u",
            jti: "j",
            sid: "s",
        }
    }

    /// A panicking read and a hung read each fail their lookups with 503, and the lookups
    /// after them are answered: the readers recover by themselves.
    #[tokio::test]
    async fn a_panicking_or_hung_read_fails_closed_and_the_readers_recover() {
        let lookups = Lookups::start_with(Faulty::default(), Duration::from_millis(200));
        for fault in 0..=PANICS {
            let failed = lookups.entries(token()).await;
            assert!(
                matches!(failed, Err(Outage::Unavailable(_))),
                "{fault}: {failed:?}"
            );
        }
        let entries = lookups.entries(token()).await.unwrap();
        assert_eq!(entries, RevocationEntries::default());
    }

    /// A store that never answers.
    struct Stuck;

    #[async_trait]
    impl ReadEntries for Stuck {
        async fn read_entries(&self, _: &[&str]) -> Result<HashMap<String, String>, Outage> {
            std::future::pending().await
        }
    }

    /// Behind a stuck store the queue fills, and the next lookup fails at once with 503
    /// instead of queueing without bound.
    #[tokio::test]
    async fn a_full_queue_answers_503_at_once() {
        use futures::FutureExt;

        let lookups = Lookups::start_with(Stuck, Duration::from_secs(3600));
        let mut waiting = Vec::new();
        let refused = loop {
            let mut lookup = Box::pin(lookups.entries(token()));
            match lookup.as_mut().now_or_never() {
                None => waiting.push(lookup),
                Some(answer) => break answer,
            }
            assert!(
                waiting.len() <= MAX_QUEUED + READERS * MAX_BATCH,
                "never refused"
            );
        };
        assert!(
            matches!(refused, Err(Outage::Unavailable(_))),
            "{refused:?}"
        );
        assert!(
            waiting.len() >= MAX_QUEUED,
            "refused after {}",
            waiting.len()
        );
    }
}
