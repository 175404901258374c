//! The client-credentials grant: an OAuth client's own access token. `sub` is the client; there
//! is no user, no session row and no refresh token. Deleting the client revokes it.

use std::sync::Arc;

use super::AuthError;
use super::minter::Minter;
use super::revocation::RevocationFlow;
use crate::metrics::{Grant, Metrics};
use crate::token::{Scope, TokenType};

/// A client-credentials access token.
#[derive(Debug, Clone)]
pub struct ClientToken {
    pub access: String,
    pub expires_in: i64,
}

pub struct ClientCredentialsFlow {
    pub(super) revocation: Arc<RevocationFlow>,
    pub(super) minter: Arc<Minter>,
    pub(super) metrics: Arc<Metrics>,
}

impl ClientCredentialsFlow {
    pub async fn issue(&self, client_id: &str, scope: &Scope) -> Result<ClientToken, AuthError> {
        let sid = self.revocation.new_session(client_id).await?;
        let now = self.minter.now().secs();
        let mut claims = self
            .minter
            .claims_for(TokenType::Access, client_id, sid, now);
        claims.subject_is_client = true;
        claims.client_id = Some(client_id.to_owned());
        claims.scope = Some(scope.to_string());
        let token = ClientToken {
            access: self.minter.sign(&claims)?,
            expires_in: claims.exp.0 - now.0,
        };
        self.metrics.issued(Grant::ClientCredentials);
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use crate::flows::testing::Harness;
    use crate::token::{Scope, TokenError};

    #[tokio::test]
    async fn a_client_token_names_the_client_and_dies_with_it() {
        let harness = Harness::new().await;
        let flows = &harness.state.flows;
        let scope = Scope::parse("revocations:read").unwrap();
        let token = flows.client_credentials.issue("svc", &scope).await.unwrap();
        let claims = flows.verify.verify(&token.access).await.unwrap();
        assert!(claims.subject_is_client);
        assert_eq!(claims.user_id, "svc");
        assert_eq!(claims.scope.as_deref(), Some("revocations:read"));
        flows.revocation.revoke_all_of_client("svc").await.unwrap();
        let refused = flows.verify.verify(&token.access).await.unwrap_err();
        assert!(matches!(
            refused,
            crate::flows::AuthError::Token(TokenError::Blacklisted)
        ));
        let again = flows.client_credentials.issue("svc", &scope).await.unwrap();
        assert!(flows.verify.verify(&again.access).await.is_ok());
    }
}
