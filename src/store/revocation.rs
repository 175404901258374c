//! What a revocation store keeps, and the one trait both stores implement.
//!
//! Five kinds of entry, all keyed under the user so one round trip (one Redis slot) reads
//! everything that can revoke a token:
//! - `{user}:j:<jti>`: `r` when one token is revoked on its own (an access token through
//!   `/oauth/revoke`). Before rotation state was kept per session, a rotated refresh token left
//!   a spend record here; those are still honoured until they expire ([`RotationOutcome::Legacy`]);
//! - `{user}:s:<sid>`: `r` when the login session is revoked;
//! - `{user}:r:<sid>`: the session's rotation record ([`RotationRecord`]): which of its refresh
//!   tokens is current, and the one before it for the reuse grace. One per session that has
//!   rotated, replaced by a compare-and-set on each rotation, so rotation state grows with
//!   sessions, not with refreshes;
//! - `{user}:u`: unix milliseconds; every session that started at or before it is revoked;
//! - `{user}:v`: a random version, new whenever the user's record changes. It revokes nothing:
//!   it tells every instance whether its cached copy of the user is still current.
//!
//! Each entry lives until `until` (unix seconds): the expiry of the last token it concerns.

use std::time::Duration;

use async_trait::async_trait;

use crate::clock::{UnixMillis, UnixSecs};
use crate::outage::Outage;

/// The identifiers of a token that revocation can reach.
#[derive(Debug, Clone, Copy)]
pub struct TokenKeys<'a> {
    pub user_id: &'a str,
    pub jti: &'a str,
    pub sid: &'a str,
}

/// A refresh token spent by rotation, and the successor it was exchanged for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpendRecord {
    pub spent_at: UnixMillis,
    pub successor_jti: String,
    pub successor_iat: UnixSecs,
    pub successor_exp: UnixSecs,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JtiState {
    Revoked,
    Spent(SpendRecord),
}

/// Everything the store holds about one token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevocationEntries {
    pub jti: Option<JtiState>,
    pub session_revoked: bool,
    pub user_revoked_before: Option<UnixMillis>,
    /// The `{user}:v` entry as stored (compared, never parsed): see [`UserCache`].
    ///
    /// [`UserCache`]: crate::store::user_cache::UserCache
    pub user_version: Option<String>,
    /// The session's rotation record as stored; read only for a refresh.
    pub rotation: Option<String>,
}

/// A refresh token as its session's rotation record keeps it: enough to sign it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshTokenId {
    pub jti: String,
    pub iat: UnixSecs,
    pub exp: UnixSecs,
}

/// A session's rotation state: its current refresh token, and the one that was exchanged for
/// it (with when), for the reuse grace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationRecord {
    pub current: RefreshTokenId,
    pub previous_jti: String,
    pub rotated_at: UnixMillis,
}

/// The user's version entry that the caller's copy of the user was loaded under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion<'a> {
    /// No copy yet: the store answers [`RotationOutcome::UserChanged`] with the current entry.
    Unknown,
    /// Loaded while the entry was this (`None`: absent).
    Is(Option<&'a str>),
}

/// One refresh with rotation, as the store decides it in one atomic step.
#[derive(Debug, Clone)]
pub struct Rotation<'a> {
    pub token: TokenKeys<'a>,
    /// When the token's session started: a user's "revoke all" covers it if not later.
    pub session_started: UnixMillis,
    pub user_version: ExpectedVersion<'a>,
    /// The refresh token that becomes current if this call wins.
    pub successor: &'a RefreshTokenId,
    pub now: UnixMillis,
    /// How long the previous token may still fetch the current one.
    pub grace: Duration,
    /// When the record can go: the successor's expiry (its session's end at the latest).
    pub until: UnixSecs,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotationOutcome {
    /// This call made the successor its session's current token: issue it.
    Rotated,
    /// The token was its session's previous one, exchanged within the grace: here is the
    /// current one (its successor), to issue again. Nothing was written.
    Grace(RefreshTokenId),
    /// Any other token of the session: it was used before. Nothing was written; the caller
    /// ends the session.
    Reused,
    /// The session, the user's sessions or the token itself are revoked. Nothing was written.
    Revoked,
    /// The user's version entry is not the expected one (here is the stored one): reload the
    /// user and ask again. Nothing was written.
    UserChanged(Option<String>),
    /// The token was spent before the upgrade to per-session records (a per-token spend
    /// record) and its session has not rotated since. Nothing was written.
    Legacy(SpendRecord),
}

#[async_trait]
pub trait RevocationStore: Send + Sync + 'static {
    /// Reads the token's, its session's and its user's entries in one round trip.
    async fn entries(&self, token: TokenKeys<'_>) -> Result<RevocationEntries, Outage>;

    async fn jti_state(&self, user_id: &str, jti: &str) -> Result<Option<JtiState>, Outage>;

    /// The user's "revoke every session started at or before" time, if any.
    async fn user_revoked_before(&self, user_id: &str) -> Result<Option<UnixMillis>, Outage>;

    async fn revoke_token(&self, user_id: &str, jti: &str, until: UnixSecs) -> Result<(), Outage>;

    async fn revoke_session(&self, user_id: &str, sid: &str, until: UnixSecs)
    -> Result<(), Outage>;

    /// Revokes every session of the user that started at or before `before`, and every session
    /// started from the cut-off stored until now: the stored cut-off becomes the later of
    /// `before` and itself plus a millisecond, atomically. So a cut-off never moves back (an
    /// instance with a slower clock cannot undo another's revocation), and a session whose
    /// start was taken from the cut-off before this call is covered by it, whatever the
    /// clocks say.
    async fn revoke_user(
        &self,
        user_id: &str,
        before: UnixMillis,
        until: UnixSecs,
    ) -> Result<(), Outage>;

    /// As [`RevocationStore::revoke_user`], for an OAuth client's own tokens (its feed entry
    /// says `client`).
    async fn revoke_client(
        &self,
        client_id: &str,
        before: UnixMillis,
        until: UnixSecs,
    ) -> Result<(), Outage>;

    /// A refresh with rotation, decided and applied atomically (see [`decide_rotation`]): of
    /// any number of concurrent calls for one token, on any number of instances, at most one
    /// gets [`RotationOutcome::Rotated`], and only if the token is its session's current one
    /// and nothing revokes it. One round trip where the store allows.
    async fn rotate(&self, rotation: &Rotation<'_>) -> Result<RotationOutcome, Outage>;

    /// Records that the user's record changed, under a new unique `version`: every instance's
    /// cached copy of the user is stale from now on. The entry must outlive any cached copy.
    async fn mark_user_changed(
        &self,
        user_id: &str,
        version: &str,
        until: UnixSecs,
    ) -> Result<(), Outage>;

    async fn ping(&self) -> Result<(), Outage>;

    /// Whether this store keeps a revision, bumped with every write that can revoke a token or
    /// change a user, for leased lookups ([`crate::store::leases`]).
    fn keeps_revision(&self) -> bool {
        false
    }

    /// A poll of an instance holding leases of `lease` (`store::leases`): registers the lease
    /// (every write then waits out the longest registered) or keeps it registered, and answers
    /// the revision; `None` when this poll (re)stored the registration and the next answers.
    async fn poll_revision(&self, _lease: Duration) -> Result<Option<u64>, Outage> {
        Ok(None)
    }
}

pub(crate) const REVOKED: &str = "r";

/// What follows the user's hash tag in each kind of key: a token (by jti), a session (by sid),
/// the user's revoke-all cutoff, the user's version, a session's rotation record (by sid).
pub(crate) mod kind {
    pub const JTI: &str = ":j:";
    pub const SESSION: &str = ":s:";
    pub const USER: &str = ":u";
    pub const USER_VERSION: &str = ":v";
    pub const ROTATION: &str = ":r:";
}

pub(crate) fn jti_key(user_id: &str, jti: &str) -> String {
    key(user_id, kind::JTI, jti)
}

pub(crate) fn session_key(user_id: &str, sid: &str) -> String {
    key(user_id, kind::SESSION, sid)
}

pub(crate) fn user_key(user_id: &str) -> String {
    key(user_id, kind::USER, "")
}

pub(crate) fn user_version_key(user_id: &str) -> String {
    key(user_id, kind::USER_VERSION, "")
}

pub(crate) fn rotation_key(user_id: &str, sid: &str) -> String {
    key(user_id, kind::ROTATION, sid)
}

/// `{user_id}<kind><id>`: the user in braces, Redis Cluster's hash tag, so all of one user's
/// keys share a slot. Joined by hand: four of these per verify through `format!` cost more than
/// the rest of building the lookup.
fn key(user_id: &str, kind: &str, id: &str) -> String {
    let mut key = String::with_capacity(user_id.len() + kind.len() + id.len() + 2);
    key.push('{');
    key.push_str(user_id);
    key.push('}');
    key.push_str(kind);
    key.push_str(id);
    key
}

/// What a rotation must do, from the token's entries and its session's stored record. The Redis script decides the same way (a contract test holds both
/// to it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RotationStep {
    /// Decided without writing.
    Answer(RotationOutcome),
    /// The session has no record yet (its login token's first rotation): create it, if nobody
    /// else does first.
    Create,
    /// The token is the session's current one: replace the record, if it is still `stored`.
    Replace { stored: String },
}

pub(crate) fn decide_rotation(
    rotation: &Rotation<'_>,
    entries: &RevocationEntries,
) -> RotationStep {
    use RotationOutcome::{Grace, Legacy, Reused, Revoked, UserChanged};
    let cut_off = entries
        .user_revoked_before
        .is_some_and(|before| rotation.session_started <= before);
    if entries.session_revoked || cut_off || entries.jti == Some(JtiState::Revoked) {
        return RotationStep::Answer(Revoked);
    }
    let stored = entries.rotation.as_deref();
    let record = match stored.map(RotationRecord::decode) {
        // Unreadable: nothing can be proven current (fail closed).
        Some(None) => return RotationStep::Answer(Revoked),
        Some(Some(record)) => Some(record),
        None => None,
    };
    let presented = rotation.token.jti;
    let step = match &record {
        None => match &entries.jti {
            Some(JtiState::Spent(spent)) => return RotationStep::Answer(Legacy(spent.clone())),
            _ => RotationStep::Create,
        },
        Some(record) if record.current.jti == presented => RotationStep::Replace {
            stored: stored.unwrap_or_default().to_owned(),
        },
        Some(record) if record.previous_jti == presented && within_grace(rotation, record) => {
            RotationStep::Answer(Grace(record.current.clone()))
        }
        Some(_) => return RotationStep::Answer(Reused),
    };
    // Issuing needs the user as the store knows it now.
    if rotation.user_version != ExpectedVersion::Is(entries.user_version.as_deref()) {
        return RotationStep::Answer(UserChanged(entries.user_version.clone()));
    }
    step
}

/// Whether the previous token may still fetch the current one. A grace of zero means none,
/// whatever the clocks: a loser of the race may have read its clock before the winner did.
fn within_grace(rotation: &Rotation<'_>, record: &RotationRecord) -> bool {
    !rotation.grace.is_zero() && rotation.now < record.rotated_at + rotation.grace
}

impl RotationRecord {
    /// The record after `rotation` wins: its successor current, its token the previous one.
    pub(crate) fn after(rotation: &Rotation<'_>) -> RotationRecord {
        RotationRecord {
            current: rotation.successor.clone(),
            previous_jti: rotation.token.jti.to_owned(),
            rotated_at: rotation.now,
        }
    }

    /// `<current jti>:<iat>:<exp>:<previous jti>:<rotated at ms>`.
    pub(crate) fn encode(&self) -> String {
        format!(
            "{}:{}:{}:{}:{}",
            self.current.jti,
            self.current.iat.0,
            self.current.exp.0,
            self.previous_jti,
            self.rotated_at.0
        )
    }

    pub(crate) fn decode(text: &str) -> Option<RotationRecord> {
        let mut parts = text.split(':');
        let record = RotationRecord {
            current: RefreshTokenId {
                jti: parts.next()?.to_owned(),
                iat: UnixSecs(parts.next()?.parse().ok()?),
                exp: UnixSecs(parts.next()?.parse().ok()?),
            },
            previous_jti: parts.next()?.to_owned(),
            rotated_at: UnixMillis(parts.next()?.parse().ok()?),
        };
        parts.next().is_none().then_some(record)
    }
}

impl SpendRecord {
    /// As the release before per-session rotation records stored it under `{user}:j:<jti>`
    /// (still read, until those entries expire).
    pub fn encode(&self) -> String {
        format!(
            "s:{}:{}:{}:{}",
            self.spent_at.0, self.successor_jti, self.successor_iat.0, self.successor_exp.0
        )
    }

    fn decode(text: &str) -> Option<SpendRecord> {
        let mut parts = text.strip_prefix("s:")?.split(':');
        let record = SpendRecord {
            spent_at: UnixMillis(parts.next()?.parse().ok()?),
            successor_jti: parts.next()?.to_owned(),
            successor_iat: UnixSecs(parts.next()?.parse().ok()?),
            successor_exp: UnixSecs(parts.next()?.parse().ok()?),
        };
        parts.next().is_none().then_some(record)
    }
}

/// Parses a stored `j:` value. Anything unrecognised counts as revoked: fail closed.
pub(crate) fn parse_jti_state(value: &str) -> JtiState {
    if value == REVOKED {
        JtiState::Revoked
    } else {
        SpendRecord::decode(value).map_or(JtiState::Revoked, JtiState::Spent)
    }
}

/// Parses a stored `u` value; an unreadable one revokes everything (fail closed).
pub(crate) fn parse_user_before(value: &str) -> UnixMillis {
    UnixMillis(value.parse().unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spend_records_round_trip() {
        let record = SpendRecord {
            spent_at: UnixMillis(1_700_000_000_123),
            successor_jti: "ab".repeat(16),
            successor_iat: UnixSecs(1_700_000_000),
            successor_exp: UnixSecs(1_700_086_400),
        };
        assert_eq!(parse_jti_state(&record.encode()), JtiState::Spent(record));
    }

    #[test]
    fn unreadable_entries_fail_closed() {
        assert_eq!(parse_jti_state("garbage"), JtiState::Revoked);
        assert_eq!(parse_jti_state("s:1:2"), JtiState::Revoked);
        assert_eq!(parse_user_before("x"), UnixMillis(i64::MAX));
    }
}
