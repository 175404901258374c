//! How the errors appear in the OpenAPI document: every status an operation may answer, each
//! with its JSON body.

use poem_openapi::ApiResponse;
use poem_openapi::registry::{
    MetaHeader, MetaMediaType, MetaResponse, MetaResponses, MetaSchemaRef, Registry,
};
use poem_openapi::types::Type;

use super::{ApiError, ErrorBody, OAuthApiError, OAuthErrorBody};

/// Documents the error statuses every operation may answer, all with [`ErrorBody`].
impl ApiResponse for ApiError {
    fn meta() -> MetaResponses {
        let response =
            |status, description, headers| documented::<ErrorBody>(status, description, headers);
        MetaResponses {
            responses: vec![
                response(
                    400,
                    "`invalid`: a field is missing, blank or of the wrong type, or the body is not JSON / form data; `invalid_token`: a bad, used or expired activation or reset link; `token_too_large`: the user's claims would exceed `jwt.max_access_token_bytes`.",
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
                    "`permission_denied` (staff only), `registration_closed`, or `csrf_failed` (cookie endpoints).",
                    vec![],
                ),
                response(404, "`not_found`.", vec![]),
                response(409, "`conflict`: the name is taken (a group's).", vec![]),
                response(
                    410,
                    "`cursor_expired`: a revocation feed cursor older than the feed keeps.",
                    vec![],
                ),
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
