//! The one error type of the HTTP layer: the contract's JSON error body and status, mapped from
//! the domain's errors. Internal causes are logged with an id and never shown.

use std::collections::BTreeMap;
use std::fmt;

use poem::http::{HeaderValue, StatusCode, header};
use poem::{IntoResponse, Response};
use poem_openapi::registry::{
    MetaHeader, MetaMediaType, MetaResponse, MetaResponses, MetaSchemaRef, Registry,
};
use poem_openapi::types::{ToJSON, Type};
use poem_openapi::{ApiResponse, Object};

use crate::accounts::AccountError;
use crate::oauth::OAuthError;
use crate::token::TokenError;
use crate::token::service::AuthError;

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

/// RFC 6749 §5.2's error body, used by the `/oauth/…` endpoints.
#[derive(Debug, Clone, PartialEq, Object)]
pub struct OAuthErrorBody {
    /// `invalid_request`, `invalid_client`, `invalid_grant`, `unauthorized_client`,
    /// `unsupported_grant_type`, `invalid_scope`, `temporarily_unavailable` or `server_error`.
    pub error: String,
    /// What went wrong, for people.
    pub error_description: String,
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
    /// Boxed: errors travel through many `Result`s and should stay small.
    body: Box<ErrorBody>,
    retry_after_secs: Option<u64>,
    dialect: Dialect,
    store_failure: bool,
}

/// Response data on an answer caused by a failing store (database or Redis), for the metrics.
#[derive(Debug, Clone, Copy)]
pub struct StoreFailure;

pub const NO_ACTIVE_ACCOUNT: &str = "No active account found with the given credentials";
const BEARER_CHALLENGE: &str = r#"Bearer realm="api""#;
/// RFC 6749 §5.2: `invalid_client` answers with the scheme clients authenticate with.
const CLIENT_CHALLENGE: &str = r#"Basic realm="jwtd""#;

impl ApiError {
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: Box::new(ErrorBody {
                detail: detail.into(),
                code: code.into(),
                fields: None,
                id: None,
            }),
            retry_after_secs: None,
            dialect: Dialect::Api,
            store_failure: false,
        }
    }

    /// The same error in OAuth 2.0's shape: `{"error": code, "error_description": detail}`.
    pub fn in_oauth_dialect(mut self, code: &str) -> ApiError {
        self.body.code = code.into();
        self.dialect = Dialect::OAuth;
        self
    }

    /// 400 `invalid` with per-field messages.
    pub fn invalid_fields(fields: BTreeMap<String, Vec<String>>) -> ApiError {
        let detail = fields
            .iter()
            .map(|(name, messages)| format!("{name}: {}", messages.join(" ")))
            .collect::<Vec<_>>()
            .join("; ");
        let mut error = ApiError::new(StatusCode::BAD_REQUEST, "invalid", detail);
        error.body.fields = Some(fields);
        error
    }

    /// 400 `invalid` about the body as a whole (unparsable JSON, not an object…).
    pub fn invalid(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid", detail)
    }

    pub fn unauthorized(code: &str, detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, code, detail)
    }

    pub fn not_found() -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", "Not found.")
    }

    /// 403 for an authenticated user who may not do this.
    pub fn permission_denied() -> ApiError {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "permission_denied",
            "You do not have permission to perform this action.",
        )
    }

    pub fn too_large(limit: usize) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("Request body is larger than {limit} bytes."),
        )
    }

    pub fn headers_too_large(limit: usize) -> ApiError {
        ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            format!("The request line and headers are larger than {limit} bytes."),
        )
    }

    /// 408: the request (its body, usually) did not arrive in time. The connection is closed.
    pub fn request_timeout(limit: std::time::Duration) -> ApiError {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!(
                "The request was not completed within {}.",
                humantime::format_duration(limit)
            ),
        )
    }

    pub fn unsupported_media_type(content_type: &str) -> ApiError {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("Unsupported media type \"{content_type}\" in request."),
        )
    }

    /// 429 `throttled`: too many login attempts from this client.
    pub fn throttled(retry_after_secs: u64) -> ApiError {
        let mut error = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "throttled",
            format!("Request was throttled. Expected available in {retry_after_secs} seconds."),
        );
        error.retry_after_secs = Some(retry_after_secs);
        error
    }

    /// 503: a store could not be reached. The cause is logged, not shown.
    pub fn unavailable(cause: &dyn fmt::Display) -> ApiError {
        tracing::warn!(error = %cause, "store unavailable");
        let mut error = ApiError::service_unavailable();
        error.store_failure = true;
        error
    }

    /// 503: every password-hashing slot stayed busy (a flood of logins). The cause is logged.
    pub fn busy(cause: &dyn fmt::Display) -> ApiError {
        tracing::warn!(error = %cause, "password hashing busy");
        ApiError::service_unavailable()
    }

    fn service_unavailable() -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Service temporarily unavailable, try again later.",
        )
    }

    /// 500 with a fresh id; the cause goes to the log under that id only.
    pub fn internal(cause: &dyn fmt::Display) -> ApiError {
        let id = uuid::Uuid::new_v4().simple().to_string();
        tracing::error!(error_id = %id, error = %cause, "internal error");
        let mut error = ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
        );
        error.body.id = Some(id);
        error
    }

    /// RFC 6749 §5.2 allows only printable ASCII without `"` and `\\` in a description.
    fn oauth_body(&self) -> OAuthErrorBody {
        let mut description: String = self
            .body
            .detail
            .chars()
            .map(|c| match c {
                '"' => '\'',
                '\\' => '/',
                ' '..='~' => c,
                _ => '?',
            })
            .collect();
        if let Some(id) = &self.body.id {
            description.push_str(&format!(" (id {id})"));
        }
        OAuthErrorBody {
            error: self.body.code.clone(),
            error_description: description,
        }
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn body(&self) -> &ErrorBody {
        &self.body
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
                ApiError::new(status, "method_not_allowed", "Method not allowed.")
            }
            StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::new(status, "too_large", "Request body is too large.")
            }
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                ApiError::new(status, "unsupported_media_type", "Unsupported media type.")
            }
            StatusCode::BAD_REQUEST => ApiError::invalid(err.to_string()),
            StatusCode::UNAUTHORIZED => ApiError::unauthorized(
                "not_authenticated",
                "Authentication credentials were not provided.",
            ),
            s if s.is_server_error() => ApiError::internal(err),
            s => ApiError::new(s, "error", s.canonical_reason().unwrap_or("Error")),
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.body.code,
            self.body.detail
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
            Dialect::Api => (self.body.to_json(), BEARER_CHALLENGE),
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
        if let Some(secs) = self.retry_after_secs {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::REQUEST_TIMEOUT {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if self.store_failure {
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

/// Documents the error statuses every operation may answer, all with [`ErrorBody`].
impl ApiResponse for ApiError {
    fn meta() -> MetaResponses {
        let response =
            |status, description, headers| documented::<ErrorBody>(status, description, headers);
        MetaResponses {
            responses: vec![
                response(
                    400,
                    "`invalid`: a field is missing, blank or of the wrong type, or the body is not JSON / form data.",
                    vec![],
                ),
                response(
                    401,
                    "`no_active_account` or `token_not_valid` (invalid, expired, wrong type, blacklisted).",
                    vec![required_header(
                        "WWW-Authenticate",
                        r#"Bearer realm="api""#,
                        String::schema_ref(),
                    )],
                ),
                response(
                    403,
                    "`permission_denied` (staff only) or `registration_closed`.",
                    vec![],
                ),
                response(404, "`not_found`.", vec![]),
                response(
                    408,
                    "`request_timeout`: the request did not arrive in time; the connection is closed.",
                    vec![],
                ),
                response(413, "`too_large`: the body is over the limit.", vec![]),
                response(
                    415,
                    "`unsupported_media_type`: neither JSON nor form data.",
                    vec![],
                ),
                response(
                    431,
                    "`headers_too_large`: the request line and headers are over the limit.",
                    vec![],
                ),
                response(429, "`throttled`: too many attempts.", vec![retry_after()]),
                response(500, "`internal`: logged under `id`.", vec![]),
                response(
                    503,
                    "`unavailable`: a store cannot be reached; nothing was accepted.",
                    vec![],
                ),
            ],
        }
    }

    fn register(registry: &mut Registry) {
        ErrorBody::register(registry);
    }
}

impl From<AccountError> for ApiError {
    fn from(err: AccountError) -> ApiError {
        match err {
            AccountError::Invalid(fields) => ApiError::invalid_fields(fields),
            AccountError::RegistrationClosed => ApiError::new(
                StatusCode::FORBIDDEN,
                "registration_closed",
                err.to_string(),
            ),
            AccountError::NotFound => ApiError::not_found(),
            AccountError::Auth(auth) => auth.into(),
        }
    }
}

impl From<TokenError> for ApiError {
    fn from(err: TokenError) -> ApiError {
        ApiError::unauthorized("token_not_valid", err.to_string())
    }
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> ApiError {
        match err {
            AuthError::InvalidCredentials | AuthError::TokenUserInactive => {
                ApiError::unauthorized("no_active_account", err.to_string())
            }
            AuthError::UserNotFound => ApiError::unauthorized("user_not_found", err.to_string()),
            AuthError::UserInactive => ApiError::unauthorized("user_inactive", err.to_string()),
            AuthError::SessionNotFound => ApiError::not_found(),
            AuthError::Token(token) => token.into(),
            // OAuth-only refusals; the SimpleJWT endpoints never present a client.
            AuthError::WrongClient | AuthError::ScopeNotGranted(_) => TokenError::Invalid.into(),
            AuthError::Throttled { retry_after_secs } => ApiError::throttled(retry_after_secs),
            AuthError::Unavailable(cause) => ApiError::unavailable(&cause),
            AuthError::Busy(cause) => ApiError::busy(&cause),
            AuthError::Internal(cause) => ApiError::internal(&cause),
        }
    }
}

impl From<OAuthError> for ApiError {
    fn from(err: OAuthError) -> ApiError {
        let code = err.code();
        let status = match &err {
            OAuthError::InvalidClient => StatusCode::UNAUTHORIZED,
            OAuthError::Throttled(secs) => {
                return ApiError::throttled(*secs).in_oauth_dialect(code);
            }
            OAuthError::Unavailable(cause) => {
                return ApiError::unavailable(cause).in_oauth_dialect(code);
            }
            OAuthError::Busy(cause) => return ApiError::busy(cause).in_oauth_dialect(code),
            OAuthError::Internal(cause) => return ApiError::internal(cause).in_oauth_dialect(code),
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, code, err.to_string()).in_oauth_dialect(code)
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

impl From<ApiError> for OAuthApiError {
    fn from(err: ApiError) -> OAuthApiError {
        let code = if err.dialect == Dialect::OAuth {
            err.body.code.clone()
        } else {
            "invalid_request".to_owned()
        };
        OAuthApiError(err.in_oauth_dialect(&code))
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

/// An error status in the spec, with `T` as its JSON body.
fn documented<T: Type>(
    status: u16,
    description: &'static str,
    headers: Vec<MetaHeader>,
) -> MetaResponse {
    MetaResponse {
        description,
        status: Some(status),
        status_range: None,
        content: vec![MetaMediaType {
            content_type: "application/json; charset=utf-8",
            schema: T::schema_ref(),
        }],
        headers,
    }
}

fn required_header(name: &str, description: &str, schema: MetaSchemaRef) -> MetaHeader {
    MetaHeader {
        name: name.into(),
        description: Some(description.into()),
        required: true,
        deprecated: false,
        schema,
    }
}

fn retry_after() -> MetaHeader {
    required_header("Retry-After", "Seconds to wait.", u64::schema_ref())
}

impl ApiResponse for OAuthApiError {
    fn meta() -> MetaResponses {
        let response =
            |status, description| documented::<OAuthErrorBody>(status, description, vec![]);
        MetaResponses {
            responses: vec![
                response(
                    400,
                    "`invalid_request`, `invalid_grant`, `unauthorized_client`, `unsupported_grant_type` or `invalid_scope` (RFC 6749 §5.2).",
                ),
                response(
                    401,
                    "`invalid_client`: client authentication failed; `WWW-Authenticate: Basic`.",
                ),
                response(413, "`invalid_request`: the body is over the limit."),
                response(415, "`invalid_request`: neither form data nor JSON."),
                documented::<OAuthErrorBody>(
                    429,
                    "`temporarily_unavailable`: too many password grants from this client address.",
                    vec![retry_after()],
                ),
                response(
                    500,
                    "`server_error`: logged under the id in the description.",
                ),
                response(
                    503,
                    "`temporarily_unavailable`: a store cannot be reached; nothing was accepted.",
                ),
            ],
        }
    }

    fn register(registry: &mut Registry) {
        OAuthErrorBody::register(registry);
    }
}
