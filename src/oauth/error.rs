//! The RFC 6749 §5.2 errors (and RFC 7009 / 7662's uses of them), as the domain reports them.

use crate::flows::AuthError;
use crate::outage::Outage;

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
    #[error(transparent)]
    Outage(#[from] Outage),
}

/// A grant that the token domain refused is `invalid_grant` (RFC 6749 §5.2: invalid, expired,
/// revoked, or issued to another client), except a scope beyond the original grant.
impl From<AuthError> for OAuthError {
    fn from(err: AuthError) -> OAuthError {
        match err {
            AuthError::ScopeNotGranted(_) => OAuthError::InvalidScope(err.to_string()),
            AuthError::Throttled { retry_after_secs } => OAuthError::Throttled(retry_after_secs),
            AuthError::Outage(outage) => OAuthError::Outage(outage),
            // The request is fine; the token it asks for would be too long to issue.
            AuthError::AccessTokenTooLarge { .. } => OAuthError::InvalidRequest(err.to_string()),
            AuthError::InvalidCredentials
            | AuthError::AccountLocked
            | AuthError::TokenUserInactive
            | AuthError::UserNotFound
            | AuthError::UserInactive
            | AuthError::SessionNotFound
            | AuthError::WrongClient
            | AuthError::Token(_) => OAuthError::InvalidGrant(err.to_string()),
        }
    }
}
