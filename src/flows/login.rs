//! Login: a username and password → a new session's token pair, through login throttling.
//! The OAuth password grant is the same flow, with the client and scope in both tokens.

use std::sync::Arc;

use uuid::Uuid;

use super::AuthError;
use super::active_users::ActiveUsers;
use super::minter::{ForClient, Minter};
use super::revocation::RevocationFlow;
use crate::accounts::{GrantedUser, User};
use crate::metrics::{Grant, LoginFailure, Metrics};
use crate::password::{Passwords, Verified};
use crate::store::sessions::{LoginContext, SessionRepository};
use crate::store::users::UserRepository;
use crate::throttle::{Attempt, LoginThrottle};
use crate::token::{Scope, SessionId, TokenType};

#[derive(Debug, Clone)]
pub struct TokenPair {
    pub access: String,
    pub refresh: String,
    /// Seconds until the access token expires (OAuth's `expires_in`).
    pub expires_in: i64,
}

/// The OAuth 2.0 side of a session: the client its tokens are issued to, and the scope granted.
#[derive(Debug, Clone)]
pub struct ClientGrant {
    pub client_id: String,
    pub scope: Scope,
}

pub struct LoginFlow {
    pub(super) throttle: Arc<LoginThrottle>,
    pub(super) users: UserRepository,
    pub(super) passwords: Passwords,
    pub(super) sessions: SessionRepository,
    pub(super) revocation: Arc<RevocationFlow>,
    pub(super) minter: Arc<Minter>,
    /// Loads the user's grants when tokens carry them.
    pub(super) active_users: Arc<ActiveUsers>,
    pub(super) metrics: Arc<Metrics>,
}

impl LoginFlow {
    /// Username and password → a new session's token pair.
    pub async fn obtain(
        &self,
        username: &str,
        password: String,
        context: LoginContext,
    ) -> Result<TokenPair, AuthError> {
        self.obtain_for(username, password, context, None).await
    }

    /// As [`LoginFlow::obtain`], for an OAuth client when `grant` is given: both tokens carry
    /// its `client_id` and `scope`, and only that client may refresh or revoke them.
    pub async fn obtain_for(
        &self,
        username: &str,
        password: String,
        context: LoginContext,
        grant: Option<ClientGrant>,
    ) -> Result<TokenPair, AuthError> {
        let (user, verified, sid) = self
            .check_credentials(username, password, &context)
            .await
            .inspect_err(|err| self.count_login_failure(err))?;
        // Read after the session's start, like the credentials (see `accounts::permissions`).
        let granted = self.active_users.with_grants(user).await?;
        // Signed before anything is written: a token over the size limit changes nothing.
        let pair = self.sign_pair(&granted, sid, grant.as_ref())?;
        let user = granted.user;
        self.after_login(&user, verified).await?;
        let started = sid.started().to_datetime();
        let ends = self.minter.session_end(sid).to_datetime();
        self.sessions
            .create(sid.uuid(), user.id, started, ends, context)
            .await?;
        self.metrics.issued(Grant::Password);
        Ok(pair)
    }

    /// A new session's access and refresh tokens, for `grant`'s client and scope if given.
    fn sign_pair(
        &self,
        granted: &GrantedUser,
        sid: SessionId,
        grant: Option<&ClientGrant>,
    ) -> Result<TokenPair, AuthError> {
        let now = self.minter.now().secs();
        let scope = grant.map(|grant| grant.scope.to_string());
        let client = grant.zip(scope.as_deref()).map(|(grant, scope)| ForClient {
            client_id: &grant.client_id,
            scope,
        });
        let access = self.minter.access_claims(granted, sid, now, client);
        let mut refresh =
            self.minter
                .claims_for(TokenType::Refresh, &granted.user.id.to_string(), sid, now);
        refresh.client_id.clone_from(&access.client_id);
        refresh.scope.clone_from(&access.scope);
        Ok(TokenPair {
            access: self.minter.sign_access(&access)?,
            refresh: self.minter.sign(&refresh)?,
            expires_in: access.exp.0 - now.0,
        })
    }

    fn count_login_failure(&self, err: &AuthError) {
        match err {
            AuthError::InvalidCredentials => {
                self.metrics.login_failed(LoginFailure::InvalidCredentials);
            }
            AuthError::AccountLocked => self.metrics.login_failed(LoginFailure::Locked),
            AuthError::Throttled { .. } => self.metrics.login_failed(LoginFailure::Throttled),
            _ => {}
        }
    }

    /// The user behind a username and password, through login throttling: the client address
    /// is rate limited first; then the check reserves its place in the account's back-off
    /// before any hashing, so a burst gets no more checks than one by one. A locked account is
    /// refused without a check, answered like a wrong password. Also the new session, started
    /// before the credentials are read (see [`LoginFlow::session_before_credentials`]).
    async fn check_credentials(
        &self,
        username: &str,
        password: String,
        context: &LoginContext,
    ) -> Result<(User, Verified, SessionId), AuthError> {
        let (throttle, users) = (&self.throttle, &self.users);
        throttle.admit_client(&context.client_address).await?;
        let account = throttle.account(username);
        let (session, attempt) = tokio::join!(
            self.session_before_credentials(username),
            throttle.reserve(&account)
        );
        let (session, attempt) = (session?, attempt?);
        if attempt == Attempt::Locked {
            return Err(AuthError::AccountLocked);
        }
        let (user, stored_hash) = match users.credentials_by_username(username).await? {
            Some(found) => (Some(found.user), Some(found.password_hash)),
            None => (None, None),
        };
        let verified = self.passwords.verify(password, stored_hash).await?;
        let password_ok = matches!(verified, Verified::Correct | Verified::CorrectRehashed(_));
        // Anything but a success stays counted as the failure reserved above.
        match (user, session) {
            (Some(user), Some((id, sid))) if password_ok && user.is_active && user.id == id => {
                throttle.record_success(&account).await?;
                Ok((user, verified, sid))
            }
            // Wrong password, unknown or inactive, or renamed while this login read it: the
            // client may try again, and that attempt reads the account afresh.
            _ => Err(AuthError::InvalidCredentials),
        }
    }

    /// The session a login will start, taken before its credentials are read: a revoke-all
    /// (password change, deactivation, logout everywhere) that comes after that read writes a
    /// cut-off at or after this start, so it covers the session even when the login answers
    /// later. A revoke-all that came before is already past: the session starts after it.
    async fn session_before_credentials(
        &self,
        username: &str,
    ) -> Result<Option<(Uuid, SessionId)>, AuthError> {
        let Some(id) = self.users.id_by_username(username).await? else {
            return Ok(None);
        };
        let sid = self.revocation.new_session(&id.to_string()).await?;
        Ok(Some((id, sid)))
    }

    async fn after_login(&self, user: &User, verified: Verified) -> Result<(), AuthError> {
        let users = &self.users;
        if let Verified::CorrectRehashed(hash) = verified {
            // Best effort: the login stands even if the upgrade has to wait for the next one.
            if let Err(err) = users.set_password_hash(user.id, hash).await {
                tracing::warn!(user_id = %user.id, error = %crate::outage::chain(&err), "password hash upgrade failed");
            }
        }
        if self.minter.policy().update_last_login {
            users
                .set_last_login(user.id, self.minter.now().to_datetime())
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flows::testing::{Harness, PASSWORD, context};
    use crate::token::TokenError;

    #[tokio::test]
    async fn the_right_password_starts_a_session_listed_for_the_user() {
        let harness = Harness::new().await;
        let alice = harness.user("alice").await;
        let pair = harness.login("Alice").await;
        let flows = &harness.state.flows;
        let access = flows.verify.verify(&pair.access).await.unwrap();
        let refresh = flows.verify.verify(&pair.refresh).await.unwrap();
        assert_eq!(access.user_id, alice.id.to_string());
        assert_eq!(access.sid, refresh.sid);
        assert_eq!(pair.expires_in, 300);
        let sessions = flows.revocation.sessions_of(alice.id).await.unwrap();
        assert_eq!(sessions.len(), 1);
        assert_eq!(sessions[0].id, access.sid.uuid());
    }

    #[tokio::test]
    async fn a_wrong_password_an_unknown_user_and_an_inactive_user_look_the_same() {
        let harness = Harness::new().await;
        let bob = harness.user("bob").await;
        let login = &harness.state.flows.login;
        let wrong = login.obtain("bob", "not it at all".into(), context()).await;
        let unknown = login.obtain("nobody", PASSWORD.into(), context()).await;
        let change = crate::store::users::AdminChange {
            is_active: Some(false),
            ..Default::default()
        };
        harness
            .state
            .accounts
            .admin_update(bob.id, change)
            .await
            .unwrap();
        let inactive = login.obtain("bob", PASSWORD.into(), context()).await;
        for refused in [wrong, unknown, inactive] {
            assert!(matches!(refused, Err(AuthError::InvalidCredentials)));
        }
    }

    #[tokio::test]
    async fn a_revoke_all_after_the_credentials_are_read_covers_the_session() {
        let harness = Harness::new().await;
        let dave = harness.user("dave").await;
        let (login, revocation) = (&harness.state.flows.login, &harness.state.flows.revocation);
        // A revoke-all before the login reads the account: the session starts after it.
        revocation.revoke_all_of_user(dave.id).await.unwrap();
        let (id, sid) = login
            .session_before_credentials("dave")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(id, dave.id);
        // One after (here, in the same millisecond of the frozen clock): it covers the session.
        revocation.revoke_all_of_user(dave.id).await.unwrap();
        let minter = harness.minter();
        let dave = GrantedUser {
            user: dave,
            grants: Default::default(),
        };
        let claims = minter.access_claims(&dave, sid, minter.now().secs(), None);
        let token = minter.sign(&claims).unwrap();
        let refused = harness.state.flows.verify.verify(&token).await;
        assert!(matches!(
            refused,
            Err(AuthError::Token(TokenError::Blacklisted))
        ));
        assert!(
            login
                .session_before_credentials("nobody")
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn an_oauth_login_carries_its_client_and_scope_in_both_tokens() {
        let harness = Harness::new().await;
        harness.user("carol").await;
        let pair = harness.oauth_login("carol", "client-1", "read write").await;
        let codec = harness.minter().codec();
        for token in [&pair.access, &pair.refresh] {
            let claims = codec.decode(token).unwrap();
            assert_eq!(claims.client_id.as_deref(), Some("client-1"));
            assert_eq!(claims.scope.as_deref(), Some("read write"));
        }
        let as_access = codec.decode_as(&pair.refresh, TokenType::Access);
        assert_eq!(as_access.unwrap_err(), TokenError::WrongType);
    }
}
