//! Refresh: a refresh token → a new access token and, with rotation, its successor. Rotation
//! replaces the session's current refresh token atomically (one winner however many arrive at
//! once); the token just replaced that comes back within the grace gets the same successor,
//! and any other earlier token of the session is reuse: the whole session is revoked.

use std::sync::Arc;
use std::time::Duration;

use super::active_users::{ActiveUsers, VersionedUser};
use super::minter::{ForClient, Minter};
use super::revocation::RevocationFlow;
use super::{AuthError, ensure_session_live, token_keys};
use crate::accounts::GrantedUser;
use crate::clock::UnixSecs;
use crate::metrics::{Metrics, Revocation};
use crate::outage::Outage;
use crate::store::RevocationStore;
use crate::store::revocation::{
    ExpectedVersion, JtiState, RefreshTokenId, Rotation, RotationOutcome, SpendRecord,
};
use crate::store::sessions::SessionRepository;
use crate::token::{Claims, Scope, TokenError, TokenType};

/// Store steps one rotation may take: a second only when this instance's copy of the user
/// was stale (or missing); more means the user's record kept changing meanwhile.
const ROTATION_ATTEMPTS: usize = 3;

#[derive(Debug, Clone)]
pub struct Refreshed {
    pub access: String,
    /// Present when rotation is on.
    pub refresh: Option<String>,
    pub expires_in: i64,
    /// The new access token's scope (OAuth sessions only).
    pub scope: Option<String>,
}

/// Who presents a refresh token.
#[derive(Debug, Clone, Copy)]
pub enum RefreshBy<'a> {
    /// SimpleJWT's endpoint: anyone holding a token that was not issued to an OAuth client.
    Anyone,
    /// The browser transport: as `Anyone`, with its own reuse grace, since every tab of the
    /// page presents the one refresh cookie (`cookies.refresh_reuse_grace`).
    Browser { reuse_grace: Duration },
    /// An authenticated OAuth client. `allowed` is what the client may hold today; `requested`
    /// narrows the new access token (RFC 6749 §6) and may not exceed the original grant.
    Client {
        client_id: &'a str,
        allowed: &'a Scope,
        requested: Option<&'a Scope>,
    },
}

/// A refresh token being exchanged, and the scope its new access token gets.
struct Presented {
    claims: Claims,
    access_scope: Option<String>,
    /// Replaces `jwt.refresh_reuse_grace` for this presenter.
    reuse_grace: Option<Duration>,
}

pub struct RefreshFlow {
    pub(super) store: Arc<dyn RevocationStore>,
    pub(super) sessions: SessionRepository,
    pub(super) minter: Arc<Minter>,
    pub(super) active_users: Arc<ActiveUsers>,
    pub(super) revocation: Arc<RevocationFlow>,
    pub(super) metrics: Arc<Metrics>,
}

impl RefreshFlow {
    /// A refresh token → a new access token, and with rotation a new refresh token.
    pub async fn refresh(&self, token: &str) -> Result<Refreshed, AuthError> {
        self.refresh_by(token, RefreshBy::Anyone).await
    }

    /// As [`RefreshFlow::refresh`], checking that the presenter may use this token.
    pub async fn refresh_by(&self, token: &str, by: RefreshBy<'_>) -> Result<Refreshed, AuthError> {
        let claims = self.minter.codec().decode_as(token, TokenType::Refresh)?;
        let presented = presented_by(claims, by)?;
        let policy = self.minter.policy();
        let refreshed = if policy.rotate && policy.spend_on_rotation {
            self.rotate(&presented).await?
        } else {
            self.refresh_without_spending(&presented).await?
        };
        let now = self.minter.now().to_datetime();
        self.sessions.touch(presented.claims.sid.uuid(), now);
        self.metrics.refreshed();
        Ok(refreshed)
    }

    /// Without rotation (or without blacklisting after it) nothing is spent: read and issue.
    async fn refresh_without_spending(
        &self,
        presented: &Presented,
    ) -> Result<Refreshed, AuthError> {
        let claims = &presented.claims;
        let sid = claims.sid.text();
        let entries = self.store.entries(token_keys(claims, sid.as_str())).await?;
        ensure_session_live(claims, &entries)?;
        if entries.jti == Some(JtiState::Revoked) {
            return Err(TokenError::Blacklisted.into());
        }
        let user = self
            .active_users
            .of(claims, entries.user_version.as_deref())
            .await?;
        let now = self.minter.now().secs();
        if self.minter.policy().rotate {
            let successor = self.minter.successor_of(claims, now);
            return self.refreshed_with(presented, &user, Some(&successor), now);
        }
        self.refreshed_with(presented, &user, None, now)
    }

    /// Rotates: the store makes the successor its session's current refresh token in one
    /// atomic step (one winner), checking every revocation and that the user this instance
    /// holds is current. Everything that can fail is read before that step, so a refresh that
    /// does not answer 200 has spent nothing.
    async fn rotate(&self, presented: &Presented) -> Result<Refreshed, AuthError> {
        let now = self.minter.now();
        let claims = &presented.claims;
        let successor = self.minter.successor_of(claims, now.secs());
        let successor_id = RefreshTokenId {
            jti: successor.jti.clone(),
            iat: successor.iat,
            exp: successor.exp,
        };
        let sid = claims.sid.text();
        // The access token is signed (and its size checked) before the store step too.
        let mut ready = match self.active_users.cached(claims)? {
            Some(known) => Some(self.ready(presented, known, now.secs())?),
            None => None,
        };
        for _ in 0..ROTATION_ATTEMPTS {
            let rotation = Rotation {
                token: token_keys(claims, sid.as_str()),
                session_started: claims.sid.started(),
                user_version: ready.as_ref().map_or(ExpectedVersion::Unknown, |ready| {
                    ExpectedVersion::Is(ready.version.as_deref())
                }),
                successor: &successor_id,
                now,
                grace: self.reuse_grace(presented),
                until: successor.exp + self.minter.policy().leeway,
            };
            match self.store.rotate(&rotation).await? {
                RotationOutcome::UserChanged(version) => {
                    let known = self.active_users.load(claims, version).await?;
                    ready = Some(self.ready(presented, known, now.secs())?);
                }
                RotationOutcome::Rotated => return self.issue(ready, &successor),
                RotationOutcome::Grace(current) => {
                    let again = Claims {
                        jti: current.jti,
                        iat: current.iat,
                        exp: current.exp,
                        ..claims.clone()
                    };
                    return self.issue(ready, &again);
                }
                RotationOutcome::Reused => return self.reused(claims).await,
                RotationOutcome::Revoked => return Err(TokenError::Blacklisted.into()),
                RotationOutcome::Legacy(record) => {
                    return self.spent_before_upgrade(presented, record).await;
                }
            }
        }
        Err(Outage::busy("the user's record kept changing during the refresh").into())
    }

    /// The new access token for `known`, and the version entry it was read under.
    fn ready(
        &self,
        presented: &Presented,
        known: VersionedUser,
        now: UnixSecs,
    ) -> Result<Ready, AuthError> {
        Ok(Ready {
            access: self.access_for(presented, &known.user, now)?,
            version: known.version,
        })
    }

    /// The answer once the store has made `successor` current (or given it again).
    fn issue(&self, ready: Option<Ready>, successor: &Claims) -> Result<Refreshed, AuthError> {
        let ready =
            ready.ok_or_else(|| Outage::internal("the store rotated for an unknown user"))?;
        Ok(ready
            .access
            .with_refresh(Some(self.minter.sign(successor)?)))
    }

    /// A refresh token of the session that is neither its current one nor the previous one
    /// within the grace: it was used before, so the session is revoked.
    async fn reused(&self, claims: &Claims) -> Result<Refreshed, AuthError> {
        tracing::warn!(user_id = %claims.user_id, sid = %claims.sid, "refresh token reuse detected: session revoked");
        self.metrics.reuse_detected();
        self.revocation
            .revoke_session(claims, Revocation::Reuse)
            .await?;
        Err(TokenError::Blacklisted.into())
    }

    /// A token spent before the upgrade to per-session records (its spend record is still
    /// kept), in a session that has not rotated since: as then, within the grace and while
    /// its successor is unused it gets that successor again; otherwise this is reuse.
    async fn spent_before_upgrade(
        &self,
        presented: &Presented,
        record: SpendRecord,
    ) -> Result<Refreshed, AuthError> {
        let claims = &presented.claims;
        let now = self.minter.now();
        // Strictly inside the window: a grace of 0s means none, even within the same millisecond.
        let within_grace = now < record.spent_at + self.reuse_grace(presented);
        if !within_grace
            || self
                .store
                .jti_state(&claims.user_id, &record.successor_jti)
                .await?
                .is_some()
        {
            return self.reused(claims).await;
        }
        let sid = claims.sid.text();
        let entries = self.store.entries(token_keys(claims, sid.as_str())).await?;
        ensure_session_live(claims, &entries)?;
        let user = self
            .active_users
            .of(claims, entries.user_version.as_deref())
            .await?;
        let successor = Claims {
            jti: record.successor_jti,
            iat: record.successor_iat,
            exp: record.successor_exp,
            ..claims.clone()
        };
        self.refreshed_with(presented, &user, Some(&successor), now.secs())
    }

    /// The presenter's own grace (the browser transport's), or `jwt.refresh_reuse_grace`.
    fn reuse_grace(&self, presented: &Presented) -> Duration {
        presented
            .reuse_grace
            .unwrap_or(self.minter.policy().reuse_grace)
    }

    /// The answer: a new access token for the session's client and (possibly narrowed) scope,
    /// and the successor refresh token when rotating.
    fn refreshed_with(
        &self,
        presented: &Presented,
        user: &GrantedUser,
        successor: Option<&Claims>,
        now: UnixSecs,
    ) -> Result<Refreshed, AuthError> {
        let access = self.access_for(presented, user, now)?;
        let refresh = successor.map(|s| self.minter.sign(s)).transpose()?;
        Ok(access.with_refresh(refresh))
    }

    /// A signed access token for the session's client and (possibly narrowed) scope; refused
    /// when it would exceed `jwt.max_access_token_bytes`.
    fn access_for(
        &self,
        presented: &Presented,
        user: &GrantedUser,
        now: UnixSecs,
    ) -> Result<Access, AuthError> {
        let client = presented
            .claims
            .client_id
            .as_deref()
            .map(|client_id| ForClient {
                client_id,
                scope: presented.access_scope.as_deref().unwrap_or_default(),
            });
        let access = self
            .minter
            .access_claims(user, presented.claims.sid, now, client);
        Ok(Access {
            token: self.minter.sign_access(&access)?,
            expires_in: access.exp.0 - now.0,
            scope: access.scope,
        })
    }
}

/// A signed access token, before the refresh token that goes with it.
struct Access {
    token: String,
    expires_in: i64,
    scope: Option<String>,
}

impl Access {
    fn with_refresh(self, refresh: Option<String>) -> Refreshed {
        Refreshed {
            access: self.token,
            refresh,
            expires_in: self.expires_in,
            scope: self.scope,
        }
    }
}

/// A rotation's user side, ready before the store step: the access token to answer with, and
/// the user's version entry it was made under.
struct Ready {
    access: Access,
    version: Option<String>,
}

/// Checks the presenter may use the token, and works out the new access token's scope.
fn presented_by(claims: Claims, by: RefreshBy<'_>) -> Result<Presented, AuthError> {
    let RefreshBy::Client {
        client_id,
        allowed,
        requested,
    } = by
    else {
        // A token issued to an OAuth client is refreshed by that client, authenticated.
        if claims.client_id.is_some() {
            return Err(TokenError::Invalid.into());
        }
        let reuse_grace = match by {
            RefreshBy::Browser { reuse_grace } => Some(reuse_grace),
            _ => None,
        };
        return Ok(Presented {
            access_scope: claims.scope.clone(),
            claims,
            reuse_grace,
        });
    };
    if claims.client_id.as_deref() != Some(client_id) {
        return Err(AuthError::WrongClient);
    }
    let granted = Scope::parse(claims.scope.as_deref().unwrap_or_default())
        .map_err(|_| TokenError::Invalid)?;
    let wanted = requested.unwrap_or(&granted);
    let beyond = wanted.beyond(&granted);
    if !beyond.is_empty() {
        return Err(AuthError::ScopeNotGranted(beyond.join(" ")));
    }
    Ok(Presented {
        access_scope: Some(wanted.intersection(allowed).to_string()),
        claims,
        reuse_grace: None,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::flows::testing::Harness;

    fn blacklisted<T: std::fmt::Debug>(result: Result<T, AuthError>) -> bool {
        matches!(result, Err(AuthError::Token(TokenError::Blacklisted)))
    }

    #[tokio::test]
    async fn of_many_concurrent_refreshes_of_one_token_exactly_one_wins() {
        let harness = Harness::new().await;
        harness.user("alice").await;
        let pair = harness.login("alice").await;
        let refresh = &harness.state.flows.refresh;
        let attempts = (0..24).map(|_| refresh.refresh(&pair.refresh));
        let results = futures::future::join_all(attempts).await;
        let winners = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(winners, 1, "{results:?}");
    }

    #[tokio::test]
    async fn reuse_after_the_grace_revokes_the_session() {
        let harness = Harness::with(|jwt| jwt.refresh_reuse_grace = Duration::from_secs(10)).await;
        harness.user("bob").await;
        let pair = harness.login("bob").await;
        let flows = &harness.state.flows;
        let first = flows.refresh.refresh(&pair.refresh).await.unwrap();
        // Within the grace: the same successor again, and the session lives.
        let again = flows.refresh.refresh(&pair.refresh).await.unwrap();
        assert_eq!(first.refresh, again.refresh);
        harness.clock.advance(Duration::from_secs(10));
        assert!(blacklisted(flows.refresh.refresh(&pair.refresh).await));
        let successor = first.refresh.unwrap();
        assert!(blacklisted(flows.verify.verify(&successor).await));
        assert!(blacklisted(flows.verify.verify(&first.access).await));
    }

    #[tokio::test]
    async fn the_browser_transport_has_its_own_reuse_grace() {
        let harness = Harness::with(|jwt| jwt.refresh_reuse_grace = Duration::ZERO).await;
        harness.user("dora").await;
        let pair = harness.login("dora").await;
        let flows = &harness.state.flows;
        let browser = RefreshBy::Browser {
            reuse_grace: Duration::from_secs(10),
        };
        let first = flows
            .refresh
            .refresh_by(&pair.refresh, browser)
            .await
            .unwrap();
        harness.clock.advance(Duration::from_secs(9));
        let second_tab = flows
            .refresh
            .refresh_by(&pair.refresh, browser)
            .await
            .unwrap();
        assert_eq!(first.refresh, second_tab.refresh);
        // The body endpoint keeps jwt.refresh_reuse_grace (none here): reuse.
        assert!(blacklisted(flows.refresh.refresh(&pair.refresh).await));
    }

    #[tokio::test]
    async fn an_oauth_token_needs_its_client_and_may_only_narrow_its_scope() {
        let harness = Harness::new().await;
        harness.user("carol").await;
        let pair = harness.oauth_login("carol", "app", "read write").await;
        let refresh = &harness.state.flows.refresh;
        let first_party = refresh.refresh(&pair.refresh).await;
        assert!(matches!(
            first_party,
            Err(AuthError::Token(TokenError::Invalid))
        ));
        let allowed = Scope::parse("read write admin").unwrap();
        let wider = Scope::parse("read admin").unwrap();
        let by = |requested| RefreshBy::Client {
            client_id: "app",
            allowed: &allowed,
            requested,
        };
        let widened = refresh.refresh_by(&pair.refresh, by(Some(&wider))).await;
        assert!(matches!(widened, Err(AuthError::ScopeNotGranted(beyond)) if beyond == "admin"));
        let narrower = Scope::parse("read").unwrap();
        let narrowed = refresh
            .refresh_by(&pair.refresh, by(Some(&narrower)))
            .await
            .unwrap();
        assert_eq!(narrowed.scope.as_deref(), Some("read"));
    }
}
