//! The Redis revocation store: for production and for many instances sharing one Redis, or a
//! Redis Cluster. Entries expire by themselves (`EX`); a rotation is one script, a
//! compare-and-set of the session's record. Every key of a user carries the user's hash tag (`{<user id>}`), so each request's
//! keys live in one cluster slot and its pipeline is one round trip to one node.
//!
//! Here the store's commands; the connection (one server or a cluster) is in `connection`, a
//! user's keys written into a command in `keys`, the batched lookups' `MGET` in `lookups`, the
//! throttling counters in `counters`, the revocation feed's stream in `feed`, the Lua scripts in
//! `scripts`, the start-up check of Redis's own persistence in `persistence`.

mod connection;
mod counters;
mod feed;
mod keys;
mod lookups;
mod persistence;
mod scripts;

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use async_trait::async_trait;

use super::feed::{FeedEntry, FeedKind};
use super::leases;
use super::lookups::{LookupStats, Lookups};
use super::revocation::{
    ExpectedVersion, JtiState, REVOKED, RevocationEntries, RevocationStore, Rotation,
    RotationOutcome, RotationRecord, TokenKeys, jti_key, kind, parse_jti_state, parse_user_before,
    session_key, user_key, user_version_key,
};
use crate::clock::{SharedClock, UnixMillis, UnixSecs};
use crate::config::RedisSettings;
use crate::outage::Outage;
use connection::{Connection, Redis, run_script};
use feed::RedisFeed;
use keys::UserKey;
use lookups::RedisEntries;
pub use persistence::VolatileRedis;
use scripts::{LONGEST_LEASE, MOVE_CUTOFF_FORWARD, POLL_REVISION, ROTATE};

/// The revision every write that can revoke a token bumps, and the leases registered
/// (`store::leases`). No user's hash tag: a single server only.
const REVISION_KEY: &str = "~revision";
const LEASES_KEY: &str = "~leases";

static ROTATE_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(ROTATE));

pub struct RedisRevocationStore {
    redis: Arc<Redis>,
    clock: SharedClock,
    /// Concurrent lookups read with one `MGET`: on a single server only, since a cluster
    /// cannot `MGET` keys of different users (their hash tags put them in different slots).
    lookups: Option<Lookups>,
    feed: RedisFeed,
    /// This instance's `revocation.lease`: its writes wait at least that long.
    lease: Duration,
}

impl RedisRevocationStore {
    /// On a single server, starts the lookup readers (on the current tokio runtime).
    pub fn new(settings: &RedisSettings, clock: SharedClock) -> Result<Self, Outage> {
        let redis = Arc::new(Redis::new(settings)?);
        let lookups = (!redis.is_cluster()).then(|| Lookups::start(RedisEntries(redis.clone())));
        let feed = RedisFeed::new(settings, &redis.prefix)?;
        Ok(RedisRevocationStore {
            redis,
            clock,
            lookups,
            feed,
            lease: Duration::ZERO,
        })
    }

    /// The instance's `revocation.lease`, which its own writes wait out at least.
    pub fn with_lease(mut self, lease: Duration) -> RedisRevocationStore {
        self.lease = lease;
        self
    }

    /// How long the feed keeps entries (`store::feed::retention`; 30 days unless set).
    pub fn with_feed_retention(mut self, retention: Duration) -> RedisRevocationStore {
        self.feed.set_retention(retention);
        self
    }

    /// `apply` (a revocation) and `entry` (its feed entry): one `MULTI` on a single server; on
    /// a cluster published first, then applied (see `feed`: stricter, never looser). With
    /// `cutoff_key`, the entry's `not_before` is the cut-off stored once `apply` has run. Not
    /// retried: a lost answer fails closed with 503, and the caller may revoke again.
    async fn revoke_and_publish(
        &self,
        apply: redis::Cmd,
        entry: FeedEntry,
        cutoff_key: Option<&str>,
    ) -> Result<(), Outage> {
        let now = self.clock.now();
        let mut connection = self.connection().await?;
        if self.redis.is_cluster() {
            let publish = self.feed.publish_command(&entry, None, now);
            publish.query_async::<()>(&mut connection).await?;
            apply.query_async::<()>(&mut connection).await?;
            if let Some(key) = cutoff_key {
                self.publish_moved_cutoff(key, entry, now).await?;
            }
        } else {
            let publish = self.feed.publish_command(&entry, cutoff_key, now);
            let mut pipe = redis::pipe();
            pipe.atomic()
                .add_command(apply)
                .ignore()
                .add_command(publish)
                .ignore();
            self.bump_revision_in(&mut pipe, connection).await?;
        }
        self.feed.signal().bump();
        Ok(())
    }

    /// Runs `pipe` (a `MULTI` holding a write) with the revision's bump, then waits out the
    /// longest lease registered (`store::leases`). Single server only. A `MULTI` that failed
    /// may still have been applied (Redis does not roll back, and an answer can be lost): that
    /// waits out this instance's own lease before it fails.
    async fn bump_revision_in(
        &self,
        pipe: &mut redis::Pipeline,
        mut connection: Connection,
    ) -> Result<(), Outage> {
        pipe.cmd("INCR")
            .arg(self.key(REVISION_KEY.into()))
            .ignore()
            .cmd("EVAL")
            .arg(LONGEST_LEASE)
            .arg(1)
            .arg(self.key(LEASES_KEY.into()));
        let answer = pipe.query_async::<(u64,)>(&mut connection).await;
        let longest = answer.as_ref().map_or(0, |(longest,)| *longest);
        leases::outlast(longest, self.lease).await;
        answer?;
        Ok(())
    }

    /// On a cluster: when the stored cut-off ended later than the one published (an earlier
    /// cut-off moved it on by a millisecond), publishes the stored one too.
    async fn publish_moved_cutoff(
        &self,
        key: &str,
        mut entry: FeedEntry,
        now: UnixMillis,
    ) -> Result<(), Outage> {
        let stored: Option<String> = self.idempotent(redis::cmd("GET").arg(key)).await?;
        let stored = stored.as_deref().map(parse_user_before);
        if stored.is_none() || stored == entry.not_before {
            return Ok(());
        }
        entry.not_before = stored;
        let mut connection = self.connection().await?;
        let publish = self.feed.publish_command(&entry, None, now);
        Ok(publish.query_async::<()>(&mut connection).await?)
    }

    /// A user's or a client's cut-off moved forward (`MOVE_CUTOFF_FORWARD`), published.
    async fn revoke_subject(
        &self,
        kind: FeedKind,
        subject: &str,
        before: UnixMillis,
        until: UnixSecs,
    ) -> Result<(), Outage> {
        let key = self.key(user_key(subject));
        let cmd = redis::cmd("EVAL")
            .arg(MOVE_CUTOFF_FORWARD)
            .arg(1)
            .arg(&key)
            .arg(before.0)
            .arg(self.ttl(until))
            .to_owned();
        let entry = FeedEntry::subject(kind, subject, before, until);
        self.revoke_and_publish(cmd, entry, Some(&key)).await
    }

    /// Warns when Redis can lose revocations (no append-only file, an evicting
    /// `maxmemory-policy`); in production that is an error unless `redis.allow_volatile`.
    /// Run once, at start-up.
    pub async fn check_persistence(
        &self,
        settings: &RedisSettings,
        production: bool,
    ) -> Result<(), VolatileRedis> {
        let refuse = production && !settings.allow_volatile;
        let budget = settings.connect_timeout + settings.response_timeout;
        persistence::check(&self.redis, refuse, budget).await
    }

    /// How many token lookups were asked for, and how many `MGET`s answered them (none on a
    /// cluster, where each lookup is its own).
    pub fn lookup_stats(&self) -> Option<&LookupStats> {
        self.lookups.as_ref().map(Lookups::stats)
    }

    async fn connection(&self) -> Result<Connection, Outage> {
        self.redis.connection().await
    }

    fn key(&self, key: String) -> String {
        self.redis.key(key)
    }

    async fn idempotent<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, Outage> {
        self.redis.idempotent(cmd).await
    }

    /// Seconds from now to `until`, at least 1 (`EX`).
    fn ttl(&self, until: UnixSecs) -> u64 {
        until
            .saturating_since(self.clock.now().secs())
            .as_secs()
            .max(1)
    }

    fn set_command(&self, key: String, value: &str, until: UnixSecs) -> redis::Cmd {
        redis::cmd("SET")
            .arg(self.key(key))
            .arg(value)
            .arg("EX")
            .arg(self.ttl(until))
            .to_owned()
    }
}

#[async_trait]
impl RevocationStore for RedisRevocationStore {
    async fn entries(&self, token: TokenKeys<'_>) -> Result<RevocationEntries, Outage> {
        if let Some(lookups) = &self.lookups {
            return lookups.entries(token).await;
        }
        let cmd = redis::cmd("MGET")
            .arg(self.key(jti_key(token.user_id, token.jti)))
            .arg(self.key(session_key(token.user_id, token.sid)))
            .arg(self.key(user_key(token.user_id)))
            .arg(self.key(user_version_key(token.user_id)))
            .to_owned();
        let values: Vec<Option<String>> = self.idempotent(&cmd).await?;
        let [jti, session, user, version] = <[Option<String>; 4]>::try_from(values)
            .map_err(|v| unexpected_answer("MGET of 4 keys", v.len()))?;
        Ok(entries_of(jti, session, user, version))
    }

    async fn jti_state(&self, user_id: &str, jti: &str) -> Result<Option<JtiState>, Outage> {
        let cmd = redis::cmd("GET")
            .arg(self.key(jti_key(user_id, jti)))
            .to_owned();
        let value: Option<String> = self.idempotent(&cmd).await?;
        Ok(value.as_deref().map(parse_jti_state))
    }

    async fn user_revoked_before(&self, user_id: &str) -> Result<Option<UnixMillis>, Outage> {
        let cmd = redis::cmd("GET")
            .arg(self.key(user_key(user_id)))
            .to_owned();
        let value: Option<String> = self.idempotent(&cmd).await?;
        Ok(value.as_deref().map(parse_user_before))
    }

    async fn revoke_token(&self, user_id: &str, jti: &str, until: UnixSecs) -> Result<(), Outage> {
        let cmd = self.set_command(jti_key(user_id, jti), REVOKED, until);
        self.revoke_and_publish(cmd, FeedEntry::token(jti, until), None)
            .await
    }

    async fn revoke_session(
        &self,
        user_id: &str,
        sid: &str,
        until: UnixSecs,
    ) -> Result<(), Outage> {
        let cmd = self.set_command(session_key(user_id, sid), REVOKED, until);
        self.revoke_and_publish(cmd, FeedEntry::session(sid, until), None)
            .await
    }

    /// One script, so atomic: the cut-off only moves forward, by at least a millisecond (see
    /// [`RevocationStore::revoke_user`]), and its expiry never shortens.
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

    /// One script ([`ROTATE`]): read, decide and compare-and-set in one atomic step. All five
    /// keys share the user's hash tag, so a cluster runs it on one node. Not retried after a
    /// lost answer: the retry would find its own rotation and answer with the grace (or, past
    /// it, reuse).
    async fn rotate(&self, rotation: &Rotation<'_>) -> Result<RotationOutcome, Outage> {
        let token = rotation.token;
        let key = |kind, id| UserKey {
            prefix: &self.redis.prefix,
            user_id: token.user_id,
            kind,
            id,
        };
        let mut evalsha = redis::cmd("EVALSHA");
        evalsha
            .arg(ROTATE_SCRIPT.get_hash())
            .arg(5)
            .arg(key(kind::SESSION, token.sid))
            .arg(key(kind::USER, ""))
            .arg(key(kind::USER_VERSION, ""))
            .arg(key(kind::JTI, token.jti))
            .arg(key(kind::ROTATION, token.sid))
            .arg(rotation.session_started.0)
            .arg(expected_version_arg(rotation.user_version))
            .arg(token.jti)
            .arg(RotationRecord::after(rotation).encode())
            .arg(self.ttl(rotation.until))
            .arg(rotation.now.0)
            .arg(u64::try_from(rotation.grace.as_millis()).unwrap_or(u64::MAX));
        let mut connection = self.connection().await?;
        let answer: Vec<Option<String>> =
            run_script(&ROTATE_SCRIPT, &evalsha, &mut connection).await?;
        rotation_outcome(answer)
    }

    async fn mark_user_changed(
        &self,
        user_id: &str,
        version: &str,
        until: UnixSecs,
    ) -> Result<(), Outage> {
        let set = self.set_command(user_version_key(user_id), version, until);
        let mut connection = self.connection().await?;
        if self.redis.is_cluster() {
            return Ok(set.query_async::<()>(&mut connection).await?);
        }
        let mut pipe = redis::pipe();
        pipe.atomic().add_command(set).ignore();
        self.bump_revision_in(&mut pipe, connection).await
    }

    fn keeps_revision(&self) -> bool {
        !self.redis.is_cluster()
    }

    /// One script: registers the lease for [`leases::REGISTRATION`] by Redis's clock and
    /// reads the revision.
    async fn poll_revision(&self, lease: Duration) -> Result<Option<u64>, Outage> {
        let cmd = redis::cmd("EVAL")
            .arg(POLL_REVISION)
            .arg(2)
            .arg(self.key(REVISION_KEY.into()))
            .arg(self.key(LEASES_KEY.into()))
            .arg(leases::millis(lease))
            .arg(leases::millis(leases::REGISTRATION))
            .to_owned();
        Ok(Some(self.idempotent(&cmd).await?))
    }

    async fn ping(&self) -> Result<(), Outage> {
        self.idempotent::<String>(&redis::cmd("PING"))
            .await
            .map(drop)
    }
}

fn entries_of(
    jti: Option<String>,
    session: Option<String>,
    user: Option<String>,
    version: Option<String>,
) -> RevocationEntries {
    RevocationEntries {
        jti: jti.as_deref().map(parse_jti_state),
        session_revoked: session.is_some(),
        user_revoked_before: user.as_deref().map(parse_user_before),
        user_version: version,
        rotation: None,
    }
}

/// `ROTATE`'s answer, `{outcome, detail}`. Anything unrecognised fails closed.
fn rotation_outcome(answer: Vec<Option<String>>) -> Result<RotationOutcome, Outage> {
    let mut parts = answer.into_iter();
    let outcome = parts.next().flatten().unwrap_or_default();
    let detail = parts.next().flatten();
    Ok(match (outcome.as_str(), detail) {
        ("rotated", _) => RotationOutcome::Rotated,
        ("reused", _) => RotationOutcome::Reused,
        ("revoked", _) => RotationOutcome::Revoked,
        ("user_changed", version) => RotationOutcome::UserChanged(version),
        ("grace", Some(record)) => match RotationRecord::decode(&record) {
            Some(record) => RotationOutcome::Grace(record.current),
            None => RotationOutcome::Revoked,
        },
        ("legacy", Some(value)) => match parse_jti_state(&value) {
            JtiState::Spent(record) => RotationOutcome::Legacy(record),
            JtiState::Revoked => RotationOutcome::Revoked,
        },
        (other, _) => return Err(Outage::internal(format!("ROTATE answered {other:?}"))),
    })
}

/// The expected version as `ROTATE` compares it.
fn expected_version_arg(expected: ExpectedVersion<'_>) -> String {
    match expected {
        ExpectedVersion::Unknown => "?".to_owned(),
        ExpectedVersion::Is(None) => "=".to_owned(),
        ExpectedVersion::Is(Some(version)) => format!("={version}"),
    }
}

pub(super) fn unexpected_answer(command: &str, values: usize) -> Outage {
    Outage::internal(format!("{command} answered {values} values"))
}
