//! `/oauth/…`: the token endpoint (RFC 6749), revocation (RFC 7009) and introspection
//! (RFC 7662) for registered clients.

use std::sync::Arc;

use poem::Request;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use serde::Serialize;

use super::ApiTags;
use super::body::{Fields, FromFields, OAuthParams};
use super::client_address::TrustedProxies;
use super::client_auth::ClientBasic;
use super::direct_json::{DirectJson, SizedJson, object_overhead};
use super::error::OAuthApiError;
use super::token::login_context;
use crate::oauth::{OAuthError, OAuthService, TokenGrant};
use crate::token::{Claims, TokenType};

const NO_STORE: &str = "no-store";
const NO_CACHE: &str = "no-cache";
/// Longest value accepted for a parameter that is not a token.
const MAX_PARAM_CHARS: usize = 1024;

/// The token endpoint's parameters; which are required depends on `grant_type`.
#[derive(Debug, Object)]
pub struct TokenRequest {
    /// `password`, `refresh_token` or `client_credentials`.
    pub grant_type: Option<String>,
    /// `password` grant.
    pub username: Option<String>,
    /// `password` grant.
    #[oai(write_only)]
    pub password: Option<String>,
    /// `refresh_token` grant.
    pub refresh_token: Option<String>,
    /// Space-separated scopes; by default everything the client may have (or, on refresh, the
    /// original grant).
    pub scope: Option<String>,
    /// Client authentication in the body, instead of HTTP Basic.
    pub client_id: Option<String>,
    #[oai(write_only)]
    pub client_secret: Option<String>,
}

impl FromFields for TokenRequest {
    fn from_fields(fields: &mut Fields) -> Option<Self> {
        let grant_type = parameter(fields, "grant_type", MAX_PARAM_CHARS);
        let username = parameter(fields, "username", MAX_PARAM_CHARS);
        let password = parameter(fields, "password", MAX_PARAM_CHARS);
        let refresh_token = parameter(fields, "refresh_token", usize::MAX);
        let scope = parameter(fields, "scope", MAX_PARAM_CHARS);
        let (client_id, client_secret) = client_fields(fields);
        Some(TokenRequest {
            grant_type: grant_type?,
            username: username?,
            password: password?,
            refresh_token: refresh_token?,
            scope: scope?,
            client_id: client_id?,
            client_secret: client_secret?,
        })
    }
}

impl TokenRequest {
    fn into_grant(self) -> Result<TokenGrant, OAuthError> {
        let missing = |name: &str| OAuthError::InvalidRequest(format!("Missing parameter: {name}"));
        let grant_type = self
            .grant_type
            .as_deref()
            .ok_or_else(|| missing("grant_type"))?;
        match grant_type {
            "password" => Ok(TokenGrant::Password {
                username: self.username.ok_or_else(|| missing("username"))?,
                password: self.password.ok_or_else(|| missing("password"))?,
                scope: self.scope,
            }),
            "refresh_token" => Ok(TokenGrant::RefreshToken {
                refresh_token: self.refresh_token.ok_or_else(|| missing("refresh_token"))?,
                scope: self.scope,
            }),
            "client_credentials" => Ok(TokenGrant::ClientCredentials { scope: self.scope }),
            other => Err(OAuthError::UnsupportedGrantType(format!(
                "Unsupported grant_type: {other}"
            ))),
        }
    }
}

/// A token to revoke or introspect.
#[derive(Debug, Object)]
pub struct TokenParams {
    /// An access or refresh token.
    pub token: Option<String>,
    /// `access_token` or `refresh_token`: a hint only, the token says what it is.
    pub token_type_hint: Option<String>,
    /// Client authentication in the body, instead of HTTP Basic.
    pub client_id: Option<String>,
    #[oai(write_only)]
    pub client_secret: Option<String>,
}

impl FromFields for TokenParams {
    fn from_fields(fields: &mut Fields) -> Option<Self> {
        let token = parameter(fields, "token", usize::MAX);
        let token_type_hint = parameter(fields, "token_type_hint", MAX_PARAM_CHARS);
        let (client_id, client_secret) = client_fields(fields);
        Some(TokenParams {
            token: token?,
            token_type_hint: token_type_hint?,
            client_id: client_id?,
            client_secret: client_secret?,
        })
    }
}

type Field = Option<Option<String>>;

/// An OAuth parameter. "Parameters sent without a value MUST be treated as if they were omitted
/// from the request" (RFC 6749 §3.2), so a blank one is `Some(None)`.
fn parameter(fields: &mut Fields, name: &str, max_chars: usize) -> Field {
    let value = fields.optional_string(name, false, max_chars, true)?;
    Some(value.filter(|value| !value.trim().is_empty()))
}

fn client_fields(fields: &mut Fields) -> (Field, Field) {
    (
        parameter(fields, "client_id", MAX_PARAM_CHARS),
        parameter(fields, "client_secret", MAX_PARAM_CHARS),
    )
}

impl TokenParams {
    fn token(&self) -> Result<&str, OAuthError> {
        self.token
            .as_deref()
            .ok_or_else(|| OAuthError::InvalidRequest("Missing parameter: token".into()))
    }
}

/// RFC 6749 §5.1.
#[derive(Debug, Object, Serialize)]
pub struct TokenResponseBody {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// Absent for `client_credentials`, and for `refresh_token` when rotation is off.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// The scopes granted, space-separated.
    pub scope: String,
}

impl SizedJson for TokenResponseBody {
    fn json_len(&self) -> usize {
        let refresh = self.refresh_token.as_ref().map_or(0, String::len);
        let strings = self.access_token.len() + self.token_type.len() + refresh + self.scope.len();
        let keys = [
            "access_token",
            "token_type",
            "expires_in",
            "refresh_token",
            "scope",
        ];
        // expires_in's digits, at most 20, where the overhead counted two quotes.
        strings + 20 + object_overhead(&keys)
    }
}

#[derive(ApiResponse)]
pub enum TokenResponse {
    /// The tokens.
    #[oai(status = 200)]
    Ok(
        DirectJson<TokenResponseBody>,
        #[oai(header = "Cache-Control")] String,
        #[oai(header = "Pragma")] String,
    ),
}

/// RFC 7662 §2.2. An inactive token has `active: false` and nothing else.
#[derive(Debug, Default, Object)]
pub struct IntrospectionBody {
    pub active: bool,
    #[oai(skip_serializing_if_is_none)]
    pub scope: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub client_id: Option<String>,
    /// The user's name, when access tokens carry it (`jwt.access_token_extra_claims`).
    #[oai(skip_serializing_if_is_none)]
    pub username: Option<String>,
    /// `Bearer` for an access token.
    #[oai(skip_serializing_if_is_none)]
    pub token_type: Option<String>,
    /// `access_token` or `refresh_token`.
    #[oai(skip_serializing_if_is_none)]
    pub token_use: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub exp: Option<i64>,
    #[oai(skip_serializing_if_is_none)]
    pub iat: Option<i64>,
    #[oai(skip_serializing_if_is_none)]
    pub sub: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub aud: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub iss: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub jti: Option<String>,
    /// The login session the token belongs to.
    #[oai(skip_serializing_if_is_none)]
    pub sid: Option<String>,
}

impl IntrospectionBody {
    fn of(claims: Claims, audience: Option<&str>) -> IntrospectionBody {
        let (token_type, token_use) = match claims.token_type {
            TokenType::Access => (Some("Bearer".to_owned()), "access_token"),
            TokenType::Refresh => (None, "refresh_token"),
        };
        IntrospectionBody {
            active: true,
            scope: claims.scope,
            client_id: claims.client_id,
            username: claims.username,
            token_type,
            token_use: Some(token_use.into()),
            exp: Some(claims.exp.0),
            iat: Some(claims.iat.0),
            sub: Some(claims.user_id),
            aud: audience.map(str::to_owned),
            iss: claims.iss,
            jti: Some(claims.jti),
            sid: Some(claims.sid.to_string()),
        }
    }
}

#[derive(ApiResponse)]
pub enum IntrospectionResponse {
    /// Whether the token is active, and if so its claims.
    #[oai(status = 200)]
    Ok(
        Json<IntrospectionBody>,
        #[oai(header = "Cache-Control")] String,
    ),
}

#[derive(ApiResponse)]
pub enum RevokeResponse {
    /// Revoked, or nothing to revoke (an unknown, invalid or expired token).
    #[oai(status = 200)]
    Ok,
}

pub struct OAuthApi {
    oauth: Arc<OAuthService>,
    /// The `aud` introspection reports for tokens that carry none.
    audience: Option<String>,
    proxies: Arc<TrustedProxies>,
}

impl OAuthApi {
    pub fn new(
        oauth: Arc<OAuthService>,
        audience: Option<String>,
        proxies: Arc<TrustedProxies>,
    ) -> OAuthApi {
        OAuthApi {
            oauth,
            audience,
            proxies,
        }
    }
}

#[OpenApi(tag = "ApiTags::OAuth")]
impl OAuthApi {
    /// Get tokens with the password, refresh_token or client_credentials grant (RFC 6749).
    #[oai(path = "/oauth/token", method = "post", operation_id = "oauth_token")]
    async fn token(
        &self,
        request: &Request,
        auth: ClientBasic,
        body: OAuthParams<TokenRequest>,
    ) -> Result<TokenResponse, OAuthApiError> {
        let mut params = body.0;
        let client = auth
            .authenticate(
                &self.oauth,
                params.client_id.take(),
                params.client_secret.take(),
            )
            .await?;
        let grant = params.into_grant()?;
        let context = login_context(request, &self.proxies);
        let issued = self.oauth.token(&client, grant, context).await?;
        let body = TokenResponseBody {
            access_token: issued.access_token,
            token_type: "Bearer".into(),
            expires_in: issued.expires_in,
            refresh_token: issued.refresh_token,
            scope: issued.scope,
        };
        Ok(TokenResponse::Ok(
            DirectJson(body),
            NO_STORE.into(),
            NO_CACHE.into(),
        ))
    }

    /// Revoke an access or refresh token (RFC 7009); a refresh token's whole session ends.
    #[oai(path = "/oauth/revoke", method = "post", operation_id = "oauth_revoke")]
    async fn revoke(
        &self,
        auth: ClientBasic,
        body: OAuthParams<TokenParams>,
    ) -> Result<RevokeResponse, OAuthApiError> {
        let mut params = body.0;
        let client = auth
            .authenticate(
                &self.oauth,
                params.client_id.take(),
                params.client_secret.take(),
            )
            .await?;
        self.oauth.revoke(&client, params.token()?).await?;
        Ok(RevokeResponse::Ok)
    }

    /// Whether a token is active, and its claims (RFC 7662); for authenticated clients.
    #[oai(
        path = "/oauth/introspect",
        method = "post",
        operation_id = "oauth_introspect"
    )]
    async fn introspect(
        &self,
        auth: ClientBasic,
        body: OAuthParams<TokenParams>,
    ) -> Result<IntrospectionResponse, OAuthApiError> {
        let mut params = body.0;
        auth.authenticate(
            &self.oauth,
            params.client_id.take(),
            params.client_secret.take(),
        )
        .await?;
        let body = match self.oauth.introspect(params.token()?).await? {
            Some(claims) => IntrospectionBody::of(claims, self.audience.as_deref()),
            None => IntrospectionBody::default(),
        };
        Ok(IntrospectionResponse::Ok(Json(body), NO_STORE.into()))
    }
}
