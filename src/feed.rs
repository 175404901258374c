//! The revocation feed's long poll: readers wait on one in-process signal, never on a store
//! connection each. The signal is bumped by this instance's own publications (at once) and by
//! one watcher task per instance that notices other instances' (one blocking `XREAD` on
//! Redis, one `max(id)` every 200 ms on SQL, and only while somebody waits).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::store::RevocationFeed;
use crate::store::feed::{FeedError, FeedPage, PAGE_LIMIT};

/// The longest a reader may ask to wait.
pub const MAX_WAIT: Duration = Duration::from_secs(30);

/// How long the watcher waits for news per round, and idles between checks for readers.
const WATCH_PATIENCE: Duration = Duration::from_secs(5);
const IDLE_CHECK: Duration = Duration::from_millis(100);

pub struct FeedService {
    store: Arc<dyn RevocationFeed>,
}

impl FeedService {
    /// Starts the instance's watcher (on the current tokio runtime); it stops with the process.
    pub fn start(store: Arc<dyn RevocationFeed>) -> FeedService {
        tokio::spawn(watch(store.clone()));
        FeedService { store }
    }

    pub async fn snapshot(&self) -> Result<FeedPage, FeedError> {
        Ok(self.store.snapshot().await?)
    }

    /// Entries after `cursor`; with none yet, waits up to `wait` for the first.
    pub async fn poll(&self, cursor: &str, wait: Duration) -> Result<FeedPage, FeedError> {
        let deadline = Instant::now() + wait.min(MAX_WAIT);
        // Subscribed before reading: a publication between the read and the wait still wakes us.
        let mut woken = self.store.signal().subscribe();
        loop {
            let page = self.store.read_after(cursor, PAGE_LIMIT).await?;
            if !page.entries.is_empty() {
                return Ok(page);
            }
            let signalled = tokio::time::timeout_at(deadline, woken.changed()).await;
            if !matches!(signalled, Ok(Ok(()))) {
                return Ok(page);
            }
        }
    }
}

/// The watcher: follows the feed's head while readers wait, and wakes them when it moves.
async fn watch(store: Arc<dyn RevocationFeed>) {
    let mut head = String::new();
    loop {
        if store.signal().waiters() == 0 {
            tokio::time::sleep(IDLE_CHECK).await;
            continue;
        }
        match store.watch(&head, WATCH_PATIENCE).await {
            Ok(newest) if newest != head => {
                head = newest;
                store.signal().bump();
            }
            Ok(_) => {}
            Err(err) => {
                tracing::warn!(error = %err, "watching the revocation feed failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
