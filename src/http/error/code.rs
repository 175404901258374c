//! Every machine-readable error code jwtd answers with, in one place.

/// `code` of the contract's error body, or `error` of OAuth 2.0's (RFC 6749 §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    // The contract's (SimpleJWT's and DRF's) codes.
    Invalid,
    NoActiveAccount,
    TokenNotValid,
    /// A bad, used or expired activation or reset link.
    InvalidToken,
    NotAuthenticated,
    BadAuthorizationHeader,
    UserNotFound,
    UserInactive,
    PermissionDenied,
    /// The browser transport's `X-CSRF-Token` is missing or differs from the CSRF cookie.
    CsrfFailed,
    RegistrationClosed,
    NotFound,
    MethodNotAllowed,
    RequestTimeout,
    TooLarge,
    UnsupportedMediaType,
    HeadersTooLarge,
    Throttled,
    /// A unique name already taken (a group's).
    Conflict,
    /// A user's claims would make their access token too long (`jwt.max_access_token_bytes`).
    TokenTooLarge,
    /// A feed cursor older than the feed keeps (410).
    CursorExpired,
    Unavailable,
    Internal,
    /// Any other status poem answered by itself.
    Error,
    // OAuth 2.0's codes.
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidScope,
    TemporarilyUnavailable,
    ServerError,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Invalid => "invalid",
            ErrorCode::NoActiveAccount => "no_active_account",
            ErrorCode::TokenNotValid => "token_not_valid",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::NotAuthenticated => "not_authenticated",
            ErrorCode::BadAuthorizationHeader => "bad_authorization_header",
            ErrorCode::UserNotFound => "user_not_found",
            ErrorCode::UserInactive => "user_inactive",
            ErrorCode::PermissionDenied => "permission_denied",
            ErrorCode::CsrfFailed => "csrf_failed",
            ErrorCode::RegistrationClosed => "registration_closed",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::HeadersTooLarge => "headers_too_large",
            ErrorCode::Throttled => "throttled",
            ErrorCode::Conflict => "conflict",
            ErrorCode::TokenTooLarge => "token_too_large",
            ErrorCode::CursorExpired => "cursor_expired",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
            ErrorCode::Error => "error",
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
            ErrorCode::ServerError => "server_error",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
