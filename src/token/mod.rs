//! The token domain: claims, keys, signing and verifying, and the obtain / refresh / verify /
//! blacklist flows with rotation, reuse detection and revocation.

pub mod claims;
pub mod codec;
pub mod keygen;
pub mod keys;
pub mod scope;
pub mod service;

pub use claims::{Claims, SessionId, TokenType};
pub use codec::TokenCodec;
pub use keys::KeySet;
pub use scope::Scope;
pub use service::TokenService;

/// Why a presented token is refused; each is a 401 `token_not_valid` with SimpleJWT's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("Token is invalid")]
    Invalid,
    #[error("Token is expired")]
    Expired,
    #[error("Token has wrong type")]
    WrongType,
    #[error("Token is blacklisted")]
    Blacklisted,
}
