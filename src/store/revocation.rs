//! What a revocation store keeps, and the one trait both stores implement.
//!
//! Four kinds of entry, all keyed under the user so one round trip (one Redis slot) reads
//! everything that can revoke a token:
//! - `{user}:j:<jti>`: the token itself, `r` (blacklisted) or a spend record (a rotated refresh
//!   token, with its successor, for reuse detection and the grace period);
//! - `{user}:s:<sid>`: `r` when the login session is revoked;
//! - `{user}:u`: unix milliseconds; every session that started at or before it is revoked;
//! - `{user}:v`: a random version, new whenever the user's record changes. It revokes nothing:
//!   it tells every instance whether its cached copy of the user is still current.
//!
//! Each entry lives until `until` (unix seconds): the expiry of the last token it concerns.

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
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpendOutcome {
    /// This call spent the token: the caller may issue the successor.
    Spent,
    /// Somebody spent (or revoked) it first.
    AlreadyUsed(JtiState),
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

    /// Atomically marks a refresh token spent: of any number of concurrent calls for one `jti`,
    /// exactly one gets `Spent`.
    async fn spend(
        &self,
        user_id: &str,
        jti: &str,
        record: &SpendRecord,
        until: UnixSecs,
    ) -> Result<SpendOutcome, Outage>;

    /// A refresh's single round trip: the token's session and user entries, and the atomic
    /// spend of the token (as [`RevocationStore::spend`]). `entries.jti` is what stopped the
    /// spend, if anything. Stores that cannot do both at once read first, then spend.
    async fn spend_checked(
        &self,
        token: TokenKeys<'_>,
        record: &SpendRecord,
        until: UnixSecs,
    ) -> Result<(RevocationEntries, SpendOutcome), Outage> {
        let mut entries = self.entries(token).await?;
        let outcome = match &entries.jti {
            Some(state) => SpendOutcome::AlreadyUsed(state.clone()),
            None => self.spend(token.user_id, token.jti, record, until).await?,
        };
        if let SpendOutcome::AlreadyUsed(state) = &outcome {
            entries.jti = Some(state.clone());
        }
        Ok((entries, outcome))
    }

    /// Records that the user's record changed, under a new unique `version`: every instance's
    /// cached copy of the user is stale from now on. The entry must outlive any cached copy.
    async fn mark_user_changed(
        &self,
        user_id: &str,
        version: &str,
        until: UnixSecs,
    ) -> Result<(), Outage>;

    async fn ping(&self) -> Result<(), Outage>;
}

pub(crate) const REVOKED: &str = "r";

pub(crate) fn jti_key(user_id: &str, jti: &str) -> String {
    format!("{{{user_id}}}:j:{jti}")
}

pub(crate) fn session_key(user_id: &str, sid: &str) -> String {
    format!("{{{user_id}}}:s:{sid}")
}

pub(crate) fn user_key(user_id: &str) -> String {
    format!("{{{user_id}}}:u")
}

pub(crate) fn user_version_key(user_id: &str) -> String {
    format!("{{{user_id}}}:v")
}

impl SpendRecord {
    pub(crate) fn encode(&self) -> String {
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
