//! The `/oauth/…` endpoints answer errors in RFC 6749 §5.2's shape: `{"error",
//! "error_description"}`, with OAuth's codes.

use poem::http::StatusCode;
use poem::{IntoResponse, Response};
use poem_openapi::Object;

use super::{ApiError, Dialect, ErrorCode};
use crate::oauth::OAuthError;
use crate::outage::Outage;

/// RFC 6749 §5.2's error body, used by the `/oauth/…` endpoints.
#[derive(Debug, Clone, PartialEq, Object)]
pub struct OAuthErrorBody {
    /// `invalid_request`, `invalid_client`, `invalid_grant`, `unauthorized_client`,
    /// `unsupported_grant_type`, `invalid_scope`, `temporarily_unavailable` or `server_error`.
    pub error: String,
    /// What went wrong, for people.
    pub error_description: String,
}

impl ApiError {
    /// RFC 6749 §5.2 allows only printable ASCII without `"` and `\\` in a description.
    pub(super) fn oauth_body(&self) -> OAuthErrorBody {
        let mut description: String = self
            .details
            .detail
            .chars()
            .map(|c| match c {
                '"' => '\'',
                '\\' => '/',
                ' '..='~' => c,
                _ => '?',
            })
            .collect();
        if let Some(id) = &self.details.id {
            description.push_str(&format!(" (id {id})"));
        }
        OAuthErrorBody {
            error: self.code.as_str().to_owned(),
            error_description: description,
        }
    }
}

/// The RFC's `error` code of a refusal.
fn oauth_code(err: &OAuthError) -> ErrorCode {
    match err {
        OAuthError::InvalidRequest(_) => ErrorCode::InvalidRequest,
        OAuthError::InvalidClient => ErrorCode::InvalidClient,
        OAuthError::InvalidGrant(_) => ErrorCode::InvalidGrant,
        OAuthError::UnauthorizedClient(_) => ErrorCode::UnauthorizedClient,
        OAuthError::UnsupportedGrantType(_) => ErrorCode::UnsupportedGrantType,
        OAuthError::InvalidScope(_) => ErrorCode::InvalidScope,
        // RFC 6749 has no code of its own for these; clients retry on either.
        OAuthError::Throttled(_) | OAuthError::Outage(Outage::Unavailable(_) | Outage::Busy(_)) => {
            ErrorCode::TemporarilyUnavailable
        }
        OAuthError::Outage(Outage::Internal(_)) => ErrorCode::ServerError,
    }
}

impl From<OAuthError> for ApiError {
    fn from(err: OAuthError) -> ApiError {
        let code = oauth_code(&err);
        let error = match &err {
            OAuthError::InvalidClient => {
                ApiError::new(StatusCode::UNAUTHORIZED, code, err.to_string())
            }
            OAuthError::Throttled(secs) => ApiError::throttled(*secs),
            OAuthError::Outage(outage) => ApiError::outage(outage),
            _ => ApiError::new(StatusCode::BAD_REQUEST, code, err.to_string()),
        };
        error.in_oauth_dialect(code)
    }
}

/// The error of the `/oauth/…` operations: an [`ApiError`] in OAuth's shape, documented with
/// [`OAuthErrorBody`].
#[derive(Debug, Clone)]
pub struct OAuthApiError(pub ApiError);

impl From<OAuthError> for OAuthApiError {
    fn from(err: OAuthError) -> OAuthApiError {
        OAuthApiError(err.into())
    }
}

/// Errors found before the OAuth handler ran (the body, the content type) are
/// `invalid_request`.
impl From<ApiError> for OAuthApiError {
    fn from(err: ApiError) -> OAuthApiError {
        let code = if err.dialect == Dialect::OAuth {
            err.code
        } else {
            ErrorCode::InvalidRequest
        };
        OAuthApiError(err.in_oauth_dialect(code))
    }
}

impl From<OAuthApiError> for poem::Error {
    fn from(err: OAuthApiError) -> poem::Error {
        err.0.into()
    }
}

impl IntoResponse for OAuthApiError {
    fn into_response(self) -> Response {
        self.0.into_response()
    }
}
