//! The revocation feed: every revocation, in the order readers follow, for the services that
//! verify jwtd's tokens offline (`jwtd-verifier`). Each store writes an entry in the same atomic
//! step as the revocation it describes (see `sql_feed.rs` and `redis/feed.rs`): the hook is the
//! store's `revoke_*` methods, so every revocation path, present or future, publishes.
//!
//! A cursor is opaque to readers: a row id on SQL, a stream id on Redis.

use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;

use crate::clock::{UnixMillis, UnixSecs};
use crate::outage::Outage;

/// What an entry revokes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedKind {
    /// One token, by `jti`.
    Token,
    /// Every token of a session, by `sid`.
    Session,
    /// Every token of a user whose session started at or before `not_before`.
    User,
    /// Every client-credentials token of a client whose session started at or before `not_before`.
    Client,
}

impl FeedKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FeedKind::Token => "token",
            FeedKind::Session => "session",
            FeedKind::User => "user",
            FeedKind::Client => "client",
        }
    }

    pub fn parse(text: &str) -> Option<FeedKind> {
        Some(match text {
            "token" => FeedKind::Token,
            "session" => FeedKind::Session,
            "user" => FeedKind::User,
            "client" => FeedKind::Client,
            _ => return None,
        })
    }
}

/// One revocation as readers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedEntry {
    pub kind: FeedKind,
    /// A `jti`, a `sid`, a user id or a client id.
    pub id: String,
    /// `User` and `Client`: sessions started at or before this are revoked.
    pub not_before: Option<UnixMillis>,
    /// When the entry can no longer refuse a live token.
    pub expires_at: UnixSecs,
}

impl FeedEntry {
    pub fn token(jti: &str, until: UnixSecs) -> FeedEntry {
        FeedEntry {
            kind: FeedKind::Token,
            id: jti.to_owned(),
            not_before: None,
            expires_at: until,
        }
    }

    pub fn session(sid: &str, until: UnixSecs) -> FeedEntry {
        FeedEntry {
            kind: FeedKind::Session,
            id: sid.to_owned(),
            not_before: None,
            expires_at: until,
        }
    }

    /// A user's or a client's cut-off, as the store holds it after the revocation.
    pub fn subject(kind: FeedKind, id: &str, cutoff: UnixMillis, until: UnixSecs) -> FeedEntry {
        FeedEntry {
            kind,
            id: id.to_owned(),
            not_before: Some(cutoff),
            expires_at: until,
        }
    }
}

/// A page of the feed and the cursor to ask after next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedPage {
    pub cursor: String,
    pub entries: Vec<FeedEntry>,
}

#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// The cursor is older than what the feed keeps, or not one of this feed's: start again
    /// from the snapshot.
    #[error("The cursor is older than the revocations the feed keeps; load the snapshot again")]
    CursorExpired,
    #[error(transparent)]
    Outage(#[from] Outage),
}

/// The most entries one read answers with; a reader behind by more asks again at once.
pub const PAGE_LIMIT: usize = 1_000;

/// Wakes the long polls of this instance: bumped by the store after each of its own
/// publications, and by the watcher when another instance's show up.
#[derive(Clone)]
pub struct FeedSignal(std::sync::Arc<watch::Sender<u64>>);

impl Default for FeedSignal {
    fn default() -> FeedSignal {
        FeedSignal(std::sync::Arc::new(watch::channel(0).0))
    }
}

impl FeedSignal {
    pub fn bump(&self) {
        self.0.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver that sees every bump from now on.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.0.subscribe()
    }

    /// How many long polls wait on this instance (the watcher idles at zero).
    pub fn waiters(&self) -> usize {
        self.0.receiver_count()
    }
}

#[async_trait]
pub trait RevocationFeed: Send + Sync + 'static {
    /// Every entry that may still refuse an unexpired token, and the cursor right after them.
    async fn snapshot(&self) -> Result<FeedPage, Outage>;

    /// Up to `limit` entries after `cursor`, in order; none skipped, also when writers commit
    /// out of order. With nothing new, the page is empty and the cursor unchanged.
    async fn read_after(&self, cursor: &str, limit: usize) -> Result<FeedPage, FeedError>;

    /// Waits up to about `patience` for entries after `head` (published by any instance) and
    /// answers the newest head it knows. The watcher's one call: a single store round trip or
    /// poll per instance, however many readers wait.
    async fn watch(&self, head: &str, patience: Duration) -> Result<String, Outage>;

    /// The signal long polls on this instance wait on.
    fn signal(&self) -> &FeedSignal;
}

/// How long an entry can matter at most: the longest session and the leeway (the store trims
/// the feed to this, and a cursor older than it gets [`FeedError::CursorExpired`]).
pub fn retention(session_lifetime: Duration, leeway: Duration) -> Duration {
    session_lifetime + leeway
}
