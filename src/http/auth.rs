//! `Authorization: Bearer <access token>`, with SimpleJWT's authentication errors. A hand-written
//! security scheme so Swagger UI shows the Authorize button and the errors stay the contract's.

use poem::http::header::AUTHORIZATION;
use poem::web::RequestBody;
use poem::{Request, Result};
use poem_openapi::registry::{MetaSecurityScheme, Registry};
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};

use super::error::{ApiError, ErrorCode};
use super::front_door::RequestServices;
use crate::accounts::User;
use crate::token::Claims;

const SCHEME: &str = "BearerAuth";

/// The authenticated user, and the claims of the access token that proved it.
pub struct BearerAuth {
    pub user: User,
    pub claims: Claims,
}

impl<'a> ApiExtractor<'a> for BearerAuth {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        register_http_scheme(
            registry,
            SCHEME,
            "bearer",
            "An access token from POST /api/token/.",
        );
    }

    fn security_schemes() -> Vec<&'static str> {
        vec![SCHEME]
    }

    async fn from_request(
        request: &'a Request,
        _body: &mut RequestBody,
        _: ExtractParamOptions<Self::ParamType>,
    ) -> Result<Self> {
        let token = bearer_token(request)?;
        let verify = &request
            .data::<RequestServices>()
            .expect("the front door attaches the services to every request")
            .verify;
        let (claims, user) = verify.authenticate(token).await.map_err(ApiError::from)?;
        Ok(BearerAuth { user, claims })
    }
}

/// Bearer authentication of a staff member: anyone else gets 403 before the request body is
/// read, so a refusal says nothing about what the body would have been (DRF's order).
pub struct StaffAuth(pub BearerAuth);

impl<'a> ApiExtractor<'a> for StaffAuth {
    const TYPES: &'static [ApiExtractorType] = BearerAuth::TYPES;
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        BearerAuth::register(registry);
    }

    fn security_schemes() -> Vec<&'static str> {
        BearerAuth::security_schemes()
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        options: ExtractParamOptions<Self::ParamType>,
    ) -> Result<Self> {
        let auth = BearerAuth::from_request(request, body, options).await?;
        if !auth.user.is_staff {
            return Err(ApiError::permission_denied().into());
        }
        Ok(StaffAuth(auth))
    }
}

/// Registers an HTTP authentication scheme (`bearer` or `basic`) for Swagger UI's Authorize.
pub(super) fn register_http_scheme(
    registry: &mut Registry,
    name: &'static str,
    scheme: &'static str,
    description: &'static str,
) {
    registry.create_security_scheme(
        name,
        MetaSecurityScheme {
            ty: "http",
            description: Some(description),
            name: None,
            key_in: None,
            scheme: Some(scheme),
            bearer_format: (scheme == "bearer").then_some("JWT"),
            flows: None,
            openid_connect_url: None,
        },
    );
}

/// SimpleJWT's header rules: no header, or another scheme, is "not authenticated"; `Bearer`
/// with anything but exactly one token is a bad header.
pub(super) fn bearer_token(request: &Request) -> Result<&str, ApiError> {
    let not_provided = || {
        ApiError::unauthorized(
            ErrorCode::NotAuthenticated,
            "Authentication credentials were not provided.",
        )
    };
    let bad_header = || {
        ApiError::unauthorized(
            ErrorCode::BadAuthorizationHeader,
            "Authorization header must contain two space-delimited values",
        )
    };
    let header = request
        .headers()
        .get(AUTHORIZATION)
        .ok_or_else(not_provided)?;
    let header = header.to_str().map_err(|_| bad_header())?;
    let mut parts = header.split_whitespace();
    if parts.next() != Some("Bearer") {
        return Err(not_provided());
    }
    match (parts.next(), parts.next()) {
        (Some(token), None) => Ok(token),
        _ => Err(bad_header()),
    }
}
