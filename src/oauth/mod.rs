//! OAuth 2.0 "lite": the token endpoint's grants (RFC 6749 password, refresh_token,
//! client_credentials), revocation (RFC 7009) and introspection (RFC 7662) for registered
//! clients, on top of the same flows, rotation and revocation as the SimpleJWT API.

pub mod clients;
pub mod error;

use std::sync::Arc;

pub use clients::{Client, ClientService, GrantType};
pub use error::OAuthError;

use crate::flows::{AuthError, ClientGrant, Flows, RefreshBy};
use crate::store::sessions::LoginContext;
use crate::token::{Claims, Scope, TokenError};

/// What a client asks the token endpoint for, its parameters already checked for presence.
#[derive(Debug)]
pub enum TokenGrant {
    Password {
        username: String,
        password: String,
        scope: Option<String>,
    },
    RefreshToken {
        refresh_token: String,
        scope: Option<String>,
    },
    ClientCredentials {
        scope: Option<String>,
    },
}

impl TokenGrant {
    pub fn grant_type(&self) -> GrantType {
        match self {
            TokenGrant::Password { .. } => GrantType::Password,
            TokenGrant::RefreshToken { .. } => GrantType::RefreshToken,
            TokenGrant::ClientCredentials { .. } => GrantType::ClientCredentials,
        }
    }
}

/// A successful token response (RFC 6749 §5.1).
#[derive(Debug)]
pub struct IssuedTokens {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_in: i64,
    pub scope: String,
}

pub struct OAuthService {
    clients: Arc<ClientService>,
    flows: Flows,
}

impl OAuthService {
    pub fn new(clients: Arc<ClientService>, flows: Flows) -> OAuthService {
        OAuthService { clients, flows }
    }

    /// The client whose id and secret these are; anything else is `invalid_client`.
    pub async fn authenticate(&self, id: &str, secret: &str) -> Result<Client, OAuthError> {
        self.clients.authenticate(id, secret).await
    }

    /// Runs a grant for an authenticated client.
    pub async fn token(
        &self,
        client: &Client,
        grant: TokenGrant,
        context: LoginContext,
    ) -> Result<IssuedTokens, OAuthError> {
        let grant_type = grant.grant_type();
        if !client.may_use(grant_type) {
            return Err(OAuthError::UnauthorizedClient(format!(
                "This client may not use the {grant_type} grant"
            )));
        }
        match grant {
            TokenGrant::Password {
                username,
                password,
                scope,
            } => {
                let scope = granted_scope(client, scope.as_deref())?;
                let grant = ClientGrant {
                    client_id: client.id.clone(),
                    scope: scope.clone(),
                };
                let pair = self
                    .flows
                    .login
                    .obtain_for(&username, password, context, Some(grant))
                    .await?;
                Ok(IssuedTokens {
                    access_token: pair.access,
                    refresh_token: Some(pair.refresh),
                    expires_in: pair.expires_in,
                    scope: scope.to_string(),
                })
            }
            TokenGrant::RefreshToken {
                refresh_token,
                scope,
            } => {
                let requested = scope.as_deref().map(parse_scope).transpose()?;
                let by = RefreshBy::Client {
                    client_id: &client.id,
                    allowed: &client.scope,
                    requested: requested.as_ref(),
                };
                let refreshed = self.flows.refresh.refresh_by(&refresh_token, by).await?;
                Ok(IssuedTokens {
                    access_token: refreshed.access,
                    refresh_token: refreshed.refresh,
                    expires_in: refreshed.expires_in,
                    scope: refreshed.scope.unwrap_or_default(),
                })
            }
            TokenGrant::ClientCredentials { scope } => {
                let scope = granted_scope(client, scope.as_deref())?;
                let token = self
                    .flows
                    .client_credentials
                    .issue(&client.id, &scope)
                    .await?;
                Ok(IssuedTokens {
                    access_token: token.access,
                    refresh_token: None,
                    expires_in: token.expires_in,
                    scope: scope.to_string(),
                })
            }
        }
    }

    /// RFC 7009. `token_type_hint` is not needed: the token says what it is.
    pub async fn revoke(&self, client: &Client, token: &str) -> Result<(), OAuthError> {
        match self
            .flows
            .revocation
            .revoke_by_client(token, &client.id)
            .await
        {
            Ok(()) => Ok(()),
            Err(AuthError::WrongClient) => Err(OAuthError::UnauthorizedClient(
                "The token was not issued to this client".into(),
            )),
            Err(other) => Err(other.into()),
        }
    }

    /// RFC 7662: the claims of a live, unrevoked token, or `None` for any token that is not
    /// (the answer must not say why). A store that cannot be reached is an error, not "inactive".
    pub async fn introspect(&self, token: &str) -> Result<Option<Claims>, OAuthError> {
        match self.flows.verify.verify(token).await {
            Ok(claims) => Ok(Some(claims)),
            Err(AuthError::Token(TokenError::Invalid | TokenError::Expired))
            | Err(AuthError::Token(TokenError::Blacklisted | TokenError::WrongType))
            | Err(AuthError::TokenUserInactive) => Ok(None),
            Err(other) => Err(other.into()),
        }
    }
}

/// The scope a new grant gets: what was asked for (all of it within the client's scope), or
/// by default everything the client may have.
fn granted_scope(client: &Client, requested: Option<&str>) -> Result<Scope, OAuthError> {
    let Some(requested) = requested else {
        return Ok(client.scope.clone());
    };
    let requested = parse_scope(requested)?;
    let beyond = requested.beyond(&client.scope);
    if !beyond.is_empty() {
        return Err(OAuthError::InvalidScope(format!(
            "This client may not be granted: {}",
            beyond.join(" ")
        )));
    }
    Ok(requested)
}

fn parse_scope(text: &str) -> Result<Scope, OAuthError> {
    Scope::parse(text).map_err(|err| OAuthError::InvalidScope(err.to_string()))
}
