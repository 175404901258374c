//! The token domain: claims, keys, signing and verifying. The flows that issue, refresh, verify
//! and revoke tokens are in [`crate::flows`].

pub mod claims;
pub mod codec;
mod header;
pub mod keygen;
pub mod keys;
mod payload;
pub mod scope;
pub mod signing;
pub mod verified;
pub mod verifying;

pub use claims::{Claims, SessionId, TokenType};
pub use codec::TokenCodec;
pub use keys::KeySet;
pub use scope::Scope;

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
