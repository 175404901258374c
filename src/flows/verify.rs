//! Verify: is a token ours, unexpired and unrevoked (SimpleJWT's verify, OAuth introspection),
//! and bearer authentication for the account API.

use std::sync::Arc;

use uuid::Uuid;

use super::active_users::ActiveUsers;
use super::{AuthError, ensure_session_live, token_keys};
use crate::accounts::User;
use crate::store::RevocationStore;
use crate::store::leases::LeasedLookups;
use crate::store::revocation::RevocationEntries;
use crate::store::users::UserRepository;
use crate::token::{Claims, TokenCodec, TokenError, TokenType};

pub struct VerifyFlow {
    pub(super) codec: Arc<TokenCodec>,
    pub(super) store: Arc<dyn RevocationStore>,
    /// Lookups reused under a lease, where the store keeps a revision and a lease is set.
    pub(super) leased: Option<Arc<LeasedLookups>>,
    pub(super) users: UserRepository,
    pub(super) active_users: Arc<ActiveUsers>,
}

impl VerifyFlow {
    /// Any live token of ours (access or refresh), checked against revocation; a user's token
    /// also needs its user to exist and be active.
    pub async fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let claims = self.codec.decode(token)?;
        self.ensure_live(&claims).await?;
        Ok(claims)
    }

    /// As [`VerifyFlow::verify`], for a token of type `expected`.
    pub async fn verify_as(&self, token: &str, expected: TokenType) -> Result<Claims, AuthError> {
        let claims = self.codec.decode_as(token, expected)?;
        self.ensure_live(&claims).await?;
        Ok(claims)
    }

    /// Not revoked, and (a user's token) its user active: from the per-instance user cache
    /// while the user's version entry, read in the same round trip, is unchanged.
    async fn ensure_live(&self, claims: &Claims) -> Result<(), AuthError> {
        let entries = self.ensure_not_revoked(claims).await?;
        if !claims.subject_is_client {
            self.active_users
                .of(claims, entries.user_version.as_deref())
                .await?;
        }
        Ok(())
    }

    /// Bearer authentication: a live, unrevoked access token and its active user, as stored.
    /// Tokens issued to OAuth clients are for their resource servers, limited by scope; jwtd's
    /// own account API has no scopes, so it takes only first-party tokens from `/api/token/`.
    pub async fn authenticate(&self, token: &str) -> Result<(Claims, User), AuthError> {
        let claims = self.codec.decode_as(token, TokenType::Access)?;
        if claims.client_id.is_some() {
            return Err(TokenError::Invalid.into());
        }
        let user_id = Uuid::try_parse(&claims.user_id).map_err(|_| AuthError::UserNotFound)?;
        let (user, revocation) = tokio::join!(
            self.users.find_by_id(user_id),
            self.ensure_not_revoked(&claims)
        );
        revocation?;
        match user? {
            None => Err(AuthError::UserNotFound),
            Some(user) if !user.is_active => Err(AuthError::UserInactive),
            Some(user) => Ok((claims, user)),
        }
    }

    /// One store round trip (none while this instance's revocation lease lets it reuse the
    /// token's last answer): neither the token (blacklisted or spent), nor its session, nor
    /// its user's sessions are revoked. The entries read, for the user's version.
    async fn ensure_not_revoked(&self, claims: &Claims) -> Result<RevocationEntries, AuthError> {
        let sid = claims.sid.text();
        let keys = token_keys(claims, sid.as_str());
        let entries = match &self.leased {
            Some(leased) => leased.entries(&*self.store, keys).await?,
            None => self.store.entries(keys).await?,
        };
        ensure_session_live(claims, &entries)?;
        if entries.jti.is_some() {
            return Err(TokenError::Blacklisted.into());
        }
        Ok(entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flows::testing::Harness;

    fn refused_as(result: Result<impl std::fmt::Debug, AuthError>, expected: TokenError) {
        match result {
            Err(AuthError::Token(err)) => assert_eq!(err, expected),
            other => panic!("expected {expected:?}, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn both_tokens_verify_until_their_session_is_revoked() {
        let harness = Harness::new().await;
        harness.user("alice").await;
        let pair = harness.login("alice").await;
        let flows = &harness.state.flows;
        assert!(flows.verify.verify(&pair.access).await.is_ok());
        let refresh = flows
            .verify
            .verify_as(&pair.refresh, TokenType::Refresh)
            .await
            .unwrap();
        refused_as(
            flows
                .verify
                .verify_as(&pair.refresh, TokenType::Access)
                .await,
            TokenError::WrongType,
        );
        flows
            .revocation
            .revoke_session(&refresh, crate::metrics::Revocation::Logout)
            .await
            .unwrap();
        refused_as(
            flows.verify.verify(&pair.access).await,
            TokenError::Blacklisted,
        );
        refused_as(
            flows.verify.verify(&pair.refresh).await,
            TokenError::Blacklisted,
        );
    }

    #[tokio::test]
    async fn expiry_follows_the_injected_clock() {
        let harness = Harness::new().await;
        harness.user("bob").await;
        let pair = harness.login("bob").await;
        // Valid through its `exp` second, as SimpleJWT's are; expired after it.
        harness.clock.advance(std::time::Duration::from_secs(299));
        assert!(
            harness
                .state
                .flows
                .verify
                .verify(&pair.access)
                .await
                .is_ok()
        );
        harness.clock.advance(std::time::Duration::from_secs(2));
        refused_as(
            harness.state.flows.verify.verify(&pair.access).await,
            TokenError::Expired,
        );
    }

    #[tokio::test]
    async fn bearer_authentication_wants_an_access_token_of_an_active_user() {
        let harness = Harness::new().await;
        let carol = harness.user("carol").await;
        let pair = harness.login("carol").await;
        let verify = &harness.state.flows.verify;
        let (claims, user) = verify.authenticate(&pair.access).await.unwrap();
        assert_eq!(
            (claims.user_id, user),
            (carol.id.to_string(), carol.clone())
        );
        refused_as(
            verify.authenticate(&pair.refresh).await,
            TokenError::WrongType,
        );
        harness.state.accounts.delete_user(carol.id).await.unwrap();
        assert!(verify.authenticate(&pair.access).await.is_err());
    }
}
