//! The one error type of the HTTP layer: the contract's JSON error body and status, mapped from
//! the domain's errors. Causes are logged (with an id for a 500, the whole `source` chain) and
//! never shown.

mod code;
mod docs;
mod oauth;

use std::collections::BTreeMap;
use std::error::Error;
use std::fmt;

use poem::http::{HeaderValue, StatusCode, header};
use poem::{IntoResponse, Response};
use poem_openapi::Object;
use poem_openapi::types::ToJSON;

pub use code::ErrorCode;
pub use oauth::{OAuthApiError, OAuthErrorBody};

use crate::accounts::AccountError;
use crate::email::EmailError;
use crate::flows::AuthError;
use crate::outage::{Outage, chain};
use crate::token::TokenError;

/// `{"detail", "code"}`, plus `fields` on a 400 and `id` on a 500.
#[derive(Debug, Clone, PartialEq, Object)]
pub struct ErrorBody {
    /// What went wrong, for people.
    pub detail: String,
    /// What went wrong, for programs: `invalid`, `token_not_valid`, `no_active_account`, …
    pub code: String,
    /// For `invalid`: the messages about each offending field.
    #[oai(skip_serializing_if_is_none)]
    pub fields: Option<BTreeMap<String, Vec<String>>>,
    /// For `internal`: the id under which the cause was logged.
    #[oai(skip_serializing_if_is_none)]
    pub id: Option<String>,
}

/// Which wire shape an error takes: the contract's (SimpleJWT's) or OAuth 2.0's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Api,
    OAuth,
}

#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    code: ErrorCode,
    /// Boxed: errors travel through many `Result`s and should stay small.
    details: Box<Details>,
    dialect: Dialect,
}

#[derive(Debug, Clone, Default)]
struct Details {
    detail: String,
    fields: Option<BTreeMap<String, Vec<String>>>,
    id: Option<String>,
    retry_after_secs: Option<u64>,
    store_failure: bool,
    /// `Set-Cookie` headers the answer carries (the browser transport clears its cookies).
    set_cookies: Vec<HeaderValue>,
}

/// Response data on an answer caused by a failing store (database or Redis), for the metrics.
#[derive(Debug, Clone, Copy)]
pub struct StoreFailure;

const BEARER_CHALLENGE: &str = r#"Bearer realm="api""#;
/// RFC 6749 §5.2: `invalid_client` answers with the scheme clients authenticate with.
const CLIENT_CHALLENGE: &str = r#"Basic realm="jwtd""#;

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, detail: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            details: Box::new(Details {
                detail: detail.into(),
                ..Details::default()
            }),
            dialect: Dialect::Api,
        }
    }

    /// The same error in OAuth 2.0's shape: `{"error": code, "error_description": detail}`.
    pub fn in_oauth_dialect(mut self, code: ErrorCode) -> ApiError {
        self.code = code;
        self.dialect = Dialect::OAuth;
        self
    }

    /// 400 `invalid` with per-field messages.
    pub fn invalid_fields(fields: BTreeMap<String, Vec<String>>) -> ApiError {
        let mut error = ApiError::invalid(crate::accounts::describe(&fields));
        error.details.fields = Some(fields);
        error
    }

    /// 400 `invalid` about the body as a whole (unparsable JSON, not an object…).
    pub fn invalid(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::Invalid, detail)
    }

    pub fn unauthorized(code: ErrorCode, detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, code, detail)
    }

    pub fn not_found() -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, "Not found.")
    }

    /// 403 `csrf_failed`: the browser transport's double-submit check failed.
    pub fn csrf_failed() -> ApiError {
        ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::CsrfFailed,
            "CSRF check failed: send the X-CSRF-Token header with the value of the csrf field.",
        )
    }

    /// The same error, answered with these `Set-Cookie` headers.
    pub fn with_set_cookies(mut self, cookies: Vec<HeaderValue>) -> ApiError {
        self.details.set_cookies = cookies;
        self
    }

    /// 403 for an authenticated user who may not do this.
    pub fn permission_denied() -> ApiError {
        ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::PermissionDenied,
            "You do not have permission to perform this action.",
        )
    }

    pub fn too_large(limit: usize) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::TooLarge,
            format!("Request body is larger than {limit} bytes."),
        )
    }

    pub fn headers_too_large(limit: usize) -> ApiError {
        ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ErrorCode::HeadersTooLarge,
            format!("The request line and headers are larger than {limit} bytes."),
        )
    }

    /// 408: the request (its body, usually) did not arrive in time. The connection is closed.
    pub fn request_timeout(limit: std::time::Duration) -> ApiError {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            ErrorCode::RequestTimeout,
            format!(
                "The request was not completed within {}.",
                humantime::format_duration(limit)
            ),
        )
    }

    pub fn unsupported_media_type(content_type: &str) -> ApiError {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedMediaType,
            format!("Unsupported media type \"{content_type}\" in request."),
        )
    }

    /// 429 `throttled`: too many attempts from this client.
    pub fn throttled(retry_after_secs: u64) -> ApiError {
        let mut error = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::Throttled,
            format!("Request was throttled. Expected available in {retry_after_secs} seconds."),
        );
        error.details.retry_after_secs = Some(retry_after_secs);
        error
    }

    /// 503 for a store that cannot be reached or a flood of password hashes, 500 for anything
    /// else; the cause is logged with its whole chain, never shown.
    pub fn outage(outage: &Outage) -> ApiError {
        match outage {
            Outage::Unavailable(_) => {
                tracing::warn!(error = %chain(outage), "store unavailable");
                let mut error = ApiError::service_unavailable();
                error.details.store_failure = true;
                error
            }
            Outage::Busy(_) => {
                tracing::warn!(error = %chain(outage), "password hashing busy");
                ApiError::service_unavailable()
            }
            Outage::Internal(_) => ApiError::internal(outage),
        }
    }

    fn service_unavailable() -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Unavailable,
            "Service temporarily unavailable, try again later.",
        )
    }

    /// 500 with a fresh id; the cause and its chain go to the log under that id only.
    pub fn internal(cause: &(dyn Error + 'static)) -> ApiError {
        let id = uuid::Uuid::new_v4().simple().to_string();
        tracing::error!(error_id = %id, error = %chain(cause), "internal error");
        let mut error = ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "Internal error",
        );
        error.details.id = Some(id);
        error
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn code(&self) -> ErrorCode {
        self.code
    }

    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            detail: self.details.detail.clone(),
            code: self.code.as_str().to_owned(),
            fields: self.details.fields.clone(),
            id: self.details.id.clone(),
        }
    }

    /// The contract's answer for any error poem or poem-openapi produced before our handlers ran.
    pub fn from_poem(err: &poem::Error) -> ApiError {
        if let Some(api) = err.downcast_ref::<ApiError>() {
            return api.clone();
        }
        let status = err.status();
        match status {
            StatusCode::NOT_FOUND => ApiError::not_found(),
            StatusCode::METHOD_NOT_ALLOWED => {
                ApiError::new(status, ErrorCode::MethodNotAllowed, "Method not allowed.")
            }
            StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::new(status, ErrorCode::TooLarge, "Request body is too large.")
            }
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new(
                status,
                ErrorCode::UnsupportedMediaType,
                "Unsupported media type.",
            ),
            StatusCode::BAD_REQUEST => ApiError::invalid(err.to_string()),
            StatusCode::UNAUTHORIZED => ApiError::unauthorized(
                ErrorCode::NotAuthenticated,
                "Authentication credentials were not provided.",
            ),
            s if s.is_server_error() => ApiError::internal(err),
            s => ApiError::new(s, ErrorCode::Error, s.canonical_reason().unwrap_or("Error")),
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.details.detail
        )
    }
}

impl std::error::Error for ApiError {}

impl poem::error::ResponseError for ApiError {
    fn status(&self) -> StatusCode {
        self.status
    }

    fn as_response(&self) -> Response {
        let (body, challenge) = match self.dialect {
            Dialect::Api => (self.body().to_json(), BEARER_CHALLENGE),
            Dialect::OAuth => (self.oauth_body().to_json(), CLIENT_CHALLENGE),
        };
        let mut response = poem::web::Json(body).into_response();
        response.set_status(self.status);
        let headers = response.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        if self.dialect == Dialect::OAuth {
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        }
        if let Some(secs) = self.details.retry_after_secs {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::REQUEST_TIMEOUT {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        for cookie in &self.details.set_cookies {
            headers.append(header::SET_COOKIE, cookie.clone());
        }
        if self.details.store_failure {
            response.set_data(StoreFailure);
        }
        response
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        poem::error::ResponseError::as_response(&self)
    }
}

impl From<AccountError> for ApiError {
    fn from(err: AccountError) -> ApiError {
        match err {
            AccountError::Invalid(fields) => ApiError::invalid_fields(fields),
            AccountError::RegistrationClosed => ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::RegistrationClosed,
                err.to_string(),
            ),
            AccountError::Throttled { retry_after_secs } => ApiError::throttled(retry_after_secs),
            AccountError::NotFound => ApiError::not_found(),
            AccountError::GroupNameTaken => {
                ApiError::new(StatusCode::CONFLICT, ErrorCode::Conflict, err.to_string())
            }
            AccountError::Auth(auth) => auth.into(),
        }
    }
}

impl From<EmailError> for ApiError {
    fn from(err: EmailError) -> ApiError {
        match err {
            EmailError::InvalidToken => ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidToken,
                err.to_string(),
            ),
            EmailError::Account(account) => account.into(),
        }
    }
}

impl From<TokenError> for ApiError {
    fn from(err: TokenError) -> ApiError {
        ApiError::unauthorized(ErrorCode::TokenNotValid, err.to_string())
    }
}

impl From<Outage> for ApiError {
    fn from(outage: Outage) -> ApiError {
        ApiError::outage(&outage)
    }
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> ApiError {
        match err {
            AuthError::InvalidCredentials
            | AuthError::AccountLocked
            | AuthError::TokenUserInactive => {
                ApiError::unauthorized(ErrorCode::NoActiveAccount, err.to_string())
            }
            AuthError::UserNotFound => {
                ApiError::unauthorized(ErrorCode::UserNotFound, err.to_string())
            }
            AuthError::UserInactive => {
                ApiError::unauthorized(ErrorCode::UserInactive, err.to_string())
            }
            AuthError::SessionNotFound => ApiError::not_found(),
            AuthError::Token(token) => token.into(),
            // OAuth-only refusals; the SimpleJWT endpoints never present a client.
            AuthError::WrongClient | AuthError::ScopeNotGranted(_) => TokenError::Invalid.into(),
            AuthError::Throttled { retry_after_secs } => ApiError::throttled(retry_after_secs),
            AuthError::AccessTokenTooLarge { .. } => ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::TokenTooLarge,
                err.to_string(),
            ),
            AuthError::Outage(outage) => outage.into(),
        }
    }
}
