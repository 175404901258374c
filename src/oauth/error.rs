//! The RFC 6749 §5.2 errors (and RFC 7009 / 7662's uses of them), as the domain reports them.

use crate::store::StoreError;
use crate::token::service::AuthError;

#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    #[error("{0}")]
    InvalidRequest(String),
    /// Client authentication failed: unknown client, wrong secret, or none given.
    #[error("Client authentication failed")]
    InvalidClient,
    #[error("{0}")]
    InvalidGrant(String),
    #[error("{0}")]
    UnauthorizedClient(String),
    #[error("{0}")]
    UnsupportedGrantType(String),
    #[error("{0}")]
    InvalidScope(String),
    /// Too many logins from this client (HTTP 429 with `Retry-After`).
    #[error("Too many login attempts; retry in {0} seconds")]
    Throttled(u64),
    #[error("{0}")]
    Unavailable(String),
    /// Every password-hashing slot stayed busy.
    #[error("{0}")]
    Busy(String),
    #[error("{0}")]
    Internal(String),
}

impl OAuthError {
    /// The RFC's `error` code.
    pub fn code(&self) -> &'static str {
        match self {
            OAuthError::InvalidRequest(_) => "invalid_request",
            OAuthError::InvalidClient => "invalid_client",
            OAuthError::InvalidGrant(_) => "invalid_grant",
            OAuthError::UnauthorizedClient(_) => "unauthorized_client",
            OAuthError::UnsupportedGrantType(_) => "unsupported_grant_type",
            OAuthError::InvalidScope(_) => "invalid_scope",
            // RFC 6749 has no code of its own for this; clients retry on either.
            OAuthError::Throttled(_) | OAuthError::Unavailable(_) | OAuthError::Busy(_) => {
                "temporarily_unavailable"
            }
            OAuthError::Internal(_) => "server_error",
        }
    }
}

impl From<StoreError> for OAuthError {
    fn from(err: StoreError) -> OAuthError {
        AuthError::from(err).into()
    }
}

/// A grant that the token domain refused is `invalid_grant` (RFC 6749 §5.2: invalid, expired,
/// revoked, or issued to another client), except a scope beyond the original grant.
impl From<AuthError> for OAuthError {
    fn from(err: AuthError) -> OAuthError {
        match err {
            AuthError::ScopeNotGranted(_) => OAuthError::InvalidScope(err.to_string()),
            AuthError::Throttled { retry_after_secs } => OAuthError::Throttled(retry_after_secs),
            AuthError::Unavailable(e) => OAuthError::Unavailable(e),
            AuthError::Busy(e) => OAuthError::Busy(e),
            AuthError::Internal(e) => OAuthError::Internal(e),
            AuthError::InvalidCredentials
            | AuthError::TokenUserInactive
            | AuthError::UserNotFound
            | AuthError::UserInactive
            | AuthError::SessionNotFound
            | AuthError::WrongClient
            | AuthError::Token(_) => OAuthError::InvalidGrant(err.to_string()),
        }
    }
}
