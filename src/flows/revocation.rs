//! Revocation: ending one session (logout, blacklist, reuse, the user's own list), every
//! session of a user (password change, deactivation, deletion, logout-all), every token of an
//! OAuth client, and RFC 7009's revoke. Also where a new session's start is decided, so that it
//! always falls after the latest "revoke all".

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use super::AuthError;
use super::minter::Minter;
use super::verify::VerifyFlow;
use crate::clock::UnixSecs;
use crate::metrics::{Metrics, Revocation};
use crate::store::RevocationStore;
use crate::store::sessions::{Session, SessionRepository};
use crate::token::{Claims, SessionId, TokenError, TokenType};

pub struct RevocationFlow {
    pub(super) store: Arc<dyn RevocationStore>,
    pub(super) sessions: SessionRepository,
    pub(super) minter: Arc<Minter>,
    pub(super) verify: Arc<VerifyFlow>,
    pub(super) metrics: Arc<Metrics>,
}

impl RevocationFlow {
    /// A new session of `subject` (a user or a client). It starts after the subject's latest
    /// "revoke all", even when that was written in this very millisecond or by an instance
    /// whose clock runs ahead.
    pub async fn new_session(&self, subject: &str) -> Result<SessionId, AuthError> {
        let now = self.minter.now();
        let revoked_before = self.store.user_revoked_before(subject).await?;
        let start = revoked_before.map_or(now, |before| now.max(before + Duration::from_millis(1)));
        Ok(SessionId::start(start))
    }

    /// SimpleJWT's blacklist: logs out the refresh token's session, so its refresh and access
    /// tokens are refused at once. A token issued to an OAuth client is revoked only by that
    /// client (RFC 7009): here it is invalid, as it is for refresh.
    pub async fn blacklist(&self, token: &str) -> Result<(), AuthError> {
        let claims = self.verify.verify_as(token, TokenType::Refresh).await?;
        if claims.client_id.is_some() {
            return Err(TokenError::Invalid.into());
        }
        self.revoke_session(&claims, Revocation::Logout).await
    }

    /// Ends the session of `claims`.
    pub async fn revoke_session(
        &self,
        claims: &Claims,
        reason: Revocation,
    ) -> Result<(), AuthError> {
        self.revoke_session_of(&claims.user_id, claims.sid, claims.exp, reason)
            .await
    }

    /// Ends a session: its tokens are refused from now on, and it leaves the user's list.
    async fn revoke_session_of(
        &self,
        subject: &str,
        sid: SessionId,
        latest_exp: UnixSecs,
        reason: Revocation,
    ) -> Result<(), AuthError> {
        let policy = self.minter.policy();
        let until = self.minter.session_end(sid).max(latest_exp) + policy.leeway;
        self.store
            .revoke_session(subject, &sid.to_string(), until)
            .await?;
        self.metrics.revoked(reason);
        self.sessions.end(sid.uuid(), self.now()).await?;
        Ok(())
    }

    /// The user's live sessions, newest first.
    pub async fn sessions_of(&self, user_id: Uuid) -> Result<Vec<Session>, AuthError> {
        Ok(self.sessions.live_of(user_id, self.now()).await?)
    }

    /// Logs one of the user's sessions out; another user's session is "not found".
    pub async fn end_session_of(&self, user_id: Uuid, sid: Uuid) -> Result<(), AuthError> {
        let session = self.sessions.find_live(sid, user_id, self.now()).await?;
        let sid = session
            .and_then(|session| SessionId::from_uuid(session.id))
            .ok_or(AuthError::SessionNotFound)?;
        // No token at hand: the entry lives as long as the session could.
        let subject = user_id.to_string();
        self.revoke_session_of(&subject, sid, UnixSecs(0), Revocation::SessionEnded)
            .await
    }

    /// Revokes every session of the user that exists now (password change, deactivation,
    /// deletion, logout-all).
    pub async fn revoke_all_of_user(&self, user_id: Uuid) -> Result<(), AuthError> {
        let policy = self.minter.policy();
        let now = self.minter.now();
        let until = now.secs() + policy.session_lifetime + policy.leeway;
        self.store
            .revoke_user(&user_id.to_string(), now, until)
            .await?;
        self.metrics.revoked(Revocation::AllSessions);
        self.sessions.end_all_of(user_id, now.to_datetime()).await?;
        Ok(())
    }

    /// Revokes every token issued to an OAuth client as itself (client credentials).
    pub async fn revoke_all_of_client(&self, client_id: &str) -> Result<(), AuthError> {
        let policy = self.minter.policy();
        let now = self.minter.now();
        let until = now.secs() + policy.access_lifetime + policy.leeway;
        self.store.revoke_client(client_id, now, until).await?;
        self.metrics.revoked(Revocation::ClientDeleted);
        Ok(())
    }

    /// RFC 7009: an OAuth client revokes a token. A token that is not ours, or no longer valid,
    /// needs nothing; a token not issued to this client (to another, or to none) is refused.
    /// Revoking a refresh token ends its session (its access tokens too); revoking an access
    /// token revokes just it.
    pub async fn revoke_by_client(&self, token: &str, client_id: &str) -> Result<(), AuthError> {
        let Ok(claims) = self.minter.codec().decode(token) else {
            return Ok(());
        };
        if claims.client_id.as_deref() != Some(client_id) {
            return Err(AuthError::WrongClient);
        }
        match claims.token_type {
            TokenType::Refresh => self.revoke_session(&claims, Revocation::OAuthRevoke).await,
            TokenType::Access => {
                let until = claims.exp + self.minter.policy().leeway;
                self.store
                    .revoke_token(&claims.user_id, &claims.jti, until)
                    .await?;
                self.metrics.revoked(Revocation::OAuthRevoke);
                Ok(())
            }
        }
    }

    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.minter.now().to_datetime()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flows::testing::Harness;
    use crate::token::TokenError;

    fn blacklisted(result: Result<Claims, AuthError>) -> bool {
        matches!(result, Err(AuthError::Token(TokenError::Blacklisted)))
    }

    #[tokio::test]
    async fn blacklisting_ends_one_session_and_leaves_the_others() {
        let harness = Harness::new().await;
        let alice = harness.user("alice").await;
        let (first, second) = (harness.login("alice").await, harness.login("alice").await);
        let flows = &harness.state.flows;
        flows.revocation.blacklist(&first.refresh).await.unwrap();
        assert!(blacklisted(flows.verify.verify(&first.access).await));
        assert!(flows.verify.verify(&second.access).await.is_ok());
        assert_eq!(
            flows.revocation.sessions_of(alice.id).await.unwrap().len(),
            1
        );
        let again = flows.revocation.blacklist(&first.refresh).await;
        assert!(matches!(
            again,
            Err(AuthError::Token(TokenError::Blacklisted))
        ));
    }

    #[tokio::test]
    async fn revoking_a_user_covers_every_session_so_far_but_not_the_next() {
        let harness = Harness::new().await;
        let bob = harness.user("bob").await;
        let (first, second) = (harness.login("bob").await, harness.login("bob").await);
        let flows = &harness.state.flows;
        flows.revocation.revoke_all_of_user(bob.id).await.unwrap();
        assert!(blacklisted(flows.verify.verify(&first.refresh).await));
        assert!(blacklisted(flows.verify.verify(&second.access).await));
        assert!(
            flows
                .revocation
                .sessions_of(bob.id)
                .await
                .unwrap()
                .is_empty()
        );
        // Same millisecond on the injected clock: the next session still starts after the cut-off.
        let next = harness.login("bob").await;
        assert!(flows.verify.verify(&next.access).await.is_ok());
    }

    #[tokio::test]
    async fn a_user_ends_only_their_own_sessions() {
        let harness = Harness::new().await;
        let carol = harness.user("carol").await;
        let dave = harness.user("dave").await;
        let pair = harness.login("carol").await;
        let sid = harness
            .minter()
            .codec()
            .decode(&pair.access)
            .unwrap()
            .sid
            .uuid();
        let revocation = &harness.state.flows.revocation;
        let others = revocation.end_session_of(dave.id, sid).await;
        assert!(matches!(others, Err(AuthError::SessionNotFound)));
        revocation.end_session_of(carol.id, sid).await.unwrap();
        assert!(blacklisted(
            harness.state.flows.verify.verify(&pair.access).await
        ));
    }

    #[tokio::test]
    async fn an_oauth_client_revokes_only_its_own_tokens() {
        let harness = Harness::new().await;
        harness.user("erin").await;
        let flows = &harness.state.flows;
        let pair = harness.oauth_login("erin", "mine", "read").await;
        let first_party = harness.login("erin").await;
        let revocation = &flows.revocation;
        let foreign = revocation
            .revoke_by_client(&first_party.access, "mine")
            .await;
        assert!(matches!(foreign, Err(AuthError::WrongClient)));
        let stolen = revocation.revoke_by_client(&pair.access, "theirs").await;
        assert!(matches!(stolen, Err(AuthError::WrongClient)));
        revocation
            .revoke_by_client("not a token", "mine")
            .await
            .unwrap();
        revocation
            .revoke_by_client(&pair.access, "mine")
            .await
            .unwrap();
        assert!(blacklisted(flows.verify.verify(&pair.access).await));
        assert!(flows.verify.verify(&pair.refresh).await.is_ok());
        revocation
            .revoke_by_client(&pair.refresh, "mine")
            .await
            .unwrap();
        assert!(blacklisted(flows.verify.verify(&pair.refresh).await));
    }
}
