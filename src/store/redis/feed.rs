//! The revocation feed on Redis: one stream, `<prefix>:feed`.
//!
//! - Publishing: on a single server the revocation and its `XADD` go in one `MULTI`, so both or
//!   neither happen. On a Redis Cluster the stream and the user's keys live in different slots,
//!   which no `MULTI` or script can span: the entry is published first and the revocation
//!   applied second. A failure in between leaves verifiers stricter than jwtd (they refuse a
//!   token jwtd still accepts, and the caller got an error, so it retries), never looser.
//! - Ids follow the publishing instance's clock (`<ms>-*`, never below the stream's newest), so
//!   the trim (`MINID`, the longest an entry can matter) and a cursor's age go by the same clock
//!   as every entry's expiry, an injected one included.
//! - Waiting: one blocking `XREAD` per instance, on a connection of its own (a blocked command
//!   would hold up everything queued behind it on the shared one), wakes every long poll of the
//!   instance; each then reads with a plain `XRANGE` on the shared connection.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::RedisRevocationStore;
use super::connection::Redis;
use crate::clock::{UnixMillis, UnixSecs};
use crate::config::RedisSettings;
use crate::outage::Outage;
use crate::store::feed::{FeedEntry, FeedError, FeedKind, FeedPage, FeedSignal, RevocationFeed};

/// KEYS[1] the stream, KEYS[2] its floor (the newest id the trim removed: trimming does not
/// record it itself), KEYS[3] (single server, revoke-all only) the cut-off whose
/// stored value becomes the entry's `n`; ARGV now (ms), the oldest id kept (ms), then field,
/// value, …. Answers the new entry's id.
const PUBLISH: &str = r"
local doomed = redis.call('XREVRANGE', KEYS[1], '(' .. ARGV[2] .. '-0', '-', 'COUNT', 1)[1]
if doomed then redis.call('SET', KEYS[2], doomed[1]) end
local ms = tonumber(ARGV[1])
local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]
if top then
  local top_ms = tonumber(string.match(top[1], '^(%d+)'))
  if top_ms > ms then ms = top_ms end
end
local fields = {}
for i = 3, #ARGV do fields[#fields + 1] = ARGV[i] end
if KEYS[3] then
  local cutoff = redis.call('GET', KEYS[3])
  if cutoff then
    fields[#fields + 1] = 'n'
    fields[#fields + 1] = cutoff
  end
end
return redis.call('XADD', KEYS[1], 'MINID', ARGV[2], string.format('%d', ms) .. '-*', unpack(fields))
";

/// KEYS[1] the stream, KEYS[2] its floor; ARGV the id to read after and at most how many (''
/// for all). Answers the floor (the newest id trimmed away), the newest id ever added,
/// and the entries, read at once.
const READ: &str = r"
local floor = redis.call('GET', KEYS[2]) or '0-0'
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {floor, '0-0', {}}
end
local info = redis.call('XINFO', 'STREAM', KEYS[1])
local last = '0-0'
for i = 1, #info, 2 do
  if info[i] == 'last-generated-id' then last = info[i + 1] end
end
local entries
if ARGV[2] == '' then
  entries = redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+')
else
  entries = redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', ARGV[2])
end
return {floor, last, entries}
";

/// How long the instance's one `XREAD` blocks before it asks again.
const BLOCK: Duration = Duration::from_secs(5);

type StreamEntry = (String, Vec<String>);

/// The feed's part of the Redis store.
pub(super) struct RedisFeed {
    stream: String,
    floor: String,
    signal: FeedSignal,
    retention: Duration,
    /// The watcher's own connection, with a response timeout longer than its `BLOCK`.
    watcher: Arc<Redis>,
}

impl RedisFeed {
    pub(super) fn new(settings: &RedisSettings, prefix: &str) -> Result<RedisFeed, Outage> {
        let mut blocking = settings.clone();
        blocking.response_timeout = settings.response_timeout + BLOCK;
        Ok(RedisFeed {
            // One hash tag: the stream and its floor share a cluster slot.
            stream: format!("{prefix}{{feed}}"),
            floor: format!("{prefix}{{feed}}:floor"),
            signal: FeedSignal::default(),
            retention: super::super::feed::retention(
                Duration::from_secs(30 * 24 * 3600),
                Duration::ZERO,
            ),
            watcher: Arc::new(Redis::new(&blocking)?),
        })
    }

    pub(super) fn set_retention(&mut self, retention: Duration) {
        self.retention = retention;
    }

    pub(super) fn signal(&self) -> &FeedSignal {
        &self.signal
    }

    /// The `XADD` of `entry`, as a script; with `cutoff_key` (single server only: it is in
    /// another slot) the entry's `not_before` is read from it when the script runs.
    pub(super) fn publish_command(
        &self,
        entry: &FeedEntry,
        cutoff_key: Option<&str>,
        now: UnixMillis,
    ) -> redis::Cmd {
        let oldest = now.0.saturating_sub(millis(self.retention)).max(0);
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(PUBLISH)
            .arg(2 + usize::from(cutoff_key.is_some()))
            .arg(&self.stream)
            .arg(&self.floor);
        if let Some(key) = cutoff_key {
            cmd.arg(key);
        }
        cmd.arg(now.0)
            .arg(oldest)
            .arg("k")
            .arg(entry.kind.as_str())
            .arg("i")
            .arg(&entry.id)
            .arg("e")
            .arg(entry.expires_at.0);
        if let (None, Some(not_before)) = (cutoff_key, entry.not_before) {
            cmd.arg("n").arg(not_before.0);
        }
        cmd
    }

    fn read_command(&self, after: StreamId, limit: Option<usize>) -> redis::Cmd {
        redis::cmd("EVAL")
            .arg(READ)
            .arg(2)
            .arg(&self.stream)
            .arg(&self.floor)
            .arg(after.to_string())
            .arg(limit.map_or_else(String::new, |n| n.to_string()))
            .to_owned()
    }
}

fn millis(span: Duration) -> i64 {
    i64::try_from(span.as_millis()).unwrap_or(i64::MAX)
}

/// A stream entry id, `<ms>-<seq>`, ordered as Redis orders them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct StreamId(u64, u64);

impl StreamId {
    fn parse(text: &str) -> Option<StreamId> {
        let (ms, seq) = text.split_once('-')?;
        Some(StreamId(ms.parse().ok()?, seq.parse().ok()?))
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.0, self.1)
    }
}

/// An entry as `PUBLISH` wrote it; anything unreadable is an internal error (fail closed: the
/// reader gets no page rather than a page with a hole).
fn entry_of((id, fields): StreamEntry) -> Result<FeedEntry, Outage> {
    let field = |name: &str| {
        fields
            .chunks(2)
            .find(|pair| pair[0] == name)
            .and_then(|pair| pair.get(1))
    };
    let unreadable = || Outage::internal(format!("feed entry {id} is unreadable"));
    let kind = field("k")
        .and_then(|kind| FeedKind::parse(kind))
        .ok_or_else(unreadable)?;
    let expires_at = field("e")
        .and_then(|e| e.parse().ok())
        .ok_or_else(unreadable)?;
    let not_before = match field("n") {
        Some(n) => Some(UnixMillis(n.parse().map_err(|_| unreadable())?)),
        None => None,
    };
    Ok(FeedEntry {
        kind,
        id: field("i").ok_or_else(unreadable)?.clone(),
        not_before,
        expires_at: UnixSecs(expires_at),
    })
}

fn page_of(cursor: StreamId, entries: Vec<StreamEntry>) -> Result<FeedPage, Outage> {
    let cursor = match entries.last() {
        Some((id, _)) => id.clone(),
        None => cursor.to_string(),
    };
    let entries = entries
        .into_iter()
        .map(entry_of)
        .collect::<Result<_, _>>()?;
    Ok(FeedPage { cursor, entries })
}

type ReadAnswer = (String, String, Vec<StreamEntry>);

fn stream_id(text: &str) -> Result<StreamId, Outage> {
    StreamId::parse(text).ok_or_else(|| Outage::internal(format!("stream id {text:?}")))
}

#[async_trait]
impl RevocationFeed for RedisRevocationStore {
    /// The whole stream (trimmed to what can still matter) and the newest id ever added, in
    /// one script, so nothing falls between them.
    async fn snapshot(&self) -> Result<FeedPage, Outage> {
        let cmd = self.feed.read_command(StreamId(0, 0), None);
        let (_, last, entries): ReadAnswer = self.redis.idempotent(&cmd).await?;
        let mut page = page_of(stream_id(&last)?, entries)?;
        page.cursor = last;
        let now = self.clock.now().secs();
        page.entries.retain(|entry| entry.expires_at >= now);
        Ok(page)
    }

    async fn read_after(&self, cursor: &str, limit: usize) -> Result<FeedPage, FeedError> {
        let after = StreamId::parse(cursor).ok_or(FeedError::CursorExpired)?;
        let cmd = self.feed.read_command(after, Some(limit));
        let (floor, last, entries): ReadAnswer = self.redis.idempotent(&cmd).await?;
        // Entries after the cursor may have been trimmed away, or it is not this stream's.
        if after < stream_id(&floor)? || after > stream_id(&last)? {
            return Err(FeedError::CursorExpired);
        }
        Ok(page_of(after, entries)?)
    }

    /// One blocking `XREAD` on the watcher's own connection.
    async fn watch(&self, head: &str, patience: Duration) -> Result<String, Outage> {
        let Some(head) = StreamId::parse(head) else {
            let newest: Vec<StreamEntry> = self
                .redis
                .idempotent(
                    redis::cmd("XREVRANGE")
                        .arg(&self.feed.stream)
                        .arg("+")
                        .arg("-")
                        .arg("COUNT")
                        .arg(1),
                )
                .await?;
            return Ok(newest
                .into_iter()
                .next()
                .map_or_else(|| "0-0".into(), |(id, _)| id));
        };
        let block = millis(patience.min(BLOCK)).max(1);
        let cmd = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(super::super::feed::PAGE_LIMIT)
            .arg("BLOCK")
            .arg(block)
            .arg("STREAMS")
            .arg(&self.feed.stream)
            .arg(head.to_string())
            .to_owned();
        let mut connection = self.feed.watcher.connection().await?;
        let answer: Option<Vec<(String, Vec<StreamEntry>)>> =
            cmd.query_async(&mut connection).await?;
        let newest = answer
            .into_iter()
            .flatten()
            .flat_map(|(_, entries)| entries)
            .last()
            .map(|(id, _)| id);
        Ok(newest.unwrap_or_else(|| head.to_string()))
    }

    fn signal(&self) -> &FeedSignal {
        self.feed.signal()
    }
}
